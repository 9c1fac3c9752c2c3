//! Who may do what (docs/architecture.md#identity-and-permissions,
//! docs/architecture.md#environment-isolation).
//!
//! Two layers decide: role bindings (a role's permissions, a scope, and the environments
//! the binding counts for) and resource roles on a System (owner/admin/member/viewer,
//! inherited by its Services and VMs). Without a resource role or a binding scoped to it,
//! a System is invisible. `platform:admin` allows everything; no wildcard exists.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::environment::Environment;
use super::parse::impl_str_enum;

/// A named permission. There are no patterns: `system:*` or `*:*` do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    SystemRead,
    SystemWrite,
    SystemDelete,
    ServiceRead,
    ServiceCreate,
    ServiceDelete,
    VmRead,
    VmCreate,
    VmOperate,
    VmDelete,
    ApprovalApprove,
    ApprovalView,
    ClusterManage,
    TemplateManage,
    RbacManage,
    AuditRead,
    PlatformAdmin,
}

impl Permission {
    /// The permission an operation on an existing VM needs: deleting needs `vm:delete`,
    /// cloning makes a new VM (`vm:create`), everything else is `vm:operate`.
    pub const fn for_operation(operation: super::ticket::Operation) -> Permission {
        use super::ticket::Operation;
        match operation {
            Operation::Create | Operation::Clone => Permission::VmCreate,
            Operation::Delete => Permission::VmDelete,
            Operation::Start
            | Operation::Stop
            | Operation::Restart
            | Operation::Migrate
            | Operation::Snapshot
            | Operation::Restore => Permission::VmOperate,
        }
    }

    pub const ALL: [Permission; 17] = [
        Permission::SystemRead,
        Permission::SystemWrite,
        Permission::SystemDelete,
        Permission::ServiceRead,
        Permission::ServiceCreate,
        Permission::ServiceDelete,
        Permission::VmRead,
        Permission::VmCreate,
        Permission::VmOperate,
        Permission::VmDelete,
        Permission::ApprovalApprove,
        Permission::ApprovalView,
        Permission::ClusterManage,
        Permission::TemplateManage,
        Permission::RbacManage,
        Permission::AuditRead,
        Permission::PlatformAdmin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::SystemRead => "system:read",
            Permission::SystemWrite => "system:write",
            Permission::SystemDelete => "system:delete",
            Permission::ServiceRead => "service:read",
            Permission::ServiceCreate => "service:create",
            Permission::ServiceDelete => "service:delete",
            Permission::VmRead => "vm:read",
            Permission::VmCreate => "vm:create",
            Permission::VmOperate => "vm:operate",
            Permission::VmDelete => "vm:delete",
            Permission::ApprovalApprove => "approval:approve",
            Permission::ApprovalView => "approval:view",
            Permission::ClusterManage => "cluster:manage",
            Permission::TemplateManage => "template:manage",
            Permission::RbacManage => "rbac:manage",
            Permission::AuditRead => "audit:read",
            Permission::PlatformAdmin => "platform:admin",
        }
    }

    /// `approval:approve` and `approval:view`: approvers work across Systems.
    pub const fn is_approval(self) -> bool {
        matches!(self, Permission::ApprovalApprove | Permission::ApprovalView)
    }
}

