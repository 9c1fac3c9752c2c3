use super::conditions::Condition;
use crate::vocabulary::Environment;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A target cluster. Its kubeconfig stays in the referenced Secret and is never copied.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "Cluster",
    status = "ClusterStatus",
    shortname = "shcl",
    category = "shepherd",
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.environment"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Health", type_ = "string", json_path = ".status.health"),
    printcolumn(
        name = "KubeVirt",
        type_ = "string",
        json_path = ".status.kubevirtVersion"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".spec.schedulingWeight"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// test or prod. It cannot change while the cluster holds VMs (checked by the platform).
    pub environment: Environment,
    pub kubeconfig_secret_ref: SecretKeyRef,
    /// Relative share of placements among eligible clusters.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 10000))]
    pub scheduling_weight: i32,
    /// At most this many VMs; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_vms: Option<i32>,
    /// A disabled cluster receives no new VMs.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The storage class used when the approver names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_storage_class: Option<String>,
}

fn default_weight() -> i32 {
    100
}

fn enabled() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "kubeconfig_key")]
    pub key: String,
}

fn kubeconfig_key() -> String {
    "kubeconfig".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Ready once mirrored into the catalog; Error when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::CatalogPhase>,
    /// The last probe's verdict: Unknown (never probed), Healthy, Degraded (KubeVirt missing
    /// or not deployed) or Unreachable; the `Healthy` condition says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubevirt_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_classes: Vec<String>,
    /// Detected capabilities, e.g. GPU device names and hugepage sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// When the probe that found the current health, version and capabilities ran (probes
    /// that find nothing new do not move it, so an idle cluster's status is not rewritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// VirtualMachines with the platform's label on this cluster that no VM record knows
    /// (`kubectl shepherd orphans` lists them), at the last drift scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans: Option<i32>,
    /// Recorded VMs whose spec another field manager changed, at the last drift scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted_vms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
