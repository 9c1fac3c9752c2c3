use super::conditions::Condition;
use crate::vocabulary::Environment;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A target namespace name and its environment. The environment is fixed: changing it would
/// move existing VMs across the test/prod boundary.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "VmNamespace",
    status = "VmNamespaceStatus",
    shortname = "vmns",
    category = "shepherd",
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.environment"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VmNamespaceSpec {
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.environment is immutable"))]
    pub environment: Environment,
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub description: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmNamespaceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::CatalogPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
