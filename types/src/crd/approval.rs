use super::conditions::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Approves or rejects the ticket of a VmRequest or VmOperation in the same namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "Approval",
    namespaced,
    status = "ApprovalStatus",
    shortname = "appr",
    category = "shepherd",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target.name"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("the spec of an Approval is immutable"))]
#[x_kube(validation = Rule::new("self.decision == 'approve' || !has(self.overrides)").message("overrides apply only to approvals"))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    pub target: TicketTarget,
    pub decision: DecisionName,
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Overrides>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketTarget {
    pub kind: TargetKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum TargetKind {
    #[default]
    VmRequest,
    VmOperation,
}

impl TargetKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::VmRequest => "VmRequest",
            TargetKind::VmOperation => "VmOperation",
        }
    }
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DecisionName {
    #[default]
    Approve,
    Reject,
}

impl DecisionName {
    /// "approved" or "rejected", for messages.
    pub const fn past_tense(self) -> &'static str {
        match self {
            DecisionName::Approve => "approved",
            DecisionName::Reject => "rejected",
        }
    }
}

/// What an approver may change. Checked again by the server at approval.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub template_version: Option<i32>,
    /// CPU request and limit in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu_request_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpu_limit_millis: Option<i64>,
    /// Memory request and limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_request_mib: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_limit_mib: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub disk_gib: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    /// Pending, Applied, Refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::ApprovalPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
