//! Throughput benchmark (not a test): writes per second through the HTTPS API and watch
//! fan-out, each printed with its ratio to a baseline measured in the same run, so the
//! numbers compare across machines. Run with `cargo bench -p shepherd-sim`.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use shepherd_sim::resources::ResKey;
use shepherd_sim::store::Store;
use shepherd_sim::{ClusterConfig, SimCluster};

const WRITES: usize = 2_000;
const WATCHERS: usize = 20;
const FANOUT_WRITES: usize = 200;

fn cm(name: String) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("valid")
}

async fn http_writes(api: &Api<ConfigMap>, prefix: &str, n: usize) -> f64 {
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                api.create(&PostParams::default(), &cm(name))
                    .await
                    .expect("create")
            }
        })
        .buffer_unordered(16)
        .for_each(|_| async {})
        .await;
    n as f64 / start.elapsed().as_secs_f64()
}

async fn fanout(api: &Api<ConfigMap>, watchers: usize, prefix: &str) -> f64 {
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut handles = vec![];
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        let prefix = prefix.to_string();
        handles.push(tokio::spawn(async move {
            let mut s = Box::pin(
                api.watch(&WatchParams::default().timeout(120), &rv)
                    .await
                    .expect("watch"),
            );
            let mut seen = 0;
            while seen < FANOUT_WRITES {
                if let Some(WatchEvent::Added(o)) = s.try_next().await.expect("event")
                    && o.metadata.name.is_some_and(|n| n.starts_with(&prefix))
                {
                    seen += 1;
                }
            }
        }));
    }
    let start = Instant::now();
    http_writes(api, prefix, FANOUT_WRITES).await;
    for h in handles {
        h.await.expect("watcher");
    }
    (FANOUT_WRITES * watchers) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // Baseline: the in-memory store alone, without HTTP, TLS or JSON.
    let store = Arc::new(Store::new(10_000));
    let key = ResKey {
        group: String::new(),
        plural: "configmaps".into(),
    };
    let start = Instant::now();
    for i in 0..WRITES * 5 {
        store
            .create(
                &key,
                json!({"metadata": {"name": format!("b-{i}"), "namespace": "default"}}),
                false,
            )
            .expect("store write");
    }
    let store_rate = (WRITES * 5) as f64 / start.elapsed().as_secs_f64();

    let sim = SimCluster::start(ClusterConfig::new("bench"))
        .await
        .expect("start");
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").expect("client"), "default");
    let write_rate = http_writes(&api, "w", WRITES).await;
    let single = fanout(&api, 1, "f1").await;
    let many = fanout(&api, WATCHERS, "fn").await;
    println!("store writes/s (baseline):   {store_rate:>10.0}");
    println!(
        "API writes/s:                {write_rate:>10.0}  ({:.3} of baseline)",
        write_rate / store_rate
    );
    println!("watch events/s, 1 watcher:   {single:>10.0}");
    println!(
        "watch events/s, {WATCHERS} watchers: {many:>10.0}  ({:.2}x the single-watcher rate)",
        many / single
    );
    sim.shutdown();
}
