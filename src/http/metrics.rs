//! Prometheus metrics, served at `/metrics` on the health address
//! (docs/architecture.md#processes-and-interfaces).
//!
//! Code records through the `metrics` facade (`counter!`, `histogram!`, `gauge!`) under the
//! names below; [`install`] puts a global `metrics-exporter-prometheus` recorder in place
//! (once per process) and describes every family; [`scrape`] renders them as Prometheus
//! text after collecting the process metrics (`metrics-process`) and reading the
//! scrape-time gauges from PostgreSQL. Durations are histograms in seconds, counters end
//! in `_total`, and every family of ours starts with `shepherd_`.
//!
//! Labels are bounded: routes are templates (`/api/v1/tickets/{id}`), never raw paths;
//! methods outside the standard set are `other`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Label, Unit, counter, describe_counter, describe_gauge, describe_histogram};
use metrics::{gauge, histogram};

use crate::domain::cluster_probe::ClusterHealth;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::domain::Environment;

pub use crate::metric_names::*;

/// Buckets of request and reconcile durations: 1 ms to 10 s.
const FAST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of job durations and waits: jobs call target clusters (30 s timeout each), may
/// run for minutes and wait out backoffs of up to a minute or missing credentials.
const SLOW_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Histograms are drained this often even when nobody scrapes, so memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// A scrape waits this long for the database before reporting it down.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);
/// The values of `clusters.health`.
const CLUSTER_HEALTH_VALUES: [ClusterHealth; 4] = ClusterHealth::ALL;
/// The River job states counted in the queue depth.
const QUEUED_STATES: [&str; 4] = ["available", "scheduled", "retryable", "running"];

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    /// Every database gauge series set so far: one absent from the latest read is set to
    /// 0 (a cluster that became healthy, a queue that drained), since the facade cannot
    /// remove a series.
    database_series: Mutex<HashSet<Series>>,
}

/// One gauge series: its name and labels.
type Series = (&'static str, Vec<(&'static str, String)>);

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

fn exporter() -> &'static Exporter {
    EXPORTER.get_or_init(|| {
        let handle = match builder().install_recorder() {
            Ok(handle) => handle,
            Err(err) => {
                // Another recorder was installed first (an embedding program): our metrics go
                // there, and /metrics renders only what this unused recorder holds.
                tracing::warn!(error = %err, "a metrics recorder is already installed; /metrics stays empty");
                builder().build_recorder().handle()
            }
        };
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the metrics upkeep thread; scrapes drain histograms instead");
        }
        Exporter {
            handle,
            process,
            database_series: Mutex::new(HashSet::new()),
        }
    })
}

fn builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (RECONCILE_DURATION, FAST_BUCKETS),
        (WEBHOOK_REQUEST_DURATION, FAST_BUCKETS),
        (API_REQUEST_DURATION, FAST_BUCKETS),
        (JOB_DURATION, SLOW_BUCKETS),
        (JOB_WAIT, SLOW_BUCKETS),
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            .expect("bucket lists are not empty");
    }
    // Any other histogram of ours is a duration too: render it as a histogram, not a summary.
    builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), FAST_BUCKETS)
        .expect("bucket lists are not empty")
}

/// Installs the process-wide Prometheus recorder and describes every family; later calls
/// (several servers in one test process) return the same handle. Call it before anything
/// records: values recorded earlier are lost.
pub fn install() -> PrometheusHandle {
    exporter().handle.clone()
}

fn describe() {
    describe_counter!(
        RECONCILE_TOTAL,
        Unit::Count,
        "Reconciliations by kind and result"
    );
    describe_histogram!(
        RECONCILE_DURATION,
        Unit::Seconds,
        "Time one reconciliation takes, by kind"
    );
    describe_counter!(
        JOBS_TOTAL,
        Unit::Count,
        "River jobs worked, by kind and outcome"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Time one job attempt takes, by kind"
    );
    describe_histogram!(
        JOB_WAIT,
        Unit::Seconds,
        "Time from a job's scheduled time to its start, by kind"
    );
    describe_counter!(
        WEBHOOK_REQUESTS_TOTAL,
        Unit::Count,
        "Admission reviews answered, by endpoint, operation and verdict"
    );
    describe_histogram!(
        WEBHOOK_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an admission review, by endpoint, operation and verdict"
    );
    describe_counter!(
        API_REQUESTS_TOTAL,
        Unit::Count,
        "REST API requests, by route template, method and status code"
    );
    describe_histogram!(
        API_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer a REST API request, by route template and method"
    );
    describe_gauge!(
        TICKETS_PENDING,
        Unit::Count,
        "Tickets waiting for a decision (PendingApproval), by environment"
    );
    describe_gauge!(
        CLUSTER_HEALTH,
        "1 for each live cluster's current health value, 0 for its other values"
    );
    describe_gauge!(
        JOB_QUEUE_DEPTH,
        Unit::Count,
        "River jobs available, scheduled, retryable or running, by queue, kind and state"
    );
    describe_gauge!(AUDIT_LOG_ROWS, Unit::Count, "Rows in the audit log");
    describe_gauge!(
        DATABASE_UP,
        "1 when the last scrape could read PostgreSQL, else 0 (the database gauges are then stale)"
    );
}

