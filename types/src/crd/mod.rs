//! The Kubernetes API of Shepherd: group `shepherd.kv-shepherd.io`, version `v1alpha1` (see
//! docs/reference.md). Types only: what the objects look like and the static rules the API server
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
pub mod rules;
pub mod service;
pub mod system;
pub mod vm_namespace;
pub mod vm_operation;
pub mod vm_request;
pub mod vm_template;

pub use crate::vocabulary::{Environment, Operation};
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
pub use crate::vocabulary::identity_annotations as identity;
