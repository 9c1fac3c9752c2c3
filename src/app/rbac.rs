//! Role bindings: granted and revoked through the REST API by callers who hold what they
//! grant (`domain::permissions::may_grant`), or by the platform's bootstrap CLI.

use super::AppError;
use super::access::{self, Caller};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::rbac::NewRoleBinding;
use crate::domain::permissions::{Grant, Permission, Scope, may_grant};
use crate::domain::{Environment, Subject};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// Who creates or deletes a binding.
#[derive(Debug, Clone, Copy)]
pub enum Granter<'a> {
    /// `shepherd bind`: whoever can reach the database owns the platform already.
    Bootstrap,
    /// An authenticated caller, held to `may_grant`.
    Caller(&'a Caller),
}

impl Granter<'_> {
    fn actor(&self) -> &str {
        match self {
            Granter::Bootstrap => "system:cli",
            Granter::Caller(caller) => &caller.username,
        }
    }

    /// Refuses a binding of `role` (which must exist) the granter could not hold themself.
    async fn check(
        &self,
        conn: &mut PgConnection,
        role: &str,
        scope: &Scope,
        environments: &[Environment],
    ) -> Result<(), AppError> {
        let permissions = role_permissions(conn, role).await?;
        let Granter::Caller(caller) = self else {
            return Ok(());
        };
        let bindings = access::bindings(conn, caller).await?;
        may_grant(
            &bindings,
            &Grant {
                permissions: &permissions,
                scope,
                environments,
            },
        )
        .map_err(|refusal| {
            AppError::Forbidden(format!(
                "user {:?} may not manage a binding of role {role:?}: {refusal}",
                caller.username
            ))
        })
    }
}

async fn role_permissions(
    conn: &mut PgConnection,
    role: &str,
) -> Result<Vec<Permission>, AppError> {
    let summary = db::rbac::roles(conn)
        .await?
        .into_iter()
        .find(|r| r.name == role)
        .ok_or_else(|| AppError::NotFound {
            what: "role",
            id: role.into(),
        })?;
    summary
        .permissions
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e: crate::domain::parse::ParseEnumError| {
                    AppError::invalid("role.permissions", e.to_string())
                })
        })
        .collect()
}

fn scope_of(system: Option<&str>) -> Scope {
    system.map_or(Scope::Global, |s| Scope::System(s.to_owned()))
}

fn parse_environments(stored: &[String]) -> Result<Vec<Environment>, AppError> {
    stored
        .iter()
        .map(|e| {
            e.parse()
                .map_err(|e: crate::domain::parse::ParseEnumError| {
                    AppError::invalid("allowed_environments", e.to_string())
                })
        })
        .collect()
}

/// Binds `role` to `subject`, globally or on one System, for the given environments.
/// Returns the new binding's id, or None when the same binding already existed (nothing
/// written).
pub async fn bind(
    pool: &PgPool,
    granter: Granter<'_>,
    subject: &Subject,
    role: &str,
    system: Option<&str>,
    environments: &[Environment],
) -> Result<Option<uuid::Uuid>, AppError> {
    if environments.is_empty() {
        return Err(AppError::invalid(
            "allowedEnvironments",
            "name at least one of test, prod",
        ));
    }
    let envs: Vec<String> = environments
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    let mut tx = pool.begin().await?;
    granter
        .check(&mut tx, role, &scope_of(system), environments)
        .await?;
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
    let actor = granter.actor();
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

/// Removes a binding made through the API; the caller must be able to grant it. Bindings
/// from the seed or from configuration (bootstrap admins) are managed there and refused here.
pub async fn unbind(pool: &PgPool, caller: &Caller, id: uuid::Uuid) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    let binding = db::rbac::list_bindings(&mut tx, Some(id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| AppError::NotFound {
            what: "role binding",
            id: id.to_string(),
        })?;
    Granter::Caller(caller)
        .check(
            &mut tx,
            &binding.role_name,
            &scope_of(binding.scope_system.as_deref()),
            &parse_environments(&binding.allowed_environments)?,
        )
        .await?;
    if binding.source != "api" {
        return Err(AppError::Conflict(format!(
            "role binding {id} comes from the {} and is managed there",
            binding.source
        )));
    }
    db::rbac::delete_role_binding(&mut tx, id).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new(
            "role.revoke",
            &caller.username,
            "role_binding",
            id,
            &binding.role_name,
        )
        .details(json!({
            "subject_kind": binding.subject_kind, "subject": binding.subject_name,
            "scope": binding.scope_system.as_deref().unwrap_or("global"),
            "allowed_environments": binding.allowed_environments,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
