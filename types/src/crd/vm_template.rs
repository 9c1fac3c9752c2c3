use super::conditions::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// What a VM boots: an image, cloud-init and a base VirtualMachine fragment. Every spec
/// change becomes a new immutable version in PostgreSQL; approvals pin a version.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shepherd.kv-shepherd.io",
    version = "v1alpha1",
    kind = "VmTemplate",
    status = "VmTemplateStatus",
    shortname = "vmtpl",
    category = "shepherd",
    printcolumn(
        name = "Version",
        type_ = "integer",
        json_path = ".status.currentVersion"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VmTemplateSpec {
    pub image: ImageSource,
    /// cloud-init user data (#cloud-config ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub cloud_init: Option<String>,
    /// A partial VirtualMachine `spec` merged first; later layers and platform fields win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub base_vm: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.containerDisk) != has(self.dataVolume)").message("spec.image needs exactly one of containerDisk or dataVolume"))]
pub struct ImageSource {
    /// A containerDisk image, e.g. quay.io/containerdisks/fedora:40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_disk: Option<String>,
    /// Import the root disk into a DataVolume from this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<DataVolumeSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeSource {
    /// An HTTP(S) URL of a disk image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    /// A registry image (docker://...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmTemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::crd::phase::CatalogPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// An object whose fields the API server keeps as given (x-kubernetes-preserve-unknown-fields).
pub fn preserved_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
