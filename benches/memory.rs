//! Memory: peak RSS of a `shepherd run` process (webhook, controllers, watchers and workers,
//! a process of its own so that nothing else counts) once it has taken 1,000 and then
//! 10,000 VmRequests with 10,000 and then 100,000 VM rows, against the same process with
//! nothing to manage, in the same run. Goal: under 200 MiB at 10,000, and growth from 1,000
//! to 10,000 sub-linear.
//!
//! The VmRequests are real: alice creates them through the process's admission webhook and
//! it records their tickets (pending approval). The VM rows are live rows (Running) of
//! finished tickets, on a registered cluster whose credentials are absent, so that no
//! watcher compares them with a cluster: that would need as many simulated VirtualMachines.
//!
//! `make bench-memory` (or `DATABASE_URL=... SHEPHERD_KUBECTL=... cargo bench --bench
//! memory`; `MEMORY_BENCH_SECONDS` (20): how long the process settles before each reading). Writes the section
//! "Memory" of BENCHMARKS.md.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

use std::str::FromStr;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use shepherd::crd::VmRequest;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Services of `shop`; each takes 910 distinct pending requests of alice (count × disk).
const SERVICES: usize = 12;

/// The VmRequest number `n`, distinct from every other (identical pending ones are refused).
fn vm_request(n: usize) -> VmRequest {
    let per_service = 10 * 91;
    let (service, rest) = (n / per_service, n % per_service);
    serde_json::from_value(json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1", "kind": "VmRequest",
        "metadata": {"name": format!("r{n:05}"), "namespace": "apps"},
        "spec": {
            "system": "shop", "service": format!("s{service}"), "targetNamespace": "team-a",
            "template": "fedora", "instanceSize": "small", "count": 1 + rest % 10,
            "diskGib": 10 + rest / 10, "reason": "bench"
        }
    }))
    .unwrap()
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// alice creates VmRequests `from..to` through the webhook; returns once all have tickets.
async fn create_requests(env: &common::e2e::Env, from: usize, to: usize) {
    let api: Api<VmRequest> = Api::namespaced(env.sim.kube_client("alice").unwrap(), "apps");
    report::spread(16, to - from, move |n| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &vm_request(from + n))
                .await
                .expect("create a VmRequest");
        }
    })
    .await;
    let start = Instant::now();
    while (scalar(
        &env.db.pool,
        "SELECT count(*) FROM tickets WHERE status = 'PendingApproval'",
    )
    .await as usize)
        < to
    {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the tickets were not all recorded"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Live VM rows `from..to` (10 per finished ticket) on cluster `remote-1`, Service
/// `shop.fleet`.
async fn add_vm_rows(pool: &PgPool, from: usize, to: usize) {
    sqlx::query(
        "WITH ids AS (
           SELECT (SELECT id FROM services WHERE name = 'fleet' AND deleted_at IS NULL) AS service,
                  (SELECT id FROM namespaces WHERE name = 'team-a') AS namespace,
                  (SELECT id FROM clusters WHERE name = 'remote-1') AS cluster
         ), tickets AS (
           INSERT INTO tickets (operation, requester, request_uid, service_id, namespace_id,
                                environment, vm_count, status, request)
           SELECT 'create', 'alice', 'bench-fleet-' || t, ids.service, ids.namespace, 'test', 10,
                  'Succeeded', '{}'
           FROM ids, generate_series($1::int / 10, $2::int / 10 - 1) t
           RETURNING id, request_uid
         )
         INSERT INTO vms (name, ticket_id, service_id, namespace_id, cluster_id, instance_index,
                          status, created_by, ip_address, node)
         SELECT 'team-a-shop-fleet-' || (10 * t.n + i), t.id, ids.service, ids.namespace,
                ids.cluster, 10 * t.n + i + 1, 'Running', 'alice', '10.0.0.1', 'node-1'
         FROM ids,
              (SELECT id, split_part(request_uid, '-', 3)::int AS n FROM tickets) t,
              generate_series(0, 9) i",
    )
    .bind(from as i32)
    .bind(to as i32)
    .execute(pool)
    .await
    .expect("insert VM rows");
}

