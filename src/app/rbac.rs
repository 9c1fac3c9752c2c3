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
/// Returns the new binding's id, or None when the same binding already existed (nothing
/// written).
pub async fn bind(
    pool: &PgPool,
    actor: &str,
    subject: &Subject,
    role: &str,
    system: Option<&str>,
    environments: &[Environment],
) -> Result<Option<uuid::Uuid>, AppError> {
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
        return Ok(None);
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
    Ok(Some(id))
}

/// Removes a binding made through the API. Bindings from the seed or from configuration
/// (bootstrap admins) are managed there and refused here.
pub async fn unbind(pool: &PgPool, actor: &str, id: uuid::Uuid) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    let binding = db::rbac::list_bindings(&mut tx, Some(id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| AppError::NotFound {
            what: "role binding",
            id: id.to_string(),
        })?;
    if binding.source != "api" {
        return Err(AppError::Conflict(format!(
            "role binding {id} comes from the {} and is managed there",
            binding.source
        )));
    }
    db::rbac::delete_role_binding(&mut tx, id).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new("role.revoke", actor, "role_binding", id, &binding.role_name).details(
            json!({
                "subject_kind": binding.subject_kind, "subject": binding.subject_name,
                "scope": binding.scope_system.as_deref().unwrap_or("global"),
                "allowed_environments": binding.allowed_environments,
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
