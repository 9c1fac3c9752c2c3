//! Provisioning end to end on the simulator: approved VMs become running KubeVirt
//! VirtualMachines on their target clusters (two clusters, test and prod), their state comes
//! back to PostgreSQL and to the VmRequest, and faults (unreachable or throttling clusters,
//! missing credentials, name conflicts, unschedulable VMs, watches cut and compacted, VMs
//! deleted behind our back, a process killed mid-job) end consistent.

use crate::common::e2e::{Env, start};
use crate::common::{count, setup};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use shepherd::clusters::kubevirt;
use shepherd_sim::FailWith;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

pub(crate) fn vm_request(name: &str, namespace: &str, count: i32) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{system: shop, service: web, targetNamespace: {namespace}, template: fedora, instanceSize: small, count: {count}, reason: more}}\n"
    )
}

pub(crate) fn approval(name: &str, target: &str) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{target: {{kind: VmRequest, name: {target}}}, decision: approve, reason: \"capacity ok\"}}\n"
    )
}

/// The management cluster with Shepherd, a test cluster `target-1` and (when `prod`) a prod
/// cluster `prod-1`, both with their kubeconfig Secrets, and alice's System and Service.
pub(crate) async fn world(opts: PgPoolOptions, connect: PgConnectOptions, prod: bool) -> Env {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    if prod {
        env.add_target("prod-1", "prod", true).await;
    }
    env.apply_shop().await;
    env
}

/// `user` asks for `count` VMs in `namespace`; bob approves; returns once it is approved.
pub(crate) async fn request_and_approve(
    env: &Env,
    user: &str,
    name: &str,
    namespace: &str,
    count: i32,
) {
    env.kubectl_ok(
        user,
        &["apply", "-f", "-"],
        Some(&vm_request(name, namespace, count)),
    )
    .await;
    wait_phase(env, name, &["PendingApproval"], 30).await;
    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(&approval(&format!("{name}-ok"), name)),
    )
    .await;
}

/// Waits until the VmRequest's ticket is final (Succeeded, Failed or PartiallySucceeded).
pub(crate) async fn settled(env: &Env, name: &str) -> Value {
    wait_phase(
        env,
        name,
        &["Succeeded", "Failed", "PartiallySucceeded"],
        90,
    )
    .await
}

/// Waits (up to `seconds`: a liveness bound on a loaded machine, not a performance
/// assertion) until the VmRequest's phase is one of `phases`.
pub(crate) async fn wait_phase(env: &Env, name: &str, phases: &[&str], seconds: u64) -> Value {
    wait_until(env, name, seconds, |o| {
        o.pointer("/status/phase")
            .and_then(Value::as_str)
            .is_some_and(|p| phases.contains(&p))
    })
    .await
}

async fn wait_until(env: &Env, name: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    env.wait_for_within(
        Duration::from_secs(seconds),
        "vmrequests",
        Some("apps"),
        name,
        done,
    )
    .await
}

fn vm_api(env: &Env, cluster: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let client = env.target(cluster).kube_client("admin").unwrap();
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &kubevirt::virtual_machine()),
        None => Api::all_with(client, &kubevirt::virtual_machine()),
    }
}

/// Names of the VirtualMachines on a cluster, in every namespace.
async fn vms_on(env: &Env, cluster: &str) -> Vec<String> {
    let mut names: Vec<String> = vm_api(env, cluster, None)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    names
}

