//! Durable work through River (DESIGN §7). Jobs are inserted in the same transaction as the
//! domain write that needs them and carry ids only; workers load the rest.

pub mod args;

use sqlx::PgPool;

/// The queue for work on target clusters.
pub const VM_QUEUE: &str = "vm_ops";

#[derive(Debug, thiserror::Error)]
#[error("building the River client: {0}")]
pub struct QueueSetupError(#[from] pub riverqueue::Error);

/// A River client that only inserts jobs (no queues, no workers, never leads): what use
/// cases need to enqueue work inside their transactions.
pub fn inserter(pool: &PgPool) -> Result<riverqueue::Client, QueueSetupError> {
    Ok(riverqueue::Client::builder(pool.clone())
        .without_leader_election()
        .build()?)
}
