use super::conditions::Condition;
use crate::vocabulary::Operation;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A day-2 action on one managed VM. Immutable; deleting a pending one cancels its ticket.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "VmOperation",
    namespaced,
    status = "VmOperationStatus",
    shortname = "vmop",
    category = "shepherd",
    printcolumn(name = "VM", type_ = "string", json_path = ".spec.vm"),
    printcolumn(name = "Operation", type_ = "string", json_path = ".spec.operation"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ticket", type_ = "string", json_path = ".status.ticketId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("the spec of a VmOperation is immutable"))]
#[x_kube(validation = Rule::new("self.operation != 'restore' || has(self.snapshot)").message("spec.snapshot is required for restore"))]
#[x_kube(validation = Rule::new("self.operation == 'snapshot' || self.operation == 'restore' || !has(self.snapshot)").message("spec.snapshot applies only to snapshot and restore"))]
#[x_kube(validation = Rule::new("!has(self.confirmName) || (self.operation == 'delete' && self.confirmName == self.vm)").message("spec.confirmName must equal spec.vm, and only a delete takes it"))]
#[serde(rename_all = "camelCase")]
pub struct VmOperationSpec {
    /// The managed VM's name.
    #[schemars(length(min = 1, max = 63))]
    pub vm: String,
    /// The day-2 operation: any but `create` (VMs are created by a `VmRequest`).
    #[schemars(schema_with = "crate::vocabulary::day_two_operation_schema")]
    pub operation: Operation,
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// For `snapshot`: the snapshot's name (generated when absent); for `restore`: which one
    /// (`kubectl shepherd snapshots VM` lists them). A `clone` takes no name: the platform
    /// names the new VM with its Service's next index, in the source's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub snapshot: Option<String>,
    /// For `delete`: the VM's name again. Required in prod, where a delete cannot be undone
    /// by mistake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub confirm_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmOperationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::RequestPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// The VM the operation acts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<super::vm_request::VmRef>,
    /// What the operation produced, once it succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OperationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// What a day-2 operation produced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationResult {
    /// `snapshot`: the VirtualMachineSnapshot made; `restore`: the one restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// `migrate`: the node the VM left and the one it runs on now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
    /// `clone`: the new VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<String>,
    /// Why it failed (a reason word, e.g. `NotLiveMigratable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}
