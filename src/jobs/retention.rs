//! The `prune_events` worker: deletes domain events older than their retention, in batches
//! so no statement holds many rows, and admission records no reconcile needs any more
//! (unclaimed identity nonces, old deletion records). Audit rows are never deleted; finished River jobs are
//! River's own cleaner's (`WorkerOptions::job_retention`).

use crate::app::job_args::PruneEvents;
use crate::db;
use riverqueue::{Job, WorkContext, WorkOutcome, Worker};
use sqlx::PgPool;

/// The shortest retention the database allows deleting (its trigger's floor).
pub const MIN_EVENT_RETENTION_DAYS: i32 = 7;
/// Days domain events are kept, unless configured.
pub const DEFAULT_EVENT_RETENTION_DAYS: i32 = 30;
const BATCH: i64 = 1000;

pub struct RetentionWorker {
    pub pool: PgPool,
}

impl Worker<PruneEvents> for RetentionWorker {
    type Error = sqlx::Error;

    async fn work(
        &self,
        _context: WorkContext,
        job: Job<PruneEvents>,
    ) -> Result<WorkOutcome, sqlx::Error> {
        let days = job.args.retention_days.max(MIN_EVENT_RETENTION_DAYS);
        let mut total = 0;
        loop {
            let mut conn = self.pool.acquire().await?;
            let deleted = db::events::prune_older_than(&mut conn, days, BATCH).await?;
            total += deleted;
            if deleted < BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, days, "pruned old domain events");
        }
        let records = db::stamps::prune(&mut *self.pool.acquire().await?, days).await?;
        if records > 0 {
            tracing::info!(deleted = records, "pruned stale admission records");
        }
        Ok(WorkOutcome::Complete)
    }
}
