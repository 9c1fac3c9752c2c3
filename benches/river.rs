//! River: jobs per second inserted (one per transaction, as approvals insert them) and
//! completed by a River worker client configured as Shepherd's (`QueueConfig` of 10, the
//! default `--worker-concurrency`) whose work does nothing, against a raw insert and a raw
//! update of the same rows in a plain copy of `river_job` by the same number of clients, in
//! the same run.
//!
//! `make bench-river` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench river`;
//! `RIVER_BENCH_JOBS` (5,000) and `RIVER_BENCH_CLIENTS` (8)). Writes the section "River" of
//! BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riverqueue::{Job, JobArgs, QueueConfig, WorkContext, WorkOutcome, Worker, Workers};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

mod report;

const QUEUE: &str = "bench";
/// Shepherd's default number of jobs a process works at once (`WorkerOptions::concurrency`).
const WORKER_CONCURRENCY: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, JobArgs)]
#[river(kind = "bench_noop", queue = "bench")]
struct Noop {
    n: i64,
}

struct NoopWorker;

impl Worker<Noop> for NoopWorker {
    type Error = std::convert::Infallible;

    async fn work(&self, _: WorkContext, job: Job<Noop>) -> Result<WorkOutcome, Self::Error> {
        std::hint::black_box(job.args.n);
        Ok(WorkOutcome::Complete)
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// How long until `target` jobs are completed, polling every 20 ms.
async fn until_completed(pool: &PgPool, target: i64, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let done = count(
            pool,
            "SELECT count(*) FROM river_job WHERE kind = 'bench_noop' AND state = 'completed'",
        )
        .await;
        if done >= target {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "only {done} of {target} jobs completed in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Works the queue with Shepherd's settings and `fetch_cooldown` until `total` bench jobs are
/// completed; the time it took.
async fn work(pool: &PgPool, total: usize, fetch_cooldown: Duration) -> Duration {
    let mut workers = Workers::new();
    workers.add(NoopWorker).unwrap();
    let worker_client = riverqueue::Client::builder(pool.clone())
        .workers(workers)
        .queue(QUEUE, QueueConfig::new(WORKER_CONCURRENCY))
        .fetch_cooldown(fetch_cooldown)
        .build()
        .unwrap();
    let mut running = worker_client.start().unwrap();
    let time = until_completed(pool, total as i64, Duration::from_secs(600)).await;
    running.stop().await.unwrap();
    time
}

#[tokio::main]
async fn main() {
    let jobs = report::env_or("RIVER_BENCH_JOBS", 5_000);
    let clients = report::env_or("RIVER_BENCH_CLIENTS", 8);
    let scratch = report::ScratchDatabase::create("river").await;
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32 + WORKER_CONCURRENCY as u32 + 4)
        .connect(&scratch.url)
        .await
        .unwrap();
    shepherd::app::migrate::run(&pool).await.unwrap();

    // River: inserts through the insert-only client the use cases use, then the workers.
    let inserter = Arc::new(shepherd::jobs::inserter(&pool).unwrap());
    let insert_time = report::spread(clients, jobs, {
        let inserter = inserter.clone();
        move |n| {
            let inserter = inserter.clone();
            async move {
                inserter.insert(Noop { n: n as i64 }).await.expect("insert");
            }
        }
    })
    .await;
    let work_time = work(&pool, jobs, riverqueue::FETCH_COOLDOWN_DEFAULT).await;
    // The same again with a tenth of River's fetch cooldown, to show what bounds the above.
    inserter
        .insert_many((0..jobs).map(|n| Noop { n: n as i64 }))
        .await
        .expect("insert a second batch");
    let short_cooldown = Duration::from_millis(10);
    let short_cooldown_time = work(&pool, 2 * jobs, short_cooldown).await;

    // Baseline: the same rows into an unqueued copy of the table, then each marked done.
    sqlx::raw_sql("CREATE TABLE raw_job (LIKE river_job INCLUDING DEFAULTS)")
        .execute(&pool)
        .await
        .unwrap();
    let raw_insert_time = report::spread(clients, jobs, {
        let pool = pool.clone();
        move |n| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO raw_job (id, args, kind, max_attempts, priority, queue, state)
                     VALUES ($1, $2, 'bench_noop', 25, 1, 'bench', 'available')",
                )
                .bind(n as i64)
                .bind(serde_json::json!({"n": n}))
                .execute(&pool)
                .await
                .expect("raw insert");
            }
        }
    })
    .await;
    let raw_update_time = report::spread(clients, jobs, {
        let pool = pool.clone();
        move |n| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "UPDATE raw_job SET state = 'completed', attempt = 1, attempted_at = now(),
                                        finalized_at = now()
                     WHERE id = $1",
                )
                .bind(n as i64)
                .execute(&pool)
                .await
                .expect("raw update");
            }
        }
    })
    .await;
    let raw_done = count(
        &pool,
        "SELECT count(*) FROM raw_job WHERE state = 'completed'",
    )
    .await;
    assert_eq!(raw_done, jobs as i64, "every raw row was updated");
    pool.close().await;
    scratch.drop().await;

    let rate = |time: Duration| jobs as f64 / time.as_secs_f64();
    let (inserted, worked) = (rate(insert_time), rate(work_time));
    let (raw_inserted, raw_updated) = (rate(raw_insert_time), rate(raw_update_time));
    report::write_section(
        "River",
        "make bench-river",
        &format!(
            "{jobs} no-op jobs inserted one per transaction by {clients} clients, then worked \
             by one River client with {WORKER_CONCURRENCY} concurrent workers; baseline: the \
             same rows inserted into a plain copy of `river_job`, then updated to completed, \
             one statement per row by {clients} clients."
        ),
        &[
            report::Row {
                figure: "jobs inserted".into(),
                value: format!("{inserted:.0} jobs/s"),
                baseline: format!("{raw_inserted:.0} raw inserts/s"),
                ratio: inserted / raw_inserted,
                goal: "(none set)".into(),
            },
            report::Row {
                figure: "jobs worked to completed".into(),
                value: format!("{worked:.0} jobs/s"),
                baseline: format!("{raw_updated:.0} raw updates/s"),
                ratio: worked / raw_updated,
                goal: "(none set)".into(),
            },
            report::Row {
                figure: format!(
                    "jobs worked to completed, fetch cooldown {} ms instead of 100",
                    short_cooldown.as_millis()
                ),
                value: format!("{:.0} jobs/s", rate(short_cooldown_time)),
                baseline: format!("{raw_updated:.0} raw updates/s"),
                ratio: rate(short_cooldown_time) / raw_updated,
                goal: "(none set)".into(),
            },
        ],
    );
}
