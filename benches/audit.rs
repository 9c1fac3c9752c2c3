//! The audit log's cost, as ratios to baselines measured in the same run on the same
//! PostgreSQL (machines here are noisy; absolute figures do not compare between runs):
//!
//! 1. Appends per second under `AUDIT_BENCH_WRITERS` (16) concurrent writers, each append in
//!    its own transaction through `db::audit::append` (the chain head is locked, the hash
//!    computed, the row and the head written), against plain single-row inserts of the same
//!    rows into an unchained copy of the table by as many writers.
//! 2. `shepherd audit verify` on `AUDIT_BENCH_ROWS` (1,000,000) rows: rows per second of the
//!    real binary, against reading the same rows in the same batches without checking them
//!    (what verifying cannot go below). Goal: at least 200,000 rows/s.
//!
//! `make bench-audit` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench audit`):
//! it creates a scratch database on that server, drops it afterwards, prints the figures and
//! writes them into BENCHMARKS.md (section "Audit").

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::json;
use shepherd::db::audit::AuditEntry;
use shepherd::domain::audit_chain::{AuditContent, row_hash};
use sqlx::postgres::{PgPool, PgPoolOptions};

mod report;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The row every writer appends (a realistic size: a VM request's audit row).
fn entry(writer: usize, n: usize) -> AuditEntry {
    AuditEntry::new(
        "vm.request",
        &format!("user-{writer}"),
        "ticket",
        format!("ticket-{writer}-{n}"),
        "",
    )
    .environment("test")
    .details(json!({"count": 2, "template": "fedora", "size": "small", "reason": "load test"}))
}

/// `per_writer` transactions on each of `writers` tasks; the elapsed wall time.
async fn concurrently<F, Fut>(writers: usize, per_writer: usize, work: F) -> Duration
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let work = work.clone();
        tasks.spawn(async move {
            for n in 0..per_writer {
                work(writer, n).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a writer failed");
    }
    start.elapsed()
}

/// Appends `rows` chained rows in bulk (multi-row inserts of 10,000), as if appended one by
/// one: each hash chains to the previous one, and the head is moved to the last row.
async fn fill(pool: &PgPool, rows: usize) {
    let mut tx = pool.begin().await.unwrap();
    let (mut prev,): (String,) =
        sqlx::query_as("SELECT last_hash FROM audit_chain_head WHERE singleton FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let occurred_at = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap();
    let details = json!({"count": 2, "template": "fedora", "size": "small", "reason": "load test"});
    let mut last_id = 0_i64;
    let mut done = 0;
    while done < rows {
        let batch = (rows - done).min(10_000);
        let (mut ids, mut prevs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for n in done..done + batch {
            let content = AuditContent {
                occurred_at,
                action: "vm.request".into(),
                actor: format!("user-{}", n % 50),
                resource_type: "ticket".into(),
                resource_id: format!("ticket-{n}"),
                resource_name: String::new(),
                parent_type: None,
                parent_id: None,
                environment: Some("test".into()),
                details: details.clone(),
            };
            let hash = row_hash(&prev, &content);
            ids.push(format!("ticket-{n}"));
            prevs.push(std::mem::replace(&mut prev, hash.clone()));
            hashes.push(hash);
        }
        let actors: Vec<String> = (done..done + batch)
            .map(|n| format!("user-{}", n % 50))
            .collect();
        let inserted: Vec<(i64,)> = sqlx::query_as(
            "INSERT INTO audit_log (occurred_at, action, actor, resource_type, resource_id,
                                    resource_name, environment, details, prev_hash, hash)
             SELECT $1, 'vm.request', actor, 'ticket', resource_id, '', 'test', $2, prev_hash, hash
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])
                  WITH ORDINALITY AS r(actor, resource_id, prev_hash, hash, ord)
             ORDER BY ord
             RETURNING id",
        )
        .bind(occurred_at)
        .bind(&details)
        .bind(&actors)
        .bind(&ids)
        .bind(&prevs)
        .bind(&hashes)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        last_id = inserted.iter().map(|(id,)| *id).max().unwrap_or(last_id);
        done += batch;
    }
    sqlx::query(
        "UPDATE audit_chain_head SET last_id = $1, last_hash = $2, row_count = row_count + $3
         WHERE singleton",
    )
    .bind(last_id)
    .bind(&prev)
    .bind(rows as i64)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Reads every audit row in `VERIFY`'s batches without checking them; rows read.
async fn read_all(pool: &PgPool) -> u64 {
    let mut conn = pool.acquire().await.unwrap();
    let (mut after, mut rows) = (0, 0_u64);
    loop {
        let batch = shepherd::db::audit::rows_after(&mut conn, after, 1000)
            .await
            .unwrap();
        let Some(last) = batch.last() else { break };
        after = last.id;
        rows += batch.len() as u64;
        std::hint::black_box(&batch);
    }
    rows
}

#[tokio::main]
async fn main() {
    let writers = env_or("AUDIT_BENCH_WRITERS", 16);
    let per_writer = env_or("AUDIT_BENCH_APPENDS", 300);
    let verify_rows = env_or("AUDIT_BENCH_ROWS", 1_000_000);
    let scratch = report::ScratchDatabase::create("audit").await;
    let pool = PgPoolOptions::new()
        .max_connections(writers as u32 + 2)
        .connect(&scratch.url)
        .await
        .unwrap();
    shepherd::app::migrate::run(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE plain_audit (LIKE audit_log INCLUDING DEFAULTS INCLUDING IDENTITY)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let total = (writers * per_writer) as f64;
    let plain = concurrently(writers, per_writer, {
        let pool = pool.clone();
        move |writer, n| {
            let pool = pool.clone();
            async move {
                let entry = entry(writer, n);
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO plain_audit (occurred_at, action, actor, resource_type,
                        resource_id, environment, details, prev_hash, hash)
                     VALUES (now(), $1, $2, $3, $4, $5, $6, '', '')",
                )
                .bind(&entry.action)
                .bind(&entry.actor)
                .bind(&entry.resource_type)
                .bind(&entry.resource_id)
                .bind(&entry.environment)
                .bind(&entry.details)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
    })
    .await;
    let chained = concurrently(writers, per_writer, {
        let pool = pool.clone();
        move |writer, n| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                shepherd::db::audit::append(&mut tx, &entry(writer, n))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    })
    .await;
    let appends_per_s = total / chained.as_secs_f64();
    let plain_per_s = total / plain.as_secs_f64();

    fill(&pool, verify_rows).await;
    let rows = verify_rows as u64 + total as u64;
    let start = Instant::now();
    let read = read_all(&pool).await;
    let read_time = start.elapsed();
    assert_eq!(read, rows, "every row was read");
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shepherd"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &scratch.url)
        .output()
        .expect("run shepherd audit verify");
    let verify_time = start.elapsed();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("chain intact"),
        "audit verify failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify_per_s = rows as f64 / verify_time.as_secs_f64();
    let read_per_s = rows as f64 / read_time.as_secs_f64();
    pool.close().await;
    scratch.drop().await;

    let rows_table = vec![
        report::Row {
            figure: format!("chained appends, {writers} writers"),
            value: format!("{appends_per_s:.0} appends/s"),
            baseline: format!("{plain_per_s:.0} plain inserts/s (unchained copy of the table)"),
            ratio: appends_per_s / plain_per_s,
            goal: "(none set)".into(),
        },
        report::Row {
            figure: format!("`shepherd audit verify`, {rows} rows"),
            value: format!("{verify_per_s:.0} rows/s"),
            baseline: format!("{read_per_s:.0} rows/s read in the same batches, unchecked"),
            ratio: verify_per_s / read_per_s,
            goal: format!(
                "≥ 200,000 rows/s: {}",
                if verify_per_s >= 200_000.0 {
                    "met"
                } else {
                    "missed"
                }
            ),
        },
    ];
    report::write_section(
        "Audit",
        "make bench-audit",
        &format!(
            "{writers} writers × {per_writer} transactions each; {verify_rows} rows filled in bulk \
             (chained exactly as appends chain them) before verifying."
        ),
        &rows_table,
    );
}
