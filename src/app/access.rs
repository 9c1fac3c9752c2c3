//! Who may do what: loads a caller's bindings and resource roles from PostgreSQL and asks
//! the pure rules in `domain::permissions`. Every entry point (admission, reconcilers, REST)
//! goes through `authorize`, so a rule is enforced the same way everywhere.

use super::AppError;
use crate::db;
use crate::domain::permissions::{
    AccessRequest, Binding, Decision, Permission, ResourceRole, Scope, Target, evaluate,
};
use crate::domain::{Environment, Subject, SubjectKind};
use sqlx::PgConnection;
use uuid::Uuid;

/// An authenticated Kubernetes identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub groups: Vec<String>,
}

/// Kubernetes names service accounts `system:serviceaccount:NS:NAME`.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

impl Caller {
    pub fn new(username: impl Into<String>, groups: &[&str]) -> Self {
        Self {
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    pub fn subject(&self) -> Subject {
        let kind = if self.username.starts_with(SERVICE_ACCOUNT_PREFIX) {
            SubjectKind::ServiceAccount
        } else {
            SubjectKind::User
        };
        Subject {
            kind,
            name: self.username.clone(),
        }
    }

    /// The user and each group: the subjects bindings may name.
    pub fn subjects(&self) -> Vec<Subject> {
        std::iter::once(self.subject())
            .chain(self.groups.iter().map(Subject::group))
            .collect()
    }
}

/// A System a check is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRef {
    pub id: Uuid,
    pub name: String,
}

/// One question: may the caller `action` (human words, e.g. "request VMs") with this
/// permission, on this System (None: platform-wide), in this environment?
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub permission: Permission,
    pub action: &'a str,
    pub system: Option<&'a SystemRef>,
    pub environment: Option<Environment>,
}

pub async fn bindings(conn: &mut PgConnection, caller: &Caller) -> Result<Vec<Binding>, AppError> {
    let rows = db::rbac::effective_bindings(conn, &caller.subjects()).await?;
    rows.into_iter()
        .map(|row| {
            let invalid = |e: String| AppError::Invalid {
                field: "role_bindings".into(),
                rule: e,
            };
            Ok(Binding {
                role: row.role_name,
                permissions: row
                    .permissions
                    .iter()
                    .map(|p| p.parse::<Permission>().map_err(|e| invalid(e.to_string())))
                    .collect::<Result<_, _>>()?,
                scope: match row.scope_system {
                    Some(system) => Scope::System(system),
                    None => Scope::Global,
                },
                allowed_environments: row
                    .allowed_environments
                    .iter()
                    .map(|e| e.parse::<Environment>().map_err(|e| invalid(e.to_string())))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// The strongest resource role the caller holds on a System.
pub async fn resource_role(
    conn: &mut PgConnection,
    caller: &Caller,
    system_id: Uuid,
) -> Result<Option<ResourceRole>, AppError> {
    let roles = db::rbac::system_roles(conn, system_id, &caller.subjects()).await?;
    Ok(roles
        .iter()
        .filter_map(|r| r.parse::<ResourceRole>().ok())
        .min())
}

/// Allows, or explains the refusal: `Forbidden` naming the user, the action, the
/// environment, the System and the rule; `NotFound` when the System is invisible to them.
pub async fn authorize(
    conn: &mut PgConnection,
    caller: &Caller,
    check: &Check<'_>,
) -> Result<(), AppError> {
    let bindings = bindings(conn, caller).await?;
    let target = match check.system {
        None => Target::Platform,
        Some(system) => Target::System {
            system: system.name.clone(),
            resource_role: resource_role(conn, caller, system.id).await?,
        },
    };
    let request = AccessRequest {
        permission: check.permission,
        target: &target,
        environment: check.environment,
    };
    outcome(caller, check, evaluate(&bindings, &request))
}

/// Turns a decision into the answer every entry point gives.
fn outcome(caller: &Caller, check: &Check<'_>, decision: Decision) -> Result<(), AppError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Invisible => Err(AppError::NotFound {
            what: "system",
            id: check.system.map(|s| s.name.clone()).unwrap_or_default(),
        }),
        Decision::Deny(reason) => {
            let mut message = format!("user {:?} may not {}", caller.username, check.action);
            if let Some(env) = check.environment {
                message.push_str(&format!(" in environment {:?}", env.as_str()));
            }
            if let Some(system) = check.system {
                message.push_str(&format!(" for system {:?}", system.name));
            }
            message.push_str(&format!(": {reason}"));
            Err(AppError::Forbidden(message))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    bindings: Vec<Binding>,
    system_roles: std::collections::HashMap<Uuid, ResourceRole>,
    /// The resource roles as stored, with System names, for display.
    pub system_role_rows: Vec<db::rbac::SystemRoleRow>,
}

impl Viewer {
    pub async fn load(conn: &mut PgConnection, caller: &Caller) -> Result<Self, AppError> {
        let bindings = bindings(conn, caller).await?;
        let system_role_rows = db::rbac::all_system_roles(conn, &caller.subjects()).await?;
        let mut system_roles = std::collections::HashMap::new();
        for row in &system_role_rows {
            if let Ok(role) = row.role.parse::<ResourceRole>() {
                let strongest = system_roles.entry(row.system_id).or_insert(role);
                *strongest = (*strongest).min(role);
            }
        }
        Ok(Self {
            caller: caller.clone(),
            bindings,
            system_roles,
            system_role_rows,
        })
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The decision for `permission` on a System (None: platform-wide) in `environment`.
    pub fn decide(
        &self,
        permission: Permission,
        system: Option<&SystemRef>,
        environment: Option<Environment>,
    ) -> Decision {
        let target = match system {
            None => Target::Platform,
            Some(system) => Target::System {
                system: system.name.clone(),
                resource_role: self.system_roles.get(&system.id).copied(),
            },
        };
        evaluate(
            &self.bindings,
            &AccessRequest {
                permission,
                target: &target,
                environment,
            },
        )
    }

    /// As [`authorize`], without a query.
    pub fn check(&self, check: &Check<'_>) -> Result<(), AppError> {
        outcome(
            &self.caller,
            check,
            self.decide(check.permission, check.system, check.environment),
        )
    }

    pub fn allows(
        &self,
        permission: Permission,
        system: Option<&SystemRef>,
        environment: Option<Environment>,
    ) -> bool {
        self.decide(permission, system, environment) == Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_and_groups_become_subjects() {
        let caller = Caller::new("system:serviceaccount:ops:deployer", &["ops"]);
        assert_eq!(caller.subject().kind, SubjectKind::ServiceAccount);
        assert_eq!(
            caller.subjects(),
            vec![
                Subject {
                    kind: SubjectKind::ServiceAccount,
                    name: "system:serviceaccount:ops:deployer".into()
                },
                Subject::group("ops")
            ]
        );
        assert_eq!(Caller::new("alice", &[]).subject(), Subject::user("alice"));
    }
}
