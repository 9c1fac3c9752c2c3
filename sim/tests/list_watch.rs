//! Lists and watches: selectors, pagination, watch from a version, bookmarks,
//! 410 Gone beyond the window, and kube-runtime's watcher and Controller unchanged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn selectors_and_pages(client: Client, ns: String) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for i in 0..7 {
        let tier = if i % 2 == 0 { "web" } else { "db" };
        api.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier, "n": i.to_string()})),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=web"))
                .await
                .unwrap()
        ),
        ["c0", "c2", "c4", "c6"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier!=web,n in (1,3)"))
                .await
                .unwrap()
        ),
        ["c1", "c3"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("!tier"))
                .await
                .unwrap()
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c5"))
                .await
                .unwrap()
        ),
        ["c5"]
    );
    let e = status_of(
        api.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    // limit/continue pages through everything exactly once.
    let mut seen = vec![];
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        let token = page.metadata.continue_.clone();
        seen.extend(names(page));
        match token.filter(|t| !t.is_empty()) {
            Some(t) => lp = lp.continue_token(&t),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
}
dual!(
    label_and_field_selectors_and_pagination,
    crate::selectors_and_pages
);

async fn watch_from_version(client: Client, ns: String) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("after", json!({"w": "1"})))
        .await
        .unwrap();
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    api.delete("after", &Default::default()).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let mut got = vec![];
    while got.len() < 3 {
        match stream.try_next().await.unwrap().expect("event") {
            WatchEvent::Added(o) => got.push(("ADDED", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => got.push(("MODIFIED", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => got.push(("DELETED", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        got,
        [
            ("ADDED", "after".to_string()),
            ("MODIFIED", "after".into()),
            ("DELETED", "after".into())
        ]
    );
}
dual!(
    watch_from_a_resource_version_replays_changes,
    crate::watch_from_version
);

#[tokio::test]
async fn watch_sends_bookmarks_and_ends_at_timeout() {
    let sim = shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig {
        bookmark_interval_ms: 50,
        ..shepherd_sim::ClusterConfig::new("b")
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    let mut bookmarks = 0;
    while let Some(ev) = stream.try_next().await.unwrap() {
        if matches!(ev, WatchEvent::Bookmark(_)) {
            bookmarks += 1;
        }
    }
    assert!(
        bookmarks >= 1,
        "bookmarks were sent before the timeout ended the stream"
    );
}

#[tokio::test]
async fn watch_older_than_the_window_gets_410_gone() {
    let sim =
        shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig::new("g").with_watch_window(5))
            .await
            .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.kube_client("admin").unwrap(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // A recent version still works.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("fresh", json!({})))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        stream.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));
}

#[tokio::test]
async fn kube_runtime_watcher_streaming_list_sees_initial_and_new_objects() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("one", json!({"app": "x"})))
        .await
        .unwrap();
    for cfg in [
        watcher::Config::default().labels("app=x"),
        watcher::Config::default().labels("app=x").streaming_lists(),
    ] {
        let mut names = Box::pin(watcher(api.clone(), cfg).applied_objects());
        let first = tokio::time::timeout(Duration::from_secs(10), names.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.metadata.name.as_deref(), Some("one"));
        let n = format!("two-{}", uuid_like().get(..6).unwrap_or("x"));
        api.create(&PostParams::default(), &cm(&n, json!({"app": "x"})))
            .await
            .unwrap();
        // Objects from the previous round may come first in the initial state.
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), names.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if next.metadata.name.as_deref() == Some(n.as_str()) {
                break;
            }
            assert!(
                next.metadata
                    .name
                    .as_deref()
                    .is_some_and(|x| x.starts_with("two-")),
                "unexpected {:?}",
                next.metadata.name
            );
        }
    }
}

#[tokio::test]
async fn kube_runtime_controller_reconciles_against_the_simulator() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let api = widgets(&client, "default");
    let ctx = Arc::new(client.clone());
    let ctrl = Controller::new_with(api.clone(), watcher::Config::default(), widget_ar())
        .owns(Api::<ConfigMap>::namespaced(client.clone(), "default"), watcher::Config::default())
        .run(
            |w: Arc<kube::api::DynamicObject>, c: Arc<Client>| async move {
                let name = w.metadata.name.clone().unwrap();
                let api = widgets(&c, "default");
                let st = json!({"apiVersion": "bars.example.com/v1", "kind": "Widget", "metadata": {"name": name}, "status": {"phase": "Reconciled"}});
                api.patch_status(&name, &PatchParams::apply("test-controller").force(), &Patch::Apply(&st)).await?;
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_millis(100)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(ctrl);
    api.create(
        &PostParams::default(),
        &widget("reconcile-me", json!({"size": 1})),
    )
    .await
    .unwrap();
    eventually("controller wrote status", || async {
        let w = api.get("reconcile-me").await.ok()?;
        (w.data["status"]["phase"] == "Reconciled").then_some(())
    })
    .await;
    handle.abort();
}
