use super::conditions::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// CPU, memory and device shape of a VM, with the disk range requests must stay within.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "InstanceSize",
    status = "InstanceSizeStatus",
    shortname = "isize",
    category = "shepherd",
    printcolumn(name = "CPU", type_ = "integer", json_path = ".spec.cpu.cores"),
    printcolumn(name = "Memory", type_ = "integer", json_path = ".spec.memory.mib"),
    printcolumn(
        name = "Dedicated",
        type_ = "boolean",
        json_path = ".spec.cpu.dedicated"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.disk.minGiB <= self.disk.maxGiB").message("spec.disk.minGiB must not exceed spec.disk.maxGiB"))]
#[serde(rename_all = "camelCase")]
pub struct InstanceSizeSpec {
    pub cpu: CpuSpec,
    pub memory: MemorySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugepages: Option<HugepagesSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSpec>,
    pub disk: DiskRange,
    /// Extra VirtualMachine spec fields merged after the template (platform fields win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::vm_template::preserved_object")]
    pub spec_overrides: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.dedicated || self.overcommit == 1.0").message("dedicated CPUs need request == limit, so spec.cpu.overcommit must be 1"))]
pub struct CpuSpec {
    #[schemars(range(min = 1, max = 512))]
    pub cores: i32,
    /// Limit / request ratio; 1 means no overcommit.
    #[serde(default = "no_overcommit")]
    #[schemars(range(min = 1.0, max = 16.0))]
    pub overcommit: f64,
    #[serde(default)]
    pub dedicated: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemorySpec {
    #[schemars(range(min = 64))]
    pub mib: i64,
    #[serde(default = "no_overcommit")]
    #[schemars(range(min = 1.0, max = 4.0))]
    pub overcommit: f64,
}

fn no_overcommit() -> f64 {
    1.0
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HugepagesSpec {
    /// e.g. 2Mi or 1Gi; the cluster must offer it.
    #[schemars(regex(pattern = r"^(2Mi|1Gi)$"))]
    pub page_size: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpec {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The extended resource name, e.g. nvidia.com/TU104GL_Tesla_T4.
    #[schemars(length(min = 1, max = 253))]
    pub device_name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskRange {
    #[serde(rename = "minGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub min_gib: i32,
    #[serde(rename = "maxGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_gib: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSizeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::CatalogPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
