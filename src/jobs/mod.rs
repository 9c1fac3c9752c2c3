//! Durable work through River (docs/architecture.md#jobs). Jobs are inserted in the same
//! transaction as the domain write that needs them and carry ids only; workers load the rest.

pub mod drift;
pub mod operate;
pub mod probe;
pub mod provision;
pub mod retention;

use crate::app::job_args::{ProbeCluster, ProbeClusters, PruneEvents, ScanDrift};
use crate::clusters::{ClusterClients, CredentialsError, TargetCluster};
use crate::metric_names;
use riverqueue::{
    IntervalSchedule, MaintenanceConfig, PeriodicJob, PeriodicJobOpts, QueueConfig, Retention,
    Workers,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// The queue for work on target clusters.
pub const VM_QUEUE: &str = "vm_ops";
/// The queue of day-2 operation jobs, apart from provisioning so that a burst of new VMs
/// does not hold up a stop (nor the other way round).
pub const DAY2_QUEUE: &str = "vm_day2";
/// The queue of cluster probes, apart so VM work never waits behind them (nor they behind it).
pub const CLUSTER_QUEUE: &str = "clusters";
/// Cluster probes worked at once by one process.
const CLUSTER_QUEUE_CONCURRENCY: usize = 2;
/// How often every cluster is probed, unless configured.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);

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

/// Delay before retry `attempt` (1-based) of a failed job: 1 s, 2 s, 4 s ... at most 60 s,
/// so a cluster that is away for a minute is caught soon after it returns.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 7) - 1;
    Duration::from_secs((1u64 << exponent).min(60))
}

/// Why a VM's cluster cannot take work on that VM now.
#[derive(Debug)]
pub enum ClusterUnusable {
    /// For good: no retry would help. A reason word and the message.
    Fails {
        reason: &'static str,
        message: String,
    },
    /// Its credentials cannot be used yet: the work waits for an operator to fix them.
    Credentials(CredentialsError),
}

/// The client of the cluster a VM was placed on, checked for the work: the cluster still
/// exists, and is still in the VM's environment (test and prod never mix, even when a
/// cluster's environment changed after placement).
pub async fn vm_cluster(
    pool: &PgPool,
    clusters: &ClusterClients,
    cluster_id: Option<uuid::Uuid>,
    vm_environment: &str,
) -> Result<Result<TargetCluster, ClusterUnusable>, sqlx::Error> {
    let fails = |reason, message: String| Ok(Err(ClusterUnusable::Fails { reason, message }));
    let Some(cluster_id) = cluster_id else {
        return fails("NoCluster", "the VM was never placed on a cluster".into());
    };
    let access = {
        let mut conn = pool.acquire().await?;
        crate::db::catalog::cluster_access(&mut conn, cluster_id).await?
    };
    let Some(access) = access else {
        return fails("ClusterGone", "its cluster is no longer registered".into());
    };
    if access.environment != vm_environment {
        return fails(
            "EnvironmentMismatch",
            format!(
                "cluster {} is now {} but the VM is {vm_environment}",
                access.name, access.environment
            ),
        );
    }
    Ok(clusters
        .get(&access)
        .await
        .map_err(ClusterUnusable::Credentials))
}

/// Whether this attempt is the job's last: a failure now discards it.
pub fn is_last_attempt(row: &riverqueue::JobRow) -> bool {
    row.attempt >= row.max_attempts
}

