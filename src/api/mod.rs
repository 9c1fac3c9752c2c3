//! The Kubernetes API of Shepherd: group `shepherd.kv-shepherd.io`, version `v1alpha1`
//! (DESIGN §2). Types only: what the objects look like and the static rules the API server
//! enforces (OpenAPI schema and CEL). Behaviour lives in `domain`, `app` and `controller`.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`, which this lint mistakes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod approval;
pub mod cluster;
pub mod conditions;
pub mod crdgen;
pub mod instance_size;
pub mod phase;
pub mod rest;
pub mod rules;
pub mod service;
pub mod system;
pub mod vm_namespace;
pub mod vm_operation;
pub mod vm_request;
pub mod vm_template;

pub use approval::{Approval, ApprovalSpec};
pub use cluster::{Cluster, ClusterSpec};
pub use conditions::{Condition, ConditionStatus};
pub use instance_size::{InstanceSize, InstanceSizeSpec};
pub use service::{Service, ServiceSpec};
pub use system::{System, SystemSpec};
pub use vm_namespace::{VmNamespace, VmNamespaceSpec};
pub use vm_operation::{VmOperation, VmOperationSpec};
pub use vm_request::{VmRequest, VmRequestSpec};
pub use vm_template::{VmTemplate, VmTemplateSpec};

pub const GROUP: &str = "shepherd.kv-shepherd.io";
pub const VERSION: &str = "v1alpha1";
/// `kubectl get shepherd` lists every kind.
pub const CATEGORY: &str = "shepherd";

/// Annotations only the admission webhook writes: who created the object, signed.
pub mod identity {
    pub const USERNAME: &str = "shepherd.kv-shepherd.io/requested-by";
    pub const UID: &str = "shepherd.kv-shepherd.io/requested-by-uid";
    pub const GROUPS: &str = "shepherd.kv-shepherd.io/requested-by-groups";
    pub const SIGNATURE: &str = "shepherd.kv-shepherd.io/identity-signature";
    pub const ALL: [&str; 4] = [USERNAME, UID, GROUPS, SIGNATURE];
}

/// The environments a namespace or cluster can belong to, as the schema spells them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentName {
    Test,
    Prod,
}

impl From<EnvironmentName> for crate::domain::Environment {
    fn from(e: EnvironmentName) -> Self {
        match e {
            EnvironmentName::Test => Self::Test,
            EnvironmentName::Prod => Self::Prod,
        }
    }
}
