//! The `cluster_probe` workers: read each target cluster (`clusters::probe`), judge it
//! (`domain::cluster_probe::assess`) and record the verdict (`app::cluster_probe`). A
//! cluster that cannot be reached is a finding, not a job failure; only a failure to
//! record it is retried.

use crate::app::AppError;
use crate::app::cluster_probe::{self, ProbeOutcome};
use crate::app::job_args::{ProbeCluster, ProbeClusters};
use crate::clusters::{ClusterClients, probe};
use crate::db;
use crate::domain::cluster_probe::{ProbeFailure, assess};
use futures::StreamExt;
use riverqueue::{Job, WorkContext, WorkOutcome, Worker, WorkerTimeout};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Clusters probed at once by one `cluster_probe_all` job.
const PARALLEL_PROBES: usize = 8;
/// A probe makes three calls of at most `clusters::CALL_TIMEOUT` each.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct ProbeWorker {
    pub pool: PgPool,
    pub clusters: Arc<ClusterClients>,
}

impl ProbeWorker {
    /// Probes one cluster and records what it found; None when the cluster is gone.
    pub async fn probe(&self, cluster_id: Uuid) -> Result<Option<ProbeOutcome>, ProbeError> {
        let access = {
            let mut conn = self.pool.acquire().await?;
            db::catalog::cluster_access(&mut conn, cluster_id).await?
        };
        let Some(access) = access else {
            return Ok(None);
        };
        let facts = match self.clusters.get(&access).await {
            Ok(target) => probe::gather(&target).await,
            Err(err) => Err(ProbeFailure::NoCredentials {
                reason: err.reason(),
                message: err.to_string(),
            }),
        };
        let assessment = assess(facts);
        let outcome = cluster_probe::record(&self.pool, cluster_id, &assessment).await?;
        if let Some(o) = outcome.as_ref().filter(|o| o.changed) {
            tracing::info!(cluster = %o.cluster, health = o.health.as_str(),
                           reason = assessment.reason, "cluster probe: {}", assessment.message);
        }
        Ok(outcome)
    }
}

impl Worker<ProbeCluster> for ProbeWorker {
    type Error = ProbeError;

    fn timeout(&self, _job: &Job<ProbeCluster>) -> WorkerTimeout {
        WorkerTimeout::After(PROBE_TIMEOUT)
    }

    async fn work(
        &self,
        _context: WorkContext,
        job: Job<ProbeCluster>,
    ) -> Result<WorkOutcome, ProbeError> {
        self.probe(job.args.cluster_id).await?;
        Ok(WorkOutcome::Complete)
    }
}

impl Worker<ProbeClusters> for ProbeWorker {
    type Error = ProbeError;

    fn timeout(&self, _job: &Job<ProbeClusters>) -> WorkerTimeout {
        WorkerTimeout::After(PROBE_TIMEOUT)
    }

    async fn work(
        &self,
        _context: WorkContext,
        _job: Job<ProbeClusters>,
    ) -> Result<WorkOutcome, ProbeError> {
        let ids = {
            let mut conn = self.pool.acquire().await?;
            db::catalog::live_cluster_ids(&mut conn).await?
        };
        let results: Vec<_> = futures::stream::iter(ids)
            .map(|id| self.probe(id))
            .buffer_unordered(PARALLEL_PROBES)
            .collect()
            .await;
        // One cluster's failure to record does not hide the others; the next period retries.
        for err in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %err, "cluster probe could not be recorded");
        }
        Ok(WorkOutcome::Complete)
    }
}
