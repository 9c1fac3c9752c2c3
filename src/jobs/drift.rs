//! The `drift_scan` worker: for every live cluster, compare the VirtualMachines carrying our
//! label with the rows placed on it (`domain::drift::judge`), mark the VMs it confirms gone
//! as missing (unless the cluster is suspect) and record orphans and drift. A cluster that
//! cannot be read is skipped: its probe reports why.

use crate::app::AppError;
use crate::app::drift::record_scan;
use crate::app::job_args::ScanDrift;
use crate::app::provisioning::record_observation;
use crate::clusters::{ClusterClients, drift};
use crate::db;
use crate::db::catalog::ClusterAccess;
use crate::domain::drift::{RecordedVm, judge};
use riverqueue::{Job, WorkContext, WorkOutcome, Worker, WorkerTimeout};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// How often every cluster is scanned, unless configured.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(10 * 60);
const SCAN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub struct DriftWorker {
    pub pool: PgPool,
    pub clusters: Arc<ClusterClients>,
}

impl DriftWorker {
    async fn scan(&self, access: &ClusterAccess) -> Result<(), DriftError> {
        let Ok(target) = self.clusters.get(access).await else {
            return Ok(());
        };
        let found = match drift::managed_vms(&target).await {
            Ok(found) => found,
            Err(err) => {
                tracing::info!(cluster = %access.name, error = %err, "drift scan skipped: the cluster cannot be read");
                return Ok(());
            }
        };
        let rows = {
            let mut conn = self.pool.acquire().await?;
            db::vms::on_cluster(&mut conn, access.id).await?
        };
        let recorded: Vec<RecordedVm> = rows
            .into_iter()
            .filter_map(|r| {
                Some(RecordedVm {
                    state: r.status.parse().ok()?,
                    namespace: r.namespace,
                    name: r.name,
                    reason: r.status_reason,
                })
            })
            .collect();
        let verdict = judge(&recorded, &found);
        if let Some(why) = &verdict.suspect {
            tracing::warn!(cluster = %access.name, "drift scan: cluster is suspect: {why}");
        }
        if !record_scan(&self.pool, access.id, &access.name, &verdict).await? {
            return Ok(());
        }
        for name in &verdict.missing {
            tracing::info!(cluster = %access.name, vm = %name, "drift scan: VM gone from its cluster");
            record_observation(&self.pool, access.id, name, None).await?;
        }
        Ok(())
    }
}

impl Worker<ScanDrift> for DriftWorker {
    type Error = DriftError;

    fn timeout(&self, _job: &Job<ScanDrift>) -> WorkerTimeout {
        WorkerTimeout::After(SCAN_TIMEOUT)
    }

    async fn work(
        &self,
        _context: WorkContext,
        _job: Job<ScanDrift>,
    ) -> Result<WorkOutcome, DriftError> {
        let clusters = {
            let mut conn = self.pool.acquire().await?;
            db::catalog::live_cluster_access(&mut conn).await?
        };
        for access in &clusters {
            // One cluster's failure does not stop the others; the next period retries.
            if let Err(err) = self.scan(access).await {
                tracing::warn!(cluster = %access.name, error = %err, "drift scan failed");
            }
        }
        Ok(WorkOutcome::Complete)
    }
}
