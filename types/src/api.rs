//! The REST API's request and response bodies (`/api/v1`). Types only; the
//! handlers live in `http::api`, and the `kubectl shepherd` plugin reads the same types.
//! Field names are camelCase like the Kubernetes API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::crd::approval::Overrides;

/// Every error answer. `code` is stable and matches the HTTP status:
/// `bad_request` 400, `unauthenticated` 401, `forbidden` 403, `not_found` 404,
/// `conflict` 409, `invalid` 422, `rate_limited` 429, `internal` 500, `unavailable` 503.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// Structured context, e.g. `{"field": ..., "rule": ...}` for `invalid`.
    #[serde(default)]
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveBinding {
    pub role: String,
    /// The System the binding is scoped to; absent for a global binding.
    pub system: Option<String>,
    pub allowed_environments: Vec<String>,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SystemRole {
    pub system: String,
    pub role: String,
}

/// A one-time link into the web console for the caller (`kubectl shepherd ui`): opening it
/// and confirming logs them in, once, before it expires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLoginLink {
    /// The console's login page with the one-time code, relative to the API's URL.
    pub path: String,
    pub expires_at: DateTime<Utc>,
}

/// The caller as Kubernetes authenticated them, and what they may do.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    pub username: String,
    pub groups: Vec<String>,
    pub bindings: Vec<EffectiveBinding>,
    /// Resource roles on Systems (inherited by their Services and VMs).
    pub system_roles: Vec<SystemRole>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TicketVm {
    pub id: Uuid,
    pub name: String,
    pub cluster: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: Uuid,
    /// create, delete, start, stop, ...
    pub operation: String,
    /// PendingApproval, Approved, Rejected, Cancelled, Executing, Succeeded, Failed, PartiallySucceeded.
    pub status: String,
    pub requester: String,
    pub environment: String,
    pub system: String,
    pub service: String,
    pub namespace: String,
    pub vm_count: i32,
    pub reason: String,
    /// What was requested (template, instance size, disk, ...).
    pub request: Value,
    pub approver: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Where the VMs are placed (create), or where the VM lives (operations).
    pub cluster: Option<String>,
    /// The VM a day-2 operation acts on; absent for create.
    pub vm: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The VMs the ticket created (in `get` and decision answers; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<TicketVm>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TicketPage {
    pub items: Vec<Ticket>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApproveRequest {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub overrides: Overrides,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRequest {
    #[serde(default)]
    pub overrides: Overrides,
}

/// Reject and cancel: a reason is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReasonRequest {
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu_request_millis: i64,
    pub cpu_limit_millis: i64,
    pub memory_request_mib: i64,
    pub memory_limit_mib: i64,
    pub disk_gib: i32,
}

/// What approving would create. Nothing is written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub ticket_id: Uuid,
    /// Clusters the VMs may be placed on (environment, health, capabilities, capacity).
    pub eligible_clusters: Vec<String>,
    /// Why each other cluster of the ticket's environment is out, e.g. `cluster "c2" is
    /// Degraded, not Healthy`.
    #[serde(default)]
    pub not_eligible: Vec<String>,
    /// The cluster approval would choose (the override, or the best by weight).
    pub cluster: String,
    pub storage_class: Option<String>,
    pub template_version: i32,
    pub instance_size: String,
    pub resources: Resources,
    /// The names the VMs would get if approved now.
    pub vm_names: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Vm {
    pub id: Uuid,
    pub name: String,
    /// Creating, Starting, Running, Stopping, Stopped, Migrating, Deleting, Deleted, Failed
    /// or Missing.
    pub status: String,
    /// Why the VM is in its state, when that needs saying (e.g. ErrorUnschedulable,
    /// NameConflict).
    pub status_reason: Option<String>,
    pub desired_power_state: String,
    /// The VM's IP address, from its VirtualMachineInstance.
    pub ip: Option<String>,
    /// The node the VM runs on.
    pub node: Option<String>,
    pub ticket_id: Uuid,
    pub system: String,
    pub service: String,
    pub namespace: String,
    pub environment: String,
    pub cluster: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmPage {
    pub items: Vec<Vm>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SystemItem {
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SystemPage {
    pub items: Vec<SystemItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceItem {
    pub system: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePage {
    pub items: Vec<ServiceItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub parent_type: Option<String>,
    pub parent_id: Option<String>,
    pub environment: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Role {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SubjectRef {
    /// User, Group or ServiceAccount.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleBinding {
    pub id: Uuid,
    pub subject: SubjectRef,
    pub role: String,
    /// The System the binding is scoped to; absent for a global binding.
    pub system: Option<String>,
    pub allowed_environments: Vec<String>,
    pub source: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingPage {
    pub items: Vec<RoleBinding>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NewRoleBinding {
    pub subject: SubjectRef,
    pub role: String,
    #[serde(default)]
    pub system: Option<String>,
    /// Defaults to `["test"]`.
    #[serde(default)]
    pub allowed_environments: Option<Vec<String>>,
}

/// A VirtualMachine with the platform's label that no VM record knows, found by the drift
/// scan of its cluster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub cluster: String,
    pub environment: String,
    pub namespace: String,
    pub name: String,
    pub first_seen_at: DateTime<Utc>,
}

/// A snapshot of a VM, taken by a `snapshot` operation; a `restore` names it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub name: String,
    pub vm: String,
    pub cluster: String,
    pub namespace: String,
    /// The snapshot operation's ticket.
    pub ticket_id: uuid::Uuid,
    pub created_at: DateTime<Utc>,
    /// Whether KubeVirt reported it ready to use (only then can it be restored).
    pub ready: bool,
    pub ready_at: Option<DateTime<Utc>>,
}

/// The REST API's paths. The server's routes, its OpenAPI document and the plugin's calls
/// all read them from here, so they cannot disagree. Parameters use the `{name}` form that
/// both OpenAPI and axum understand; [`paths::fill`] puts values in.
pub mod paths {
    pub const PREFIX: &str = "/api/v1";
    pub const OPENAPI: &str = "/api/v1/openapi.json";
    pub const WHOAMI: &str = "/api/v1/whoami";
    pub const TICKETS: &str = "/api/v1/tickets";
    pub const TICKET: &str = "/api/v1/tickets/{id}";
    pub const TICKET_PREVIEW: &str = "/api/v1/tickets/{id}/preview";
    pub const TICKET_APPROVE: &str = "/api/v1/tickets/{id}/approve";
    pub const TICKET_REJECT: &str = "/api/v1/tickets/{id}/reject";
    pub const TICKET_CANCEL: &str = "/api/v1/tickets/{id}/cancel";
    pub const SYSTEMS: &str = "/api/v1/systems";
    pub const SYSTEM_SERVICES: &str = "/api/v1/systems/{system}/services";
    pub const SERVICES: &str = "/api/v1/services";
    pub const VMS: &str = "/api/v1/vms";
    pub const AUDIT: &str = "/api/v1/audit";
    pub const AUDIT_EXPORT: &str = "/api/v1/audit/export";
    pub const RBAC_ROLES: &str = "/api/v1/rbac/roles";
    pub const RBAC_BINDINGS: &str = "/api/v1/rbac/bindings";
    pub const RBAC_BINDING: &str = "/api/v1/rbac/bindings/{id}";
    pub const ORPHANS: &str = "/api/v1/orphans";
    pub const VM_SNAPSHOTS: &str = "/api/v1/vms/{name}/snapshots";
    pub const CONSOLE_LOGIN_LINKS: &str = "/api/v1/console/login-links";

    /// Every path, for checks that each is routed and documented.
    pub const ALL: [&str; 21] = [
        CONSOLE_LOGIN_LINKS,
        ORPHANS,
        VM_SNAPSHOTS,
        OPENAPI,
        WHOAMI,
        TICKETS,
        TICKET,
        TICKET_PREVIEW,
        TICKET_APPROVE,
        TICKET_REJECT,
        TICKET_CANCEL,
        SYSTEMS,
        SYSTEM_SERVICES,
        SERVICES,
        VMS,
        AUDIT,
        AUDIT_EXPORT,
        RBAC_ROLES,
        RBAC_BINDINGS,
        RBAC_BINDING,
        PREFIX,
    ];

    /// `path` with each `{name}` replaced by its value, percent-encoded as one segment.
    ///
    /// # Panics
    /// When a parameter of `path` has no value: a programming error, caught by tests.
    pub fn fill(path: &str, params: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(path.len());
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("a closed parameter");
            let name = &rest[open + 1..close];
            let value = params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("no value for {{{name}}} in {path}"));
            out.push_str(&rest[..open]);
            out.push_str(&encode(value));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters.
    pub fn encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_path_is_under_the_prefix() {
            for path in ALL {
                assert!(path.starts_with(PREFIX), "{path}");
            }
        }

        #[test]
        fn fill_encodes_each_value_as_one_segment() {
            assert_eq!(
                fill(TICKET_APPROVE, &[("id", "7f/../x y")]),
                "/api/v1/tickets/7f%2F..%2Fx%20y/approve"
            );
            assert_eq!(
                fill(SYSTEM_SERVICES, &[("system", "shop")]),
                "/api/v1/systems/shop/services"
            );
            assert_eq!(fill(VMS, &[]), VMS);
        }

        #[test]
        #[should_panic(expected = "no value for {id}")]
        fn fill_refuses_a_missing_parameter() {
            fill(TICKET, &[]);
        }
    }
}