impl_str_enum!(Permission, "permission");

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The roles seeded at start-up; they cannot be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinRole {
    PlatformAdmin,
    SystemAdmin,
    Approver,
    Operator,
    Viewer,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 5] = [
        BuiltinRole::PlatformAdmin,
        BuiltinRole::SystemAdmin,
        BuiltinRole::Approver,
        BuiltinRole::Operator,
        BuiltinRole::Viewer,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            BuiltinRole::PlatformAdmin => "platform-admin",
            BuiltinRole::SystemAdmin => "system-admin",
            BuiltinRole::Approver => "approver",
            BuiltinRole::Operator => "operator",
            BuiltinRole::Viewer => "viewer",
        }
    }

    /// Same as [`BuiltinRole::name`]; lets the role share the string-enum helpers.
    pub const fn as_str(self) -> &'static str {
        self.name()
    }

    pub const fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            BuiltinRole::PlatformAdmin => &[PlatformAdmin],
            BuiltinRole::SystemAdmin => &[
                SystemRead,
                SystemWrite,
                SystemDelete,
                ServiceRead,
                ServiceCreate,
                ServiceDelete,
                VmRead,
                VmCreate,
                VmOperate,
                VmDelete,
                RbacManage,
                AuditRead,
            ],
            BuiltinRole::Approver => &[
                ApprovalApprove,
                ApprovalView,
                VmRead,
                SystemRead,
                ServiceRead,
            ],
            BuiltinRole::Operator => &[SystemRead, ServiceRead, VmRead, VmCreate, VmOperate],
            BuiltinRole::Viewer => &[SystemRead, ServiceRead, VmRead],
        }
    }
}

impl_str_enum!(BuiltinRole, "built-in role");

/// A caller's role on one System, inherited by its Services and VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceRole {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl ResourceRole {
    pub const ALL: [ResourceRole; 4] = [
        ResourceRole::Owner,
        ResourceRole::Admin,
        ResourceRole::Member,
        ResourceRole::Viewer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ResourceRole::Owner => "owner",
            ResourceRole::Admin => "admin",
            ResourceRole::Member => "member",
            ResourceRole::Viewer => "viewer",
        }
    }

    /// What this role allows on its System and everything under it. Never approval,
    /// platform or audit permissions: those come from bindings only.
    pub const fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match p {
            SystemRead | ServiceRead | VmRead => true,
            ServiceCreate | VmCreate | VmOperate => {
                matches!(
                    self,
                    ResourceRole::Owner | ResourceRole::Admin | ResourceRole::Member
                )
            }
            // rbac:manage here means managing the System's members.
            SystemWrite | SystemDelete | ServiceDelete | VmDelete | RbacManage => {
                matches!(self, ResourceRole::Owner | ResourceRole::Admin)
            }
            ApprovalApprove | ApprovalView | ClusterManage | TemplateManage | AuditRead
            | PlatformAdmin => false,
        }
    }
}

impl_str_enum!(ResourceRole, "resource role");

/// Where a binding counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    /// One System, by name.
    System(String),
}

impl Scope {
    /// Whether a binding with this scope counts for `target`. A System scope never
    /// counts for platform-wide targets.
    pub fn covers(&self, target: &Target) -> bool {
        match (self, target) {
            (Scope::Global, _) => true,
            (Scope::System(scoped), Target::System { system, .. }) => scoped == system,
            (Scope::System(_), Target::Platform) => false,
        }
    }

    fn is_system(&self, name: &str) -> bool {
        matches!(self, Scope::System(scoped) if scoped == name)
    }

    /// Whether a binding with this scope counts everywhere a binding with `other` does: a
    /// global binding includes every scope, a System binding only its own System.
    pub fn includes(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Global, _) => true,
            (Scope::System(mine), Scope::System(theirs)) => mine == theirs,
            (Scope::System(_), Scope::Global) => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("globally"),
            Scope::System(system) => write!(f, "on system {system:?}"),
        }
    }
}

/// A role binding of the caller, with the bound role's permissions already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub role: String,
    pub permissions: Vec<Permission>,
    pub scope: Scope,
    pub allowed_environments: Vec<Environment>,
}

impl Binding {
    /// A binding of a built-in role.
    pub fn builtin(role: BuiltinRole, scope: Scope, allowed_environments: &[Environment]) -> Self {
        Binding {
            role: role.name().to_owned(),
            permissions: role.permissions().to_vec(),
            scope,
            allowed_environments: allowed_environments.to_vec(),
        }
    }

    /// Whether this binding counts for `environment`; requests that are not about an
    /// environment (None) are not restricted by it.
    pub fn allows_environment(&self, environment: Option<Environment>) -> bool {
        environment.is_none_or(|e| self.allowed_environments.contains(&e))
    }

