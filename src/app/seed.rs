//! Idempotent seeds: permissions, built-in roles and their grants, default approval
//! policies, and the bootstrap platform admins from configuration.
//!
//! The rules, so a second run changes no row:
//! * Permissions, roles and policies are inserted only when missing.
//! * A built-in role's grants are written only when the role itself is created. If an admin
//!   later edits a built-in role, seeding never reverts the edit; it reports the difference
//!   from the defaults (`SeedReport::drifted_roles`, logged as a warning) so it is not silent.
//! * Approval policies an admin changed keep the admin's value.
//! * Bootstrap admins are the configured list: each gets a global `platform-admin` binding
//!   for both environments (source `config`); a `config` binding whose subject was removed
//!   from the configuration is revoked. Every change is audited; no change, no audit row.

use super::AppError;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::rbac::NewRoleBinding;
use crate::domain::permissions::{BuiltinRole, Permission};
use crate::domain::policy::default_policies;
use crate::domain::subject::Subject;
use crate::domain::{Environment, SubjectKind};
use serde_json::json;
use sqlx::PgPool;
use std::collections::BTreeSet;

/// The actor recorded for seed changes.
pub const SEED_ACTOR: &str = "system:seed";
const CONFIG_SOURCE: &str = "config";

#[derive(Debug, Clone, Default)]
pub struct SeedConfig {
    pub bootstrap_admins: Vec<Subject>,
}

/// A built-in role whose grants differ from the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDrift {
    pub role: String,
    /// Default grants the role no longer has.
    pub missing: Vec<String>,
    /// Grants the role has beyond the defaults.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub permissions_added: usize,
    pub roles_added: Vec<String>,
    pub policies_added: usize,
    pub admins_added: Vec<Subject>,
    pub admins_revoked: Vec<Subject>,
    pub drifted_roles: Vec<RoleDrift>,
}

impl SeedReport {
    pub fn changed_anything(&self) -> bool {
        self.permissions_added > 0
            || !self.roles_added.is_empty()
            || self.policies_added > 0
            || !self.admins_added.is_empty()
            || !self.admins_revoked.is_empty()
    }
}

fn permission_description(p: Permission) -> String {
    match p {
        Permission::PlatformAdmin => {
            "Allows everything, in the environments the binding allows".into()
        }
        other => {
            let (resource, action) = other
                .as_str()
                .split_once(':')
                .unwrap_or((other.as_str(), ""));
            format!("Allows {action} on {resource}")
        }
    }
}

pub async fn run(pool: &PgPool, config: &SeedConfig) -> Result<SeedReport, AppError> {
    let mut report = SeedReport::default();
    let mut tx = pool.begin().await?;
    // One seeder at a time: replicas starting together must not race on "insert if absent".
    db::advisory_xact_lock(&mut tx, SEED_LOCK).await?;
    // Every change's audit row, appended after the last other write (`db::audit::append`).
    let mut audit = Vec::new();

    for p in Permission::ALL {
        if db::rbac::insert_permission(&mut tx, p.as_str(), &permission_description(p)).await? {
            report.permissions_added += 1;
        }
    }

    for role in BuiltinRole::ALL {
        let defaults: BTreeSet<String> = role
            .permissions()
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        if db::rbac::insert_role(&mut tx, role.name(), "built-in role", true).await? {
            for p in &defaults {
                db::rbac::grant(&mut tx, role.name(), p).await?;
            }
            audit.push(
                AuditEntry::new("role.create", SEED_ACTOR, "role", role.name(), role.name())
                    .details(json!({"permissions": defaults, "builtin": true})),
            );
            report.roles_added.push(role.name().to_string());
            continue;
        }
        let current: BTreeSet<String> = db::rbac::role_permissions(&mut tx, role.name())
            .await?
            .into_iter()
            .collect();
        if current != defaults {
            let drift = RoleDrift {
                role: role.name().to_string(),
                missing: defaults.difference(&current).cloned().collect(),
                extra: current.difference(&defaults).cloned().collect(),
            };
            tracing::warn!(role = %drift.role, missing = ?drift.missing, extra = ?drift.extra,
                "built-in role differs from its defaults; seeding keeps the edited grants");
            report.drifted_roles.push(drift);
        }
    }

    for rule in default_policies() {
        if db::policies::insert_if_absent(
            &mut tx,
            rule.operation.as_str(),
            rule.environment.as_str(),
            rule.requires_approval,
        )
        .await?
        {
            report.policies_added += 1;
        }
    }

    sync_bootstrap_admins(&mut tx, &config.bootstrap_admins, &mut report, &mut audit).await?;
    db::audit::append_all(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(report)
}

const SEED_LOCK: i64 = 0x5348_4550_5345_4544; // "SHEPSEED"

/// Grants and revokes the bootstrap admins' bindings; each change's audit row is pushed onto
/// `audit`, for the caller to append last.
async fn sync_bootstrap_admins(
    conn: &mut sqlx::PgConnection,
    admins: &[Subject],
    report: &mut SeedReport,
    audit: &mut Vec<AuditEntry>,
) -> Result<(), AppError> {
    let all_envs: Vec<String> = Environment::ALL
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    let role = BuiltinRole::PlatformAdmin.name();
    for subject in admins {
        let binding = NewRoleBinding {
            subject,
            role,
            scope_system_id: None,
            allowed_environments: &all_envs,
            source: CONFIG_SOURCE,
            created_by: SEED_ACTOR,
        };
        if let Some(id) = db::rbac::insert_role_binding(conn, &binding).await? {
            audit.push(
                AuditEntry::new("role.assign", SEED_ACTOR, "role_binding", id, role).details(
                    json!({"subject_kind": subject.kind.as_str(), "subject": subject.name,
                           "scope": "global", "allowed_environments": all_envs,
                           "source": CONFIG_SOURCE}),
                ),
            );
            report.admins_added.push(subject.clone());
        }
    }
    for existing in db::rbac::role_bindings_by_source(conn, CONFIG_SOURCE).await? {
        let kind: SubjectKind = existing
            .subject_kind
            .parse()
            .map_err(|e| AppError::Invalid {
                field: "role_bindings.subject_kind".into(),
                rule: format!("{e}"),
            })?;
        let subject = Subject {
            kind,
            name: existing.subject_name.clone(),
        };
        let configured = existing.role_name == role
            && existing.scope_system_id.is_none()
            && admins.contains(&subject);
        if configured {
            continue;
        }
        if db::rbac::delete_role_binding(conn, existing.id).await? {
            audit.push(
                AuditEntry::new(
                    "role.revoke",
                    SEED_ACTOR,
                    "role_binding",
                    existing.id,
                    &existing.role_name,
                )
                .details(
                    json!({"subject_kind": existing.subject_kind, "subject": existing.subject_name,
                                    "reason": "no longer in the bootstrap admin configuration"}),
                ),
            );
            report.admins_revoked.push(subject);
        }
    }
    Ok(())
}
