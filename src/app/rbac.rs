//! Role bindings administered by platform admins (the REST API grows this; the CLI uses it
//! to bootstrap).

use super::AppError;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::rbac::NewRoleBinding;
use crate::domain::{Environment, Subject};
use serde_json::json;
use sqlx::PgPool;

/// Binds `role` to `subject`, globally or on one System, for the given environments.
/// Returns false when the same binding already existed (nothing written).
pub async fn bind(
    pool: &PgPool,
    actor: &str,
    subject: &Subject,
    role: &str,
    system: Option<&str>,
    environments: &[Environment],
) -> Result<bool, AppError> {
    if environments.is_empty() {
        return Err(AppError::Invalid {
            field: "environments".into(),
            rule: "name at least one of test, prod".into(),
        });
    }
    let envs: Vec<String> = environments
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    let mut tx = pool.begin().await?;
    let role_exists = db::rbac::roles(&mut tx)
        .await?
        .iter()
        .any(|r| r.name == role);
    if !role_exists {
        return Err(AppError::NotFound {
            what: "role",
            id: role.into(),
        });
    }
    let scope_system_id = match system {
        None => None,
        Some(name) => Some(
            db::services::live_system_by_name(&mut tx, name)
                .await?
                .ok_or_else(|| AppError::NotFound {
                    what: "system",
                    id: name.into(),
                })?
                .id,
        ),
    };
    let Some(id) = db::rbac::insert_role_binding(
        &mut tx,
        &NewRoleBinding {
            subject,
            role,
            scope_system_id,
            allowed_environments: &envs,
            source: "api",
            created_by: actor,
        },
    )
    .await?
    else {
        return Ok(false);
    };
    db::audit::append(
        &mut tx,
        &AuditEntry::new("role.assign", actor, "role_binding", id, role).details(json!({
            "subject_kind": subject.kind.as_str(), "subject": subject.name,
            "scope": system.unwrap_or("global"), "allowed_environments": envs,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