    /// Whether the bound role carries `p`, `platform:admin` counting for everything.
    pub fn grants(&self, p: Permission) -> bool {
        self.permissions.contains(&p) || self.permissions.contains(&Permission::PlatformAdmin)
    }

    fn is_platform_admin(&self) -> bool {
        self.permissions.contains(&Permission::PlatformAdmin)
    }
}

/// What a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Platform-wide things: clusters, templates, RBAC administration, audit, creating
    /// a System.
    Platform,
    /// A System or anything under it, with the caller's resource role on it if any.
    System {
        system: String,
        resource_role: Option<ResourceRole>,
    },
}

impl Target {
    pub fn system(system: impl Into<String>, resource_role: Option<ResourceRole>) -> Self {
        Target::System {
            system: system.into(),
            resource_role,
        }
    }
}

/// One access check. `environment` is Some for actions on VMs in a target namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    pub permission: Permission,
    pub target: &'a Target,
    pub environment: Option<Environment>,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
    /// The caller may not even know the target exists: answer 404, leave out of lists.
    Invisible,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Why a visible target was denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// No binding in scope carries the permission, in any environment.
    MissingPermission { permission: Permission },
    /// Bindings carry the permission, but none counts for this environment.
    EnvironmentNotAllowed {
        environment: Environment,
        permission: Permission,
    },
    /// The caller's resource role on the System is too weak for the permission.
    ResourceRoleTooWeak {
        role: ResourceRole,
        permission: Permission,
    },
    /// A binding grants the permission but the caller has no resource role on the
    /// System (and no binding scoped to it that grants the permission).
    NoResourceRole {
        system: String,
        permission: Permission,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::MissingPermission { permission } => {
                write!(f, "missing permission {permission}")
            }
            DenyReason::EnvironmentNotAllowed {
                environment,
                permission,
            } => write!(f, "no binding allows {environment} for {permission}"),
            DenyReason::ResourceRoleTooWeak { role, permission } => {
                write!(f, "resource role {role} does not allow {permission}")
            }
            DenyReason::NoResourceRole { system, permission } => {
                write!(
                    f,
                    "no resource role on system {system:?} allows {permission}"
                )
            }
        }
    }
}

/// Decides one request against the caller's bindings. See the module docs and the
/// numbered steps below; the first step that decides wins.
pub fn evaluate(bindings: &[Binding], request: &AccessRequest<'_>) -> Decision {
    let permission = request.permission;
    let in_scope: Vec<&Binding> = bindings
        .iter()
        .filter(|b| b.scope.covers(request.target))
        .collect();
    // a. A binding counts only in its scope and for the environments it allows.
    let applicable: Vec<&Binding> = in_scope
        .iter()
        .copied()
        .filter(|b| b.allows_environment(request.environment))
        .collect();

    // b. platform:admin allows everything (within its environments).
    if applicable.iter().any(|b| b.is_platform_admin()) {
        return Decision::Allow;
    }
    let granted = applicable.iter().any(|b| b.grants(permission));
    let binding_denial = || {
        let granted_elsewhere = in_scope.iter().any(|b| b.grants(permission));
        match request.environment {
            Some(environment) if granted_elsewhere => DenyReason::EnvironmentNotAllowed {
                environment,
                permission,
            },
            _ => DenyReason::MissingPermission { permission },
        }
    };

    // c. Platform targets: bindings alone decide.
    let (system, resource_role) = match request.target {
        Target::Platform => {
            return if granted {
                Decision::Allow
            } else {
                Decision::Deny(binding_denial())
            };
        }
        Target::System {
            system,
            resource_role,
        } => (system.as_str(), *resource_role),
    };

    // d. Visibility. A platform admin sees every System even where its binding does not
    // count for the requested environment, so it gets a reason rather than a 404.
    let visible = resource_role.is_some()
        || in_scope
            .iter()
            .any(|b| b.scope.is_system(system) || b.is_platform_admin())
        || (permission.is_approval() && granted);
    if !visible {
        return Decision::Invisible;
    }

    let role_grants = resource_role.is_some_and(|r| r.grants(permission));
    let role_denial = || match resource_role {
        Some(role) => DenyReason::ResourceRoleTooWeak { role, permission },
        None => DenyReason::NoResourceRole {
            system: system.to_owned(),
            permission,
        },
    };

    if request.environment.is_some() {
        // e. VM actions in an environment need a binding for it, and the resource role
        // caps what a binding allows; a binding scoped to this System is itself a grant
        // on the System, so it is enough on its own.
        if !granted {
            return Decision::Deny(binding_denial());
        }
        let system_binding_grants = applicable
            .iter()
            .any(|b| b.scope.is_system(system) && b.grants(permission));
        if permission.is_approval() || role_grants || system_binding_grants {
            Decision::Allow
        } else {
            Decision::Deny(role_denial())
        }
    } else if granted || role_grants {
        // f. Not environment-bound: either layer suffices.
        Decision::Allow
    } else if resource_role.is_some() {
        Decision::Deny(role_denial())
    } else {
        Decision::Deny(binding_denial())
    }
}

