use super::conditions::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A request for `count` VMs of a Service in a registered target namespace. The spec is
/// immutable; names, labels, cloud-init and the cluster are the platform's to choose, so the
/// spec has no field for them (unknown fields are pruned, or refused under strict validation).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "VmRequest",
    namespaced,
    status = "VmRequestStatus",
    shortname = "vmr",
    category = "shepherd",
    printcolumn(name = "System", type_ = "string", json_path = ".spec.system"),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(
        name = "Namespace",
        type_ = "string",
        json_path = ".spec.targetNamespace"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".status.environment"),
    printcolumn(name = "Count", type_ = "integer", json_path = ".spec.count"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ticket", type_ = "string", json_path = ".status.ticketId"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("the spec of a VmRequest is immutable: delete it and create a new one"))]
#[serde(rename_all = "camelCase")]
pub struct VmRequestSpec {
    /// The System (business line).
    #[schemars(length(min = 1, max = 15))]
    pub system: String,
    /// The Service within the System (the part after the dot of the Service's name).
    #[schemars(length(min = 1, max = 15))]
    pub service: String,
    /// A registered VmNamespace the VMs go to; its environment decides where they may run.
    #[schemars(length(min = 1, max = 15))]
    pub target_namespace: String,
    /// A VmTemplate name.
    #[schemars(length(min = 1, max = 63))]
    pub template: String,
    /// An InstanceSize name.
    #[schemars(length(min = 1, max = 63))]
    pub instance_size: String,
    /// How many VMs, 1 to 10.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    pub count: i32,
    /// Root disk size in GiB, within the instance size's range; its minimum when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub disk_gib: Option<i32>,
    /// Why the VMs are needed; shown to approvers.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

fn one() -> i32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmRequestStatus {
    /// Pending, PendingApproval, Approved, Rejected, Cancelled, Executing, Succeeded,
    /// PartiallySucceeded, Failed or Denied: after approval it follows the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::RequestPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// The target namespace's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Who asked, as verified from the signed identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<VmRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The target namespace on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The VM's state: Creating, Starting, Running, Stopping, Stopped, Migrating, Deleting,
    /// Deleted, Failed or Missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the VM is in its phase, when that needs saying (e.g. ErrorUnschedulable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}
