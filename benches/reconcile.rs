//! Reconcile latency: from the start of `kubectl apply` of a VmRequest to a watch seeing its
//! status `PendingApproval` (the admission webhook, the reconciler, the ticket in
//! PostgreSQL and the status patch in between), p50 and p99 over `RECONCILE_BENCH_REQUESTS`
//! (500), against `kubectl apply` of a ConfigMap to a watch seeing it, which nothing
//! reconciles, in the same run. Four applies run at a time.
//!
//! `make bench-reconcile` (or `DATABASE_URL=... SHEPHERD_KUBECTL=... cargo bench --bench
//! reconcile`). Writes the section "Reconcile latency" of BENCHMARKS.md.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher;
use shepherd::crd::VmRequest;
use shepherd::crd::phase::RequestPhase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Services of `shop`: 91 distinct requests each (disks of 10-100 GiB); identical pending
/// requests are refused as duplicates.
const SERVICES: usize = 6;
const CONCURRENT_APPLIES: usize = 4;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// Records when each object of `api` first satisfies `done`.
fn watch<K>(api: Api<K>, seen: Seen, done: fn(&K) -> bool) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) = event
                && done(&object)
            {
                let name = object.meta().name.clone().unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    })
}

/// Applies each of `documents` with kubectl as alice, `CONCURRENT_APPLIES` at a time, and
/// waits until `seen` has them all; each one's latency, sorted.
async fn apply_all(
    env: &common::e2e::Env,
    documents: Vec<(String, String)>,
    seen: &Seen,
) -> Vec<Duration> {
    let started: Seen = Arc::default();
    futures::stream::iter(documents.iter())
        .map(|(name, document)| {
            let started = started.clone();
            async move {
                started.lock().unwrap().insert(name.clone(), Instant::now());
                env.kubectl_ok("alice", &["apply", "-f", "-"], Some(document))
                    .await;
            }
        })
        .buffer_unordered(CONCURRENT_APPLIES)
        .collect::<Vec<()>>()
        .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().unwrap().len() < documents.len() {
        assert!(Instant::now() < deadline, "not every object got there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (started, seen) = (started.lock().unwrap(), seen.lock().unwrap());
    let mut latencies: Vec<Duration> = documents
        .iter()
        .map(|(name, _)| seen[name].duration_since(started[name]))
        .collect();
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let requests = report::env_or("RECONCILE_BENCH_REQUESTS", 500).min(SERVICES * 91);
    let scratch = report::ScratchDatabase::create("reconcile").await;
    let db = common::setup(
        PgPoolOptions::new(),
        PgConnectOptions::from_str(&scratch.url).unwrap(),
    )
    .await;
    let env = common::e2e::start(db).await;
    env.apply_shop().await;
    let services: Vec<String> = (0..SERVICES).map(|s| format!("s{s}")).collect();
    env.apply_shop_services(&services).await;

    let client = env.sim.kube_client("admin").unwrap();
    let pending: Seen = Arc::default();
    let configmaps: Seen = Arc::default();
    let watchers = [
        watch(
            Api::<VmRequest>::namespaced(client.clone(), "apps"),
            pending.clone(),
            |r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Some(RequestPhase::PendingApproval))
            },
        ),
        watch(
            Api::<ConfigMap>::namespaced(client, "apps"),
            configmaps.clone(),
            |_| true,
        ),
    ];
    tokio::time::sleep(Duration::from_secs(1)).await;

    let baseline = apply_all(
        &env,
        (0..requests)
            .map(|n| {
                let name = format!("c{n:03}");
                let document = format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: apps}}\n\
                     data: {{n: \"{n}\"}}\n"
                );
                (name, document)
            })
            .collect(),
        &configmaps,
    )
    .await;
    let measured = apply_all(
        &env,
        (0..requests)
            .map(|n| {
                let name = format!("r{n:03}");
                let document = format!(
                    "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\n\
                     metadata: {{name: {name}, namespace: apps}}\n\
                     spec: {{system: shop, service: s{}, targetNamespace: team-a, \
                     template: fedora, instanceSize: small, count: 1, diskGib: {}, reason: bench}}\n",
                    n % SERVICES,
                    10 + n / SERVICES
                );
                (name, document)
            })
            .collect(),
        &pending,
    )
    .await;
    for watcher in watchers {
        watcher.abort();
    }
    let mut env = env;
    env.stop_shepherd().await;
    drop(env);
    scratch.drop().await;

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let rows: Vec<report::Row> = [("p50", 0.50), ("p99", 0.99)]
        .into_iter()
        .map(|(name, p)| {
            let (value, base) = (percentile(&measured, p), percentile(&baseline, p));
            report::Row {
                figure: format!("`kubectl apply` to `PendingApproval`, {name}"),
                value: ms(value),
                baseline: format!("{} to a ConfigMap seen, {name}", ms(base)),
                ratio: value.as_secs_f64() / base.as_secs_f64(),
                goal: "(none set)".into(),
            }
        })
        .collect();
    report::write_section(
        "Reconcile latency",
        "make bench-reconcile",
        &format!(
            "{requests} VmRequests applied with the pinned kubectl as alice, \
             {CONCURRENT_APPLIES} at a time, each timed from the start of its `kubectl apply` \
             (a process start and a round trip included) to a watch seeing its status \
             `PendingApproval`; baseline: {requests} ConfigMaps applied the same way, timed to \
             a watch seeing them. Ratios are latency ÷ baseline latency (lower is better)."
        ),
        &rows,
    );
}
