//! River job arguments: the contract between the use cases that enqueue work and the
//! workers (`crate::jobs`) that do it. Ids only, so a job always acts on the current state
//! of the database.

use riverqueue::JobArgs;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Create (or converge) one approved VM on its target cluster (`jobs::provision`); enqueued
/// at approval. Ten attempts with `jobs::backoff` span about five minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "vm_provision", queue = "vm_ops", max_attempts = 10)]
pub struct ProvisionVm {
    pub vm_id: Uuid,
}

/// Carry out one approved operation on an existing VM (start, stop, delete, ...;
/// `jobs::operate`); enqueued when the ticket is approved, in a queue of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "vm_operate", queue = "vm_day2", max_attempts = 10)]
pub struct OperateVm {
    pub ticket_id: Uuid,
}

/// Probe one cluster (`jobs::probe`): reachability, KubeVirt, capabilities. Inserted when a
/// Cluster or its kubeconfig Secret changes; at most one waits or runs per cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "cluster_probe",
    queue = "clusters",
    max_attempts = 3,
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ProbeCluster {
    pub cluster_id: Uuid,
}

/// Probe every live cluster: the periodic job the River leader inserts (`jobs::probe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "cluster_probe_all",
    queue = "clusters",
    max_attempts = 1,
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ProbeClusters {}

/// Compare every live cluster's managed VMs with the rows placed on it (`jobs::drift`):
/// the periodic job the River leader inserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "drift_scan",
    queue = "clusters",
    max_attempts = 1,
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct ScanDrift {}

/// Delete domain events past their retention (`jobs::retention`): the periodic job the
/// River leader inserts. Audit rows are never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(
    kind = "prune_events",
    queue = "clusters",
    max_attempts = 1,
    unique(by_args, by_state(available, pending, running, scheduled, retryable))
)]
pub struct PruneEvents {
    /// Events older than this many days go.
    pub retention_days: i32,
}
