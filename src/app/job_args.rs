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

/// Carry out one approved operation on an existing VM (start, stop, delete, ...); enqueued
/// when the ticket is approved. Its worker does not exist yet, so these jobs wait in a queue
/// of their own that no client works (a client working `vm_ops` would discard a kind it
/// has no worker for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "vm_operate", queue = "vm_day2", max_attempts = 10)]
pub struct OperateVm {
    pub ticket_id: Uuid,
}
