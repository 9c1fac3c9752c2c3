//! A quiet control plane: once everything has settled, an idle system writes nothing to the
//! API server. No Shepherd object's resourceVersion changes over 30 s of idleness: with a
//! pending request, after a decision has been carried out, and after the controller restarts.

use crate::common::e2e::{Env, start};
use crate::common::setup;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the system is left alone in each phase.
const IDLE: Duration = Duration::from_secs(30);

/// Every Shepherd object (the `shepherd` category, all namespaces) and its resourceVersion.
async fn versions(env: &Env) -> BTreeMap<String, String> {
    let out = env
        .kubectl_ok("admin", &["get", "shepherd", "-A", "-o", "json"], None)
        .await;
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["namespace"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                ),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Waits until nothing changes for a few seconds (work in flight finishes), then returns
/// the versions.
async fn settled(env: &Env) -> BTreeMap<String, String> {
    let mut last = versions(env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let now = versions(env).await;
        if now == last {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {last:#?} -> {now:#?}"
        );
        last = now;
    }
}

/// Objects whose resourceVersion moved between two snapshots.
fn moved(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {:?} -> {v}", before.get(k)))
        .collect()
}

async fn stays_quiet(env: &Env, before: &BTreeMap<String, String>, when: &str) {
    tokio::time::sleep(IDLE).await;
    let after = versions(env).await;
    let moved = moved(before, &after);
    assert!(
        moved.is_empty(),
        "{when}: objects were rewritten while idle: {moved:#?}"
    );
}

#[sqlx::test(migrations = false)]
async fn an_idle_system_writes_nothing(opts: PgPoolOptions, connect: PgConnectOptions) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    env.apply_shop().await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {name: r1, namespace: apps}\n\
             spec: {system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: 2, reason: idle}\n",
        ),
    )
    .await;
    env.wait_for("vmrequests", Some("apps"), "r1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    let pending = settled(&env).await;
    // The catalog, the Cluster, the System, the Service and the request are all there.
    assert!(pending.len() >= 8, "{pending:#?}");
    stays_quiet(&env, &pending, "with a pending request").await;

    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\nmetadata: {name: ok, namespace: apps}\n\
             spec: {target: {kind: VmRequest, name: r1}, decision: approve, reason: fine}\n",
        ),
    )
    .await;
    env.wait_for("vmrequests", Some("apps"), "r1", |o| {
        o.pointer("/status/phase") == Some(&json!("Succeeded"))
    })
    .await;
    let decided = settled(&env).await;
    stays_quiet(&env, &decided, "after a decision was carried out").await;

    // A new leader reconciles everything once and finds nothing to change.
    env.stop_shepherd().await;
    env.start_shepherd("replica-2").await;
    stays_quiet(&env, &decided, "after the controller restarted").await;
}
