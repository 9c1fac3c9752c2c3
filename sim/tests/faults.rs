//! Fault injection: unreachable/reachable, failing the next N requests with 500 or
//! 429, latency, cutting watches, shrinking the watch window.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use shepherd_sim::FailWith;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn unreachable_then_reachable_again() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    api.list(&ListParams::default()).await.unwrap();
    sim.faults().set_unreachable();
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a transport error, not an API answer: {err:?}"
    );
    sim.faults().set_reachable();
    // A fresh client (new connection) works again.
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn next_requests_fail_with_500_or_429() {
    let sim = start().await;
    // kube retries 429 by default; turn that off to see the injected answer.
    let mut cfg = sim.kube_config("admin").unwrap();
    cfg.default_retry = false;
    let api: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "default");
    sim.faults().fail_next(2, FailWith::InternalError);
    assert_eq!(
        status_of(api.list(&ListParams::default()).await.unwrap_err()).code,
        500
    );
    assert_eq!(
        status_of(api.list(&ListParams::default()).await.unwrap_err()).code,
        500
    );
    api.list(&ListParams::default()).await.unwrap();
    sim.faults().fail_next(1, FailWith::TooManyRequests);
    let e = status_of(
        api.create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert!(
        api.get_opt("x").await.unwrap().is_none(),
        "the failed request had no effect"
    );
}

#[tokio::test]
async fn latency_delays_requests() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    sim.faults().set_latency(Duration::from_millis(300));
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    // A lower bound only: the request cannot have been answered before the latency.
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.faults().set_latency(Duration::ZERO);
}

#[tokio::test]
async fn cut_watches_end_streams_and_shrunk_window_answers_410() {
    let sim = start().await;
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = Box::pin(
        api.watch(&WatchParams::default().timeout(30), &rv)
            .await
            .unwrap(),
    );
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
    sim.faults().cut_watches();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.unwrap_or(None) {
            assert!(matches!(ev, WatchEvent::Bookmark(_)), "{ev:?}");
        }
    })
    .await;
    assert!(end.is_ok(), "watch ended after the cut");
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("b{i}")))
            .await
            .unwrap();
    }
    sim.faults().shrink_watch_window(2);
    let mut stream = Box::pin(
        api.watch(&WatchParams::default().timeout(5), &rv)
            .await
            .unwrap(),
    );
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}
