//! The chart's RBAC is least privilege: with every rule, each part of `shepherd run` works;
//! without any one rule (removed from the installed ClusterRole or Role while the simulator
//! enforces RBAC), a named part breaks and the process's log shows the refused call.

use super::install::{bind, empty_database};
use super::{FULLNAME, Installation, NAMESPACE, node::Replica};
use serde_json::{Value, json};
use shepherd::domain::Subject;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

/// What a rule is for, observed from outside the process.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// Reconcilers watch the kinds, write status, and lead through the Lease: a new System
    /// becomes Active.
    Reconciling,
    /// Events about objects are recorded.
    Events,
    /// The REST API authenticates bearer tokens (TokenReview): `kubectl shepherd pending`.
    RestApi,
    /// The audit chain's head is exported to its ConfigMap.
    AuditAnchor,
    /// The identity key Secret is read at start: the process starts at all.
    Starting,
}

/// Each rule of the installed roles, by position, and the part that needs it.
const CLUSTER_ROLE_RULES: &[(&str, Part)] = &[
    ("the nine kinds: get, list, watch, patch", Part::Reconciling),
    ("their status: get, patch", Part::Reconciling),
    ("events.k8s.io events: create, patch", Part::Events),
    ("tokenreviews: create", Part::RestApi),
];
const ROLE_RULES: &[(&str, Part)] = &[
    ("leases: get, create, update", Part::Reconciling),
    ("configmaps: create", Part::AuditAnchor),
    ("the audit anchor ConfigMap: get, patch", Part::AuditAnchor),
    ("secrets: get", Part::Starting),
];

/// Polls `check` for up to `seconds`; whether it ever held.
async fn holds_within<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Whether `part` works with this replica, given `seconds` to show it (a fresh System per
/// probe, so nothing carries over between probes).
async fn works(
    i: &Installation,
    replica: &Replica,
    part: Part,
    probe: usize,
    seconds: u64,
) -> bool {
    let system = format!("probe-{probe}");
    match part {
        Part::Reconciling | Part::Events => {
            let yaml = format!(
                "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: System\nmetadata: {{name: {system}}}\nspec: {{description: probe}}\n"
            );
            i.kubectl_ok("alice", &["apply", "-f", "-"], Some(&yaml))
                .await;
            holds_within(seconds, || async {
                if part == Part::Reconciling {
                    i.get("systems", None, &system)
                        .await
                        .is_some_and(|o| o.pointer("/status/phase") == Some(&json!("Active")))
                } else {
                    let (_, out, _) = i
                        .kubectl(
                            "admin",
                            &["get", "events.events.k8s.io", "-A", "-o", "json"],
                            None,
                        )
                        .await;
                    serde_json::from_str::<Value>(&out).is_ok_and(|list| {
                        list["items"].as_array().is_some_and(|items| {
                            items
                                .iter()
                                .any(|e| e["regarding"]["name"] == system.as_str())
                        })
                    })
                }
            })
            .await
        }
        Part::RestApi => {
            holds_within(seconds, || async {
                i.plugin(replica, "alice", &["pending"]).await.0 == 0
            })
            .await
        }
        Part::AuditAnchor => {
            holds_within(seconds, || async {
                i.get(
                    "configmap",
                    Some(NAMESPACE),
                    "kubevirt-shepherd-audit-anchor",
                )
                .await
                .is_some()
            })
            .await
        }
        Part::Starting => true,
    }
}

async fn remove_anchor(i: &Installation) {
    let _ = i
        .kubectl(
            "admin",
            &[
                "-n",
                NAMESPACE,
                "delete",
                "configmap",
                "kubevirt-shepherd-audit-anchor",
                "--ignore-not-found",
            ],
            None,
        )
        .await;
}

const PARTS: [Part; 4] = [
    Part::Reconciling,
    Part::Events,
    Part::RestApi,
    Part::AuditAnchor,
];

#[sqlx::test(migrations = false)]
async fn every_rule_of_the_charts_rbac_is_needed_by_a_named_part(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let i = Installation::prepare(empty_database(opts, connect).await).await;
    i.install(&[]).await;
    i.bind_users(&["alice"]).await;
    bind(&i.db, Subject::user("alice"), "operator").await;

    // The rules installed are the ones named here, no more.
    let cluster_role = i.get("clusterrole", None, FULLNAME).await.unwrap();
    let role = i.get("role", Some(NAMESPACE), FULLNAME).await.unwrap();
    assert_eq!(
        cluster_role["rules"].as_array().unwrap().len(),
        CLUSTER_ROLE_RULES.len()
    );
    assert_eq!(role["rules"].as_array().unwrap().len(), ROLE_RULES.len());

    // With every rule, every part works.
    let mut probe = 0;
    remove_anchor(&i).await;
    let replica = i.start_replica("baseline").await.unwrap();
    for part in PARTS {
        probe += 1;
        assert!(
            works(&i, &replica, part, probe, 60).await,
            "{part:?} fails with every rule"
        );
    }
    replica.stop().await;

    let rules = [
        ("clusterrole", None, &cluster_role, CLUSTER_ROLE_RULES),
        ("role", Some(NAMESPACE), &role, ROLE_RULES),
    ];
    for (kind, namespace, object, named) in rules {
        for (index, (rule, part)) in named.iter().enumerate() {
            let mut ns_args: Vec<&str> = Vec::new();
            if let Some(ns) = namespace {
                ns_args.extend(["-n", ns]);
            }
            let remove = json!([{"op": "remove", "path": format!("/rules/{index}")}]).to_string();
            let mut args = ns_args.clone();
            args.extend(["patch", kind, FULLNAME, "--type=json", "-p", &remove]);
            i.kubectl_ok("admin", &args, None).await;
            remove_anchor(&i).await;

            let pod = format!("without-{kind}-rule-{index}");
            match i.start_replica(&pod).await {
                Err(why) => {
                    assert_eq!(*part, Part::Starting, "without {kind} rule {rule:?}: {why}");
                    assert!(why.contains("forbidden"), "{why}");
                }
                Ok(replica) => {
                    assert_ne!(
                        *part,
                        Part::Starting,
                        "started without {kind} rule {rule:?}"
                    );
                    // Only a leader reconciles: a part must not look broken merely for want
                    // of one (the previous replica released the Lease when it stopped).
                    if !rule.starts_with("leases") {
                        let led = holds_within(60, || async {
                            replica.log_text().contains("lease: leading")
                        })
                        .await;
                        assert!(led, "without {kind} rule {rule:?} the replica never led");
                    }
                    probe += 1;
                    // Given as long as the part took with every rule, and more.
                    assert!(
                        !works(&i, &replica, *part, probe, 15).await,
                        "{part:?} still works without {kind} rule {rule:?}"
                    );
                    let log = replica.log_text();
                    assert!(
                        log.to_lowercase().contains("forbidden"),
                        "without {kind} rule {rule:?} nothing was refused:\n{log}"
                    );
                    replica.stop().await;
                }
            }

            let restore = json!([{"op": "add", "path": format!("/rules/{index}"), "value": object["rules"][index]}]).to_string();
            let mut args = ns_args.clone();
            args.extend(["patch", kind, FULLNAME, "--type=json", "-p", &restore]);
            i.kubectl_ok("admin", &args, None).await;
        }
    }
}
