//! Job arguments: ids only, so a job always acts on the current state of the database.

use riverqueue::JobArgs;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Create (or converge) one approved VM on its target cluster. Its worker comes with the
/// provisioning capability; the job is enqueued at approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "vm_provision", queue = "vm_ops", max_attempts = 10)]
pub struct ProvisionVm {
    pub vm_id: Uuid,
}

/// Carry out one approved operation on an existing VM (start, stop, delete, ...). Its worker
/// comes with the VM operations capability; the job is enqueued when the ticket is approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JobArgs)]
#[river(kind = "vm_operate", queue = "vm_ops", max_attempts = 10)]
pub struct OperateVm {
    pub ticket_id: Uuid,
}
