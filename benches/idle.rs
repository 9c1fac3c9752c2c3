//! Idle writes: how often Shepherd rewrites its own objects when nobody does anything.
//!
//! The whole system runs in process (simulated management and target clusters, PostgreSQL,
//! webhook, reconcilers, workers, watchers), exactly as the end-to-end tests run it. A watch
//! on the nine Shepherd kinds counts every write. The baseline is the write rate while work
//! happens (a catalog, a System and Service, requests being submitted, approved and
//! provisioned), measured in the same run; the figure is the write rate per object once
//! everything settled, and their ratio. The goal is 0 idle writes.
//!
//! `make bench-idle` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench idle`;
//! `IDLE_BENCH_SECONDS` sets the idle window, 30 s by default). Writes the section "Idle
//! writes" of BENCHMARKS.md.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

use futures::StreamExt;
use kube::Api;
use kube::runtime::watcher;
use shepherd::crd::{
    Approval, Cluster, InstanceSize, Service, System, VmNamespace, VmOperation, VmRequest,
    VmTemplate,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts modifications of every object of one kind (additions and deletions included).
fn count_writes<K>(client: kube::Client, writes: Arc<AtomicU64>) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(async move {
        let mut events = watcher(Api::<K>::all(client), watcher::Config::default()).boxed();
        let mut listed = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) if listed => {
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    })
}

/// A request for `count` VMs (requests differ in count: identical pending ones are refused).
fn vm_request(name: &str, count: usize) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: {count}, reason: bench}}\n"
    )
}

async fn objects(env: &common::e2e::Env) -> usize {
    let out = env
        .kubectl_ok("admin", &["get", "shepherd", "-A", "-o", "name"], None)
        .await;
    out.lines().count()
}

#[tokio::main]
async fn main() {
    let idle = Duration::from_secs(report::env_or("IDLE_BENCH_SECONDS", 30) as u64);
    let scratch = report::ScratchDatabase::create("idle").await;
    let connect = PgConnectOptions::from_str(&scratch.url).unwrap();
    let db = common::setup(PgPoolOptions::new(), connect).await;
    let mut env = common::e2e::start(db).await;
    env.add_target("target-1", "test", true).await;

    let writes = Arc::new(AtomicU64::new(0));
    let client = env.sim.kube_client("admin").unwrap();
    let watchers = vec![
        count_writes::<System>(client.clone(), writes.clone()),
        count_writes::<Service>(client.clone(), writes.clone()),
        count_writes::<VmRequest>(client.clone(), writes.clone()),
        count_writes::<VmOperation>(client.clone(), writes.clone()),
        count_writes::<Approval>(client.clone(), writes.clone()),
        count_writes::<VmNamespace>(client.clone(), writes.clone()),
        count_writes::<Cluster>(client.clone(), writes.clone()),
        count_writes::<InstanceSize>(client.clone(), writes.clone()),
        count_writes::<VmTemplate>(client.clone(), writes.clone()),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Baseline: the write rate while work happens.
    let active_start = Instant::now();
    let before = writes.load(Ordering::Relaxed);
    env.apply_shop().await;
    for i in 1..=4 {
        env.kubectl_ok(
            "alice",
            &["apply", "-f", "-"],
            Some(&vm_request(&format!("r{i}"), i)),
        )
        .await;
    }
    for i in 1..=2 {
        env.kubectl_ok(
            "bob",
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\nmetadata: {{name: a{i}, namespace: apps}}\n\
                 spec: {{target: {{kind: VmRequest, name: r{i}}}, decision: approve, reason: bench}}\n"
            )),
        )
        .await;
        env.wait_for("vmrequests", Some("apps"), &format!("r{i}"), |o| {
            o.pointer("/status/phase") == Some(&serde_json::json!("Succeeded"))
        })
        .await;
    }
    let active_writes = writes.load(Ordering::Relaxed) - before;
    let active_seconds = active_start.elapsed().as_secs_f64();
    // Let work in flight finish before the idle window.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let count = objects(&env).await;
    let before = writes.load(Ordering::Relaxed);
    let idle_start = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_writes = writes.load(Ordering::Relaxed) - before;
    let idle_seconds = idle_start.elapsed().as_secs_f64();

    let per_object = |w: u64, s: f64| w as f64 / s / count.max(1) as f64;
    let active_rate = per_object(active_writes, active_seconds);
    let idle_rate = per_object(idle_writes, idle_seconds);
    report::write_section(
        "Idle writes",
        "make bench-idle",
        &format!(
            "Writes to the nine Shepherd kinds in the management cluster (a watch counts every \
             change), per object and second, over {idle_seconds:.0} s with everything settled \
             ({count} objects: a catalog, a System and Service, 4 requests of which 2 approved \
             and provisioned), against the same rate while that work happened ({active_writes} \
             writes in {active_seconds:.1} s). Ratios are idle ÷ working (lower is better)."
        ),
        &[report::Row {
            figure: "idle writes to the API server".into(),
            value: format!("{idle_writes} writes ({idle_rate:.4}/s per object)"),
            baseline: format!("{active_rate:.4}/s per object while working"),
            ratio: if active_rate > 0.0 {
                idle_rate / active_rate
            } else {
                0.0
            },
            goal: format!("0: {}", if idle_writes == 0 { "met" } else { "missed" }),
        }],
    );

    for w in watchers {
        w.abort();
    }
    env.stop_shepherd().await;
    drop(env);
    scratch.drop().await;
}