/// Runs one attempt of a job of `kind`, recording how long it waited to start, how long it
/// ran and how it ended (`shepherd_jobs_total{kind,outcome}`).
pub async fn measured<E>(
    kind: &'static str,
    row: &riverqueue::JobRow,
    attempt: impl std::future::Future<Output = Result<riverqueue::WorkOutcome, E>>,
) -> Result<riverqueue::WorkOutcome, E> {
    let started = std::time::Instant::now();
    if let Some(attempted) = row.attempted_at
        && let Ok(waited) = attempted.duration_since(row.scheduled_at).try_into()
    {
        let waited: Duration = waited;
        metrics::histogram!(metric_names::JOB_WAIT, "kind" => kind).record(waited.as_secs_f64());
    }
    let result = attempt.await;
    let outcome = match &result {
        Ok(riverqueue::WorkOutcome::Snooze(_)) => "snoozed",
        Ok(_) => "completed",
        Err(_) if is_last_attempt(row) => "failed",
        Err(_) => "retried",
    };
    metrics::histogram!(metric_names::JOB_DURATION, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(metric_names::JOBS_TOTAL, "kind" => kind, "outcome" => outcome).increment(1);
    result
}

/// How this process works jobs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs of the `vm_ops` queue (and as many of `vm_day2`) worked at once by this process.
    pub concurrency: usize,
    /// Concurrent writes to one target cluster.
    pub cluster_write_concurrency: usize,
    /// How long one attempt may run before it is cancelled.
    pub job_timeout: Duration,
    /// After how long a job left running (its process died) is rescued and retried. River
    /// requires at least the job timeout.
    pub rescue_after: Duration,
    /// How long running jobs may finish when the process stops.
    pub shutdown_grace: Duration,
    /// How often the River leader probes every cluster.
    pub probe_interval: Duration,
    /// How often the River leader scans every cluster for drift.
    pub drift_interval: Duration,
    /// How long finished (completed or cancelled) jobs are kept; discarded ones 7 times as
    /// long, for their errors.
    pub job_retention: Duration,
    /// Days domain events are kept (at least `retention::MIN_EVENT_RETENTION_DAYS`).
    pub event_retention_days: i32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 10,
            cluster_write_concurrency: crate::clusters::DEFAULT_WRITE_CONCURRENCY,
            job_timeout: provision::JOB_TIMEOUT,
            rescue_after: provision::JOB_TIMEOUT + Duration::from_secs(5 * 60),
            shutdown_grace: Duration::from_secs(30),
            probe_interval: DEFAULT_PROBE_INTERVAL,
            drift_interval: drift::DEFAULT_DRIFT_INTERVAL,
            job_retention: Duration::from_secs(24 * 60 * 60),
            event_retention_days: retention::DEFAULT_EVENT_RETENTION_DAYS,
        }
    }
}

/// A River client with this process's workers, eligible to lead River's maintenance
/// (rescuing jobs of dead processes, pruning finished ones).
pub fn worker_client(
    pool: &PgPool,
    clusters: Arc<ClusterClients>,
    opts: &WorkerOptions,
) -> Result<riverqueue::Client, QueueSetupError> {
    let mut workers = Workers::new();
    workers.add(provision::ProvisionWorker {
        pool: pool.clone(),
        clusters: clusters.clone(),
        job_timeout: opts.job_timeout,
    })?;
    workers.add(operate::OperateWorker {
        pool: pool.clone(),
        clusters: clusters.clone(),
        job_timeout: opts.job_timeout,
    })?;
    let prober = probe::ProbeWorker {
        pool: pool.clone(),
        clusters: clusters.clone(),
    };
    workers.add(drift::DriftWorker {
        pool: pool.clone(),
        clusters,
    })?;
    workers.add(retention::RetentionWorker { pool: pool.clone() })?;
    let retention_days = opts
        .event_retention_days
        .max(retention::MIN_EVENT_RETENTION_DAYS);
    let prune_events = PeriodicJob::new(
        IntervalSchedule::new(Duration::from_secs(3600))?,
        move || PruneEvents { retention_days },
    );
    let scan_all = PeriodicJob::with_options(
        IntervalSchedule::new(opts.drift_interval)?,
        || ScanDrift {},
        PeriodicJobOpts::new().with_id("drift_scan"),
    );
    workers.add::<ProbeCluster, _>(prober.clone())?;
    workers.add::<ProbeClusters, _>(prober)?;
    // Every cluster is probed once when a process becomes River's leader, then each period.
    let probe_all = PeriodicJob::with_options(
        IntervalSchedule::new(opts.probe_interval)?,
        || ProbeClusters {},
        PeriodicJobOpts::new()
            .with_id("cluster_probe_all")
            .with_run_on_start(true),
    );
    let maintenance = MaintenanceConfig::default()
        .with_completed_job_retention(Retention::DeleteAfter(opts.job_retention))
        .with_cancelled_job_retention(Retention::DeleteAfter(opts.job_retention))
        .with_discarded_job_retention(Retention::DeleteAfter(opts.job_retention * 7))
        .with_rescue_after(opts.rescue_after)
        .with_rescuer_interval(opts.rescue_after.min(Duration::from_secs(30)));
    Ok(riverqueue::Client::builder(pool.clone())
        .workers(workers)
        .queue(VM_QUEUE, QueueConfig::new(opts.concurrency.max(1)))
        .queue(DAY2_QUEUE, QueueConfig::new(opts.concurrency.max(1)))
        .queue(CLUSTER_QUEUE, QueueConfig::new(CLUSTER_QUEUE_CONCURRENCY))
        .periodic_job(probe_all)
        .periodic_job(scan_all)
        .periodic_job(prune_events)
        .job_timeout(opts.job_timeout)
        .soft_stop_timeout(opts.shutdown_grace)
        .maintenance(maintenance)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