/// `GET /metrics`: the Prometheus text exposition. The database gauges are read here; when
/// PostgreSQL cannot be read within a few seconds the rest is still rendered, with
/// `shepherd_database_up` 0 and those gauges as they were.
pub async fn scrape(State(pool): State<PgPool>) -> Response {
    let exporter = exporter();
    exporter.process.collect();
    let read = tokio::time::timeout(DATABASE_TIMEOUT, database_gauges(&pool)).await;
    let up = match read {
        Ok(Ok(series)) => {
            exporter.set_database_gauges(series);
            true
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "metrics: cannot read the database");
            false
        }
        Err(_) => {
            tracing::debug!(timeout = ?DATABASE_TIMEOUT, "metrics: the database did not answer");
            false
        }
    };
    gauge!(DATABASE_UP).set(if up { 1.0 } else { 0.0 });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exporter.handle.render(),
    )
        .into_response()
}

impl Exporter {
    fn set_database_gauges(&self, fresh: BTreeMap<Series, f64>) {
        let mut seen = self
            .database_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for stale in seen.iter().filter(|s| !fresh.contains_key(*s)) {
            gauge!(stale.0, labels(&stale.1)).set(0.0);
        }
        for (series, value) in fresh {
            gauge!(series.0, labels(&series.1)).set(value);
            seen.insert(series);
        }
    }
}

fn labels(pairs: &[(&'static str, String)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(key, value)| Label::new(*key, value.clone()))
        .collect()
}

/// The scrape-time gauges, in one query (one snapshot, one round trip).
async fn database_gauges(pool: &PgPool) -> sqlx::Result<BTreeMap<Series, f64>> {
    let rows: Vec<(String, String, String, String, f64)> = sqlx::query_as(
        r#"SELECT 'tickets_pending', environment, '', '', count(*)::float8
             FROM tickets WHERE status = 'PendingApproval' GROUP BY environment
           UNION ALL
           SELECT 'cluster_health', name, health, '', 1::float8
             FROM clusters WHERE deleted_at IS NULL
           UNION ALL
           SELECT 'job_queue_depth', queue, kind, state::text, count(*)::float8
             FROM river_job WHERE state::text = ANY($1) GROUP BY queue, kind, state
           UNION ALL
           SELECT 'audit_log_rows', '', '', '', row_count::float8 FROM audit_chain_head"#,
    )
    .bind(QUEUED_STATES.as_slice())
    .fetch_all(pool)
    .await?;
    let mut out = BTreeMap::new();
    // Every environment has a pending count, even with no ticket waiting.
    for env in Environment::ALL {
        out.insert(
            (
                TICKETS_PENDING,
                vec![("environment", env.as_str().to_string())],
            ),
            0.0,
        );
    }
    for (family, a, b, c, value) in rows {
        match family.as_str() {
            "tickets_pending" => {
                out.insert((TICKETS_PENDING, vec![("environment", a)]), value);
            }
            "cluster_health" => {
                for health in CLUSTER_HEALTH_VALUES.map(ClusterHealth::as_str) {
                    out.entry((
                        CLUSTER_HEALTH,
                        vec![("cluster", a.clone()), ("health", health.to_string())],
                    ))
                    .or_insert(0.0);
                }
                out.insert((CLUSTER_HEALTH, vec![("cluster", a), ("health", b)]), value);
            }
            "job_queue_depth" => {
                out.insert(
                    (
                        JOB_QUEUE_DEPTH,
                        vec![("queue", a), ("kind", b), ("state", c)],
                    ),
                    value,
                );
            }
            _ => {
                out.insert((AUDIT_LOG_ROWS, Vec::new()), value);
            }
        }
    }
    Ok(out)
}

/// Middleware of the REST API: counts each request and times it under its route template
/// (`unmatched` when no route matched), method and status code.
pub async fn track_api(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(API_REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    histogram!(API_REQUEST_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records one answered admission review. `endpoint` is `mutate` or `validate`,
/// `operation` the admission operation (`unknown` without a request), `verdict` one of
/// `allowed`, `denied`, `invalid`.
pub(crate) fn record_admission(
    endpoint: &'static str,
    operation: &'static str,
    verdict: &'static str,
    elapsed: Duration,
) {
    counter!(WEBHOOK_REQUESTS_TOTAL, "endpoint" => endpoint, "operation" => operation, "verdict" => verdict)
        .increment(1);
    histogram!(WEBHOOK_REQUEST_DURATION, "endpoint" => endpoint, "operation" => operation, "verdict" => verdict)
        .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }
}
