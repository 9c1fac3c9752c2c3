use super::conditions::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An application of a System; `metadata.name` is `<system>.<service>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "Service",
    status = "ServiceStatus",
    shortname = "shsvc",
    category = "shepherd",
    printcolumn(name = "System", type_ = "string", json_path = ".spec.system"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "VMs", type_ = "integer", json_path = ".status.vmCount"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The System this Service belongs to; fixed at creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.system is immutable"))]
    pub system: String,
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub description: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::RegistrationPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_count: Option<i64>,
    /// Why the object is denied or waiting, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