/// The union of the permissions of bindings that count for `environment` (all bindings
/// when None), whatever their scope; `platform:admin` expands to every permission.
pub fn effective_permissions(
    bindings: &[Binding],
    environment: Option<Environment>,
) -> BTreeSet<Permission> {
    let permissions: BTreeSet<Permission> = bindings
        .iter()
        .filter(|b| b.allows_environment(environment))
        .flat_map(|b| b.permissions.iter().copied())
        .collect();
    if permissions.contains(&Permission::PlatformAdmin) {
        Permission::ALL.into_iter().collect()
    } else {
        permissions
    }
}

/// A role binding someone wants to create or delete.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The bound role's permissions.
    pub permissions: &'a [Permission],
    pub scope: &'a Scope,
    pub environments: &'a [Environment],
}

/// Why a caller may not create or delete a binding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error(
        "managing role bindings {scope} in environment {environment} needs rbac:manage from a \
         binding that counts there"
    )]
    NotManager {
        scope: Scope,
        environment: Environment,
    },
    #[error(
        "the binding carries {permission} {scope} in environment {environment}, which the caller \
         does not hold there: nobody grants more than they have"
    )]
    NotHeld {
        permission: Permission,
        scope: Scope,
        environment: Environment,
    },
}

/// Whether `granter` may create or delete the binding `grant`: in every environment of the
/// binding, some binding of the granter that includes its scope carries `rbac:manage`, and
/// the granter holds each of the role's permissions in that scope and environment. So a
/// scoped `system-admin` manages bindings on its System only, and nobody grants
/// `platform:admin` but a platform admin.
pub fn may_grant(granter: &[Binding], grant: &Grant<'_>) -> Result<(), GrantRefusal> {
    for &environment in grant.environments {
        let counting: Vec<&Binding> = granter
            .iter()
            .filter(|b| {
                b.scope.includes(grant.scope) && b.allowed_environments.contains(&environment)
            })
            .collect();
        let holds = |p: Permission| counting.iter().any(|b| b.grants(p));
        if !holds(Permission::RbacManage) {
            return Err(GrantRefusal::NotManager {
                scope: grant.scope.clone(),
                environment,
            });
        }
        if let Some(&permission) = grant.permissions.iter().find(|&&p| !holds(p)) {
            return Err(GrantRefusal::NotHeld {
                permission,
                scope: grant.scope.clone(),
                environment,
            });
        }
    }
    Ok(())
}

/// A decision on one's own ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{user:?} requested this ticket and cannot decide it (separation of duties)")]
pub struct SelfApproval {
    pub user: String,
}

/// Separation of duties: nobody approves or rejects a ticket they requested. Usernames
/// come from Kubernetes authentication and compare exactly.
pub fn can_decide(requester: &str, approver: &str) -> Result<(), SelfApproval> {
    if requester == approver {
        Err(SelfApproval {
            user: approver.to_owned(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
