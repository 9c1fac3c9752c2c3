//! An in-process Kubernetes API and KubeVirt simulator for testing KubeVirt Shepherd
//! (see "Testing against the simulator" in `docs/architecture.md`). Start a
//! [`SimCluster`] (or a [`Sim`] with a management and target clusters), then talk to it
//! with kube clients, kubeconfigs or the real kubectl.

pub mod admission;
pub mod apply;
pub mod auth;
mod cluster;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod kubevirt;
pub mod objects;
pub mod openapi;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod tokens;
pub mod watch;
pub mod workloads;

pub use auth::User;
pub use cluster::{ClusterConfig, Sim, SimCluster, SimConfig};
pub use error::{ApiError, SimError};
pub use faults::{FailWith, Faults};
pub use kubevirt::{FAIL_ANNOTATION, KubeVirtConfig, NodeConfig};
pub use rbac::Authorization;