/// A `shepherd run` process with every component, serving the webhook at `addr`.
fn start_process(env: &common::e2e::Env, addr: std::net::SocketAddr) -> tokio::process::Child {
    let key = env.dir.path().join("identity.key");
    std::fs::write(&key, common::e2e::KEY).unwrap();
    let (cert, tls_key) = env.webhook_tls();
    let log = std::fs::File::create(env.dir.path().join("memory.log")).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_shepherd"))
        .args([
            "run",
            "--instance",
            "bench-memory",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .arg("--webhook-addr")
        .arg(addr.to_string())
        .arg("--webhook-cert")
        .arg(cert)
        .arg("--webhook-key")
        .arg(tls_key)
        .arg("--identity-key-file")
        .arg(&key)
        .arg("--allow-privileged-database-user")
        .env("DATABASE_URL", &env.db.url)
        .env("KUBECONFIG", env.dir.path().join("admin.kubeconfig"))
        .env("RUST_LOG", "shepherd=warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start shepherd run")
}

/// The process's peak RSS so far (VmHWM), in MiB.
fn peak_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("shepherd run is still running");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib / 1024.0
}

/// A free port on the loopback interface for the process's webhook.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::main]
async fn main() {
    let window = Duration::from_secs(report::env_or("MEMORY_BENCH_SECONDS", 20) as u64);
    let scratch = report::ScratchDatabase::create("memory").await;
    let db = common::setup(
        PgPoolOptions::new(),
        PgConnectOptions::from_str(&scratch.url).unwrap(),
    )
    .await;
    let mut env = common::e2e::start(db).await;
    env.add_target("target-1", "test", true).await;
    env.add_target("remote-1", "test", false).await;
    env.apply_shop().await;
    let services: Vec<String> = (0..SERVICES)
        .map(|s| format!("s{s}"))
        .chain(["fleet".to_string()])
        .collect();
    env.apply_shop_services(&services).await;

    // From here on the measured process does all the work, alone.
    env.stop_shepherd().await;
    let addr = free_addr();
    let mut process = start_process(&env, addr);
    let pid = process.id().unwrap();
    let ready = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the webhook never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.register_webhooks_at(addr).await;
    tokio::time::sleep(window).await;
    let empty = peak_rss(pid);
    let mut measured = Vec::new();
    let mut created = 0;
    for requests in [1_000, 10_000] {
        create_requests(&env, created, requests).await;
        add_vm_rows(&env.db.pool, created * 10, requests * 10).await;
        created = requests;
        tokio::time::sleep(window).await;
        let vm_rows = scalar(&env.db.pool, "SELECT count(*) FROM vms").await;
        let rss = peak_rss(pid);
        println!("{requests} VmRequests, {vm_rows} VM rows: peak RSS {rss:.1} MiB");
        measured.push((requests, vm_rows, rss));
    }
    process.kill().await.unwrap();
    drop(env);
    scratch.drop().await;

    let [
        (small, small_rows, small_rss),
        (large, large_rows, large_rss),
    ] = measured[..]
    else {
        unreachable!("two sizes measured")
    };
    let growth = large_rss / small_rss;
    report::write_section(
        "Memory",
        "make bench-memory",
        &format!(
            "Peak RSS (VmHWM) of one `shepherd run` process (webhook, controllers, watchers, \
             workers) read {} s after it started with nothing to manage (the baseline), then {} \
             s after alice created the VmRequests through its webhook (16 at a time; it \
             recorded them all, pending approval) and the VM rows were added to the database. \
             The VM rows are Running rows on a registered cluster without credentials, so no \
             watcher needs simulated VMs for them.",
            window.as_secs(),
            window.as_secs()
        ),
        &[
            report::Row {
                figure: format!("peak RSS, {small} VmRequests and {small_rows} VM rows"),
                value: format!("{small_rss:.1} MiB"),
                baseline: format!("{empty:.1} MiB with nothing to manage"),
                ratio: small_rss / empty,
                goal: "(none set)".into(),
            },
            report::Row {
                figure: format!("peak RSS, {large} VmRequests and {large_rows} VM rows"),
                value: format!("{large_rss:.1} MiB"),
                baseline: format!("{small_rss:.1} MiB at {small} and {small_rows}"),
                ratio: growth,
                goal: format!(
                    "< 200 MiB: {}; growth sub-linear (ratio < {}): {}",
                    if large_rss < 200.0 { "met" } else { "missed" },
                    large / small,
                    if growth < (large / small) as f64 {
                        "met"
                    } else {
                        "missed"
                    }
                ),
            },
        ],
    );
}