fn vm_phases(request: &Value) -> Vec<(String, String)> {
    request["status"]["vms"]
        .as_array()
        .map(|vms| {
            vms.iter()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap_or_default().to_string(),
                        v["phase"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The state and attempt of the (only) vm_provision job.
async fn provision_job(env: &Env) -> (String, i16) {
    sqlx::query_as("SELECT state::text, attempt FROM river_job WHERE kind = 'vm_provision'")
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

async fn audit_actions(env: &Env) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&env.db.pool)
        .await
        .unwrap()
}

/// The Events (events.k8s.io) about the VmRequest `name`, as JSON items.
async fn events_for(env: &Env, name: &str) -> Vec<Value> {
    let out = env
        .kubectl_ok(
            "admin",
            &["get", "events.events.k8s.io", "-n", "apps", "-o", "json"],
            None,
        )
        .await;
    let all: Value = serde_json::from_str(&out).unwrap();
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == name)
        .cloned()
        .collect()
}

/// How many times Events with `reason` were recorded about the VmRequest `name`.
async fn event_count(env: &Env, name: &str, reason: &str) -> i64 {
    events_for(env, name)
        .await
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["series"]["count"].as_i64().unwrap_or(1))
        .sum()
}

#[sqlx::test(migrations = false)]
async fn approved_vms_run_on_their_clusters_and_prod_never_lands_on_test(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, true).await;
    let cluster = env
        .get("clusters.shepherd.kv-shepherd.io", None, "target-1")
        .await
        .unwrap();
    let credentials = condition(&cluster, "CredentialsReady");
    assert_eq!(
        credentials.as_ref().map(|c| c["status"].clone()),
        Some(json!("True")),
        "{cluster:#}"
    );

    // alice: two test VMs. Placement may only pick the test cluster.
    request_and_approve(&env, "alice", "r1", "team-a", 2).await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    let vms = done["status"]["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    for vm in vms {
        assert_eq!(vm["phase"], "Running", "{vm}");
        assert_eq!(vm["cluster"], "target-1", "{vm}");
        assert_eq!(vm["namespace"], "team-a", "{vm}");
        assert!(vm["ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{vm}");
        assert!(vm["node"].as_str().is_some_and(|n| !n.is_empty()), "{vm}");
    }
    let ready = condition(&done, "Ready").unwrap();
    assert_eq!(ready["status"], "True", "{ready}");
    // kubectl wait works on the Ready condition.
    env.kubectl_ok(
        "alice",
        &[
            "wait",
            "-n",
            "apps",
            "--for=condition=Ready",
            "vmrequest/r1",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01", "team-a/team-a-shop-web-02"]
    );
    assert!(vms_on(&env, "prod-1").await.is_empty());

    // What was applied: our labels on the VM and its template, runStrategy, the field manager.
    let applied = vm_api(&env, "target-1", Some("team-a"))
        .get("team-a-shop-web-01")
        .await
        .unwrap();
    let applied = serde_json::to_value(&applied).unwrap();
    let ticket = done["status"]["ticketId"].as_str().unwrap();
    for labels in [
        &applied["metadata"]["labels"],
        &applied["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(
            labels["kubevirt-shepherd.io/managed-by"],
            "kubevirt-shepherd"
        );
        assert_eq!(labels["kubevirt-shepherd.io/ticket-id"], ticket);
        assert_eq!(labels["kubevirt-shepherd.io/system"], "shop");
        assert_eq!(labels["kubevirt-shepherd.io/service"], "web");
        assert_eq!(labels["kubevirt-shepherd.io/instance"], "01");
        assert_eq!(labels["kubevirt-shepherd.io/created-by"], "alice");
    }
    assert_eq!(applied["spec"]["runStrategy"], "Always");
    assert!(applied["spec"].get("running").is_none());
    let managers: Vec<&str> = applied["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubevirt-shepherd"), "{managers:?}");
    // The namespace was created just in time, labelled as ours.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(env.target("target-1").kube_client("admin").unwrap());
    let ns = namespaces.get("team-a").await.unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap_or_default()["kubevirt-shepherd.io/managed-by"],
        "kubevirt-shepherd"
    );

    // PostgreSQL: rows Running with IP and node; one revision each; the ticket Succeeded.
    let rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT status, ip_address, node FROM vms ORDER BY name")
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    assert!(
        rows.iter()
            .all(|(s, ip, node)| s == "Running" && ip.is_some() && node.is_some()),
        "{rows:?}"
    );
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM vm_revisions").await,
        2
    );
    let actions = audit_actions(&env).await;
    for action in [
        "vm.provision.started",
        "vm.provision.applied",
        "vm.provision.running",
        "ticket.succeeded",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    // One Event per VM transition, not per reconcile. The reconcile that records the
    // second one may come just after the ticket settled.
    crate::common::eventually(
        "two VMRunning Events",
        30,
        || event_count(&env, "r1", "VMRunning"),
        |n| *n >= 2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        event_count(&env, "r1", "VMRunning").await,
        2,
        "{:#?}",
        events_for(&env, "r1").await
    );

    // The plugin lists state, IP and node.
    let (code, out, err) = env.plugin("alice", &["vms"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("IP") && out.contains("NODE"), "{out}");
    assert!(
        out.lines().filter(|l| l.contains("Running")).count() == 2,
        "{out}"
    );

    // The reconcilers and the workers are measured.
    let metrics = env.metrics().await;
    for sample in [
        r#"shepherd_reconcile_total{kind="VmRequest",result="ok"}"#,
        r#"shepherd_jobs_total{kind="vm_provision",outcome="completed"} 2"#,
        r#"shepherd_reconcile_duration_seconds_bucket{kind="VmRequest",le="+Inf"}"#,
        r#"shepherd_job_wait_seconds_count{kind="vm_provision"} 2"#,
    ] {
        assert!(
            metrics.contains(sample),
            "{sample} missing from:\n{metrics}"
        );
    }

    // No response carries a cluster's credentials.
    let token = env.target("target-1").token("admin").unwrap().to_string();
    for args in [&["vms", "-o", "json"][..], &["audit", "-o", "json"][..]] {
        let (code, out, err) = env.plugin("admin", args).await;
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(&token), "{args:?} printed a kubeconfig token");
    }

    // Prod VMs (asked by a platform admin, who may see shop in prod) land on the prod
    // cluster only.
    request_and_approve(&env, "admin", "p1", "shop-prod", 1).await;
    let done = settled(&env, "p1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    assert_eq!(done["status"]["vms"][0]["cluster"], "prod-1");
    assert_eq!(
        vms_on(&env, "prod-1").await,
        ["shop-prod/shop-prod-shop-web-03"]
    );
    assert_eq!(vms_on(&env, "target-1").await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn one_unschedulable_vm_of_three_makes_the_ticket_partially_succeed(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    env.target("target-1").kubevirt().unwrap().fail_vm(
        "team-a",
        "team-a-shop-web-02",
        "ErrorUnschedulable",
    );
    request_and_approve(&env, "alice", "r1", "team-a", 3).await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "PartiallySucceeded", "{done:#}");
    assert_eq!(
        vm_phases(&done),
        [
            ("team-a-shop-web-01".into(), "Running".into()),
            ("team-a-shop-web-02".into(), "Failed".into()),
            ("team-a-shop-web-03".into(), "Running".into()),
        ]
    );
    assert_eq!(done["status"]["vms"][1]["reason"], "ErrorUnschedulable");
    let ready = condition(&done, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    let reason: Option<String> =
        sqlx::query_scalar("SELECT status_reason FROM vms WHERE name = 'team-a-shop-web-02'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("ErrorUnschedulable"));
    // One Event per transition into Failed. The VM may go Failed, Starting, Failed while
    // KubeVirt's view settles; each transition is audited once, and each gets one Event.
    let failed_transitions = audit_actions(&env)
        .await
        .iter()
        .filter(|a| *a == "vm.failed")
        .count() as i64;
    assert!(failed_transitions >= 1);
    // The reconcile that records an Event may come just after the audit row.
    crate::common::eventually(
        "a VMFailed Event per audited transition",
        30,
        || event_count(&env, "r1", "VMFailed"),
        |n| *n >= failed_transitions,
    )
    .await;
    assert_eq!(
        event_count(&env, "r1", "VMFailed").await,
        failed_transitions
    );
}

fn condition(obj: &Value, kind: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

mod faults;
