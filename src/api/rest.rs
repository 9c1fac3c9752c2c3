//! The REST API's request and response bodies (`/api/v1`, DESIGN §9). Types only; the
//! handlers live in `http::api`, and the `kubectl shepherd` plugin reads the same types.
//! Field names are camelCase like the Kubernetes API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use super::approval::Overrides;

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
