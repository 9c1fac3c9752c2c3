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
#[x_kube(validation = Rule::new("self.operation != 'clone' || has(self.cloneName)").message("spec.cloneName is required for clone"))]
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
    /// For `snapshot`: the snapshot's name (generated when absent); for `restore`: which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub snapshot: Option<String>,
    /// For `clone`: nothing but a suffix; the platform names the new VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub clone_name: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
