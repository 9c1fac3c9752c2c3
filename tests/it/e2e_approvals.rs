//! Approvals end to end: bob decides alice's tickets with `Approval` objects through the real
//! kubectl on the simulator; the VmRequest status follows.

use crate::common::e2e::{Env, start_with};
use crate::common::probed_healthy;
use crate::common::{count, setup};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const CLUSTERS: &str = r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: Cluster
metadata: {name: test-1}
spec: {environment: test, schedulingWeight: 100, kubeconfigSecretRef: {namespace: kubevirt-shepherd, name: test-1}}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: Cluster
metadata: {name: test-2}
spec: {environment: test, schedulingWeight: 10, kubeconfigSecretRef: {namespace: kubevirt-shepherd, name: test-2}}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: Cluster
metadata: {name: prod-1}
spec: {environment: prod, kubeconfigSecretRef: {namespace: kubevirt-shepherd, name: prod-1}}
"#;

fn vm_request(name: &str, count: i32) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: {count}, reason: more}}\n"
    )
}

fn approval(name: &str, target: &str, decision: &str, overrides: &str) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{target: {{kind: VmRequest, name: {target}}}, decision: {decision}, reason: \"capacity ok\"{overrides}}}\n"
    )
}

async fn ready(env: &Env) {
    // Clusters by admin; the System and Service by alice, who owns them.
    env.kubectl_ok("admin", &["apply", "-f", "-"], Some(CLUSTERS))
        .await;
    // These clusters have no target behind them: nothing probes them (the process works
    // no jobs), so they are recorded as probed healthy for placement.
    for c in ["test-1", "test-2", "prod-1"] {
        env.wait_for("clusters.shepherd.kv-shepherd.io", None, c, |o| {
            o.pointer("/status/phase") == Some(&json!("Ready"))
        })
        .await;
        probed_healthy(&env.db.pool, c).await;
    }
    env.apply_shop().await;
}

/// The catalog ready and alice's VmRequest r1 for `count` VMs pending; the request as seen.
async fn pending_request(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
    count: i32,
) -> (Env, Value) {
    let env = start_with(setup(opts, connect).await, false).await;
    ready(&env).await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", count)),
    )
    .await;
    let request = phase(&env, "vmrequests", "r1", "PendingApproval").await;
    (env, request)
}

/// Waits until the VmRequest is approved: `Approved`, or `Executing` once its jobs started
/// (these clusters have no credentials, so the jobs wait there).
async fn approved(env: &Env, name: &str) -> Value {
    env.wait_for("vmrequests", Some("apps"), name, |o| {
        matches!(
            o.pointer("/status/phase").and_then(Value::as_str),
            Some("Approved" | "Executing")
        )
    })
    .await
}

async fn phase(env: &Env, kind: &str, name: &str, phase: &str) -> Value {
    env.wait_for(kind, Some("apps"), name, |o| {
        o.pointer("/status/phase") == Some(&json!(phase))
    })
    .await
}

#[sqlx::test(migrations = false)]
async fn bob_approves_three_vms_onto_the_cluster_he_names(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (env, _) = pending_request(opts, connect, 3).await;

    // alice cannot approve her own ticket: refused at admission.
    let (ok, _, err) = env
        .kubectl(
            "alice",
            &["apply", "-f", "-"],
            Some(&approval("self", "r1", "approve", "")),
        )
        .await;
    assert!(!ok && err.contains("requested"), "{err}");

    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(&approval(
            "a1",
            "r1",
            "approve",
            ", overrides: {cluster: test-2}",
        )),
    )
    .await;
    phase(&env, "approvals", "a1", "Applied").await;
    let request = approved(&env, "r1").await;
    let vms = request["status"]["vms"].as_array().unwrap();
    let names: Vec<&str> = vms.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "team-a-shop-web-01",
            "team-a-shop-web-02",
            "team-a-shop-web-03"
        ]
    );
    assert!(vms.iter().all(|v| v["cluster"] == "test-2"), "{vms:?}");
    assert_eq!(request.pointer("/status/approver"), Some(&json!("bob")));
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'"
        )
        .await,
        3
    );

    // A retry of an applied Approval (its status lost, say) finds its own decision and
    // stays Applied; nothing is created twice.
    env.kubectl_ok(
        "admin",
        &[
            "patch",
            "approval",
            "a1",
            "-n",
            "apps",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":null,"message":null}}"#,
        ],
        None,
    )
    .await;
    let again = env
        .wait_for("approvals", Some("apps"), "a1", |o| {
            o.pointer("/status/message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.ends_with("approved by bob"))
        })
        .await;
    assert_eq!(again.pointer("/status/phase"), Some(&json!("Applied")));
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 3);

    // A decision on the decided ticket is refused, at admission already.
    let (ok, _, err) = env
        .kubectl(
            "bob",
            &["apply", "-f", "-"],
            Some(&approval("a2", "r1", "reject", "")),
        )
        .await;
    assert!(
        !ok && (err.contains("Approved") || err.contains("Executing")),
        "{err}"
    );
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 3);

    // Deleting the fulfilled request removes only the object: a GitOps prune destroys no VM.
    env.kubectl_ok("alice", &["delete", "vmrequest", "r1", "-n", "apps"], None)
        .await;
    env.wait_gone("vmrequests", Some("apps"), "r1").await;
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM vms WHERE deleted_at IS NULL"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM tickets WHERE status IN ('Approved', 'Executing')"
        )
        .await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn other_environment_and_rejection(opts: PgPoolOptions, connect: PgConnectOptions) {
    let (env, _) = pending_request(opts, connect, 1).await;
    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(&approval(
            "into-prod",
            "r1",
            "approve",
            ", overrides: {cluster: prod-1}",
        )),
    )
    .await;
    let refused = phase(&env, "approvals", "into-prod", "Refused").await;
    let message = refused
        .pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(message.contains("environment"), "{refused:#}");
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 0);

    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(&approval("rejection", "r1", "reject", "")),
    )
    .await;
    phase(&env, "approvals", "rejection", "Applied").await;
    phase(&env, "vmrequests", "r1", "Rejected").await;
    // alice sees who rejected it and why.
    let seen = env
        .kubectl_ok(
            "alice",
            &["get", "vmrequest", "r1", "-n", "apps", "-o", "json"],
            None,
        )
        .await;
    let seen: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(seen.pointer("/status/approver"), Some(&json!("bob")));
    assert_eq!(
        seen.pointer("/status/decisionReason"),
        Some(&json!("capacity ok"))
    );
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 0);
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'"
        )
        .await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn of_two_racing_approvals_one_applies_and_the_other_says_why_not(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (mut env, _) = pending_request(opts, connect, 2).await;
    // With the reconcilers paused, both Approvals pass admission (the ticket is pending for
    // both); then the reconcilers decide them concurrently.
    env.start_shepherd_with("webhook-only", false).await;
    let both = format!(
        "{}---\n{}",
        approval("a1", "r1", "approve", ""),
        approval("a2", "r1", "reject", "")
    );
    env.kubectl_ok("bob", &["apply", "-f", "-"], Some(&both))
        .await;
    env.start_shepherd("replica-2").await;
    let mut outcomes = Vec::new();
    for name in ["a1", "a2"] {
        let obj = env
            .wait_for("approvals", Some("apps"), name, |o| {
                matches!(
                    o.pointer("/status/phase").and_then(Value::as_str),
                    Some("Applied" | "Refused")
                )
            })
            .await;
        outcomes.push(obj["status"].clone());
    }
    let applied: Vec<&Value> = outcomes
        .iter()
        .filter(|s| s["phase"] == "Applied")
        .collect();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|s| s["phase"] == "Refused")
        .collect();
    assert_eq!((applied.len(), refused.len()), (1, 1), "{outcomes:#?}");
    let condition = &refused[0]["conditions"][0];
    assert_eq!(condition["type"], "Applied");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "AlreadyDecided", "{condition:#}");
    assert!(
        condition["message"].as_str().unwrap().contains("already"),
        "{condition:#}"
    );
    let vms = count(&env.db.pool, "SELECT count(*) FROM vms").await;
    let jobs = count(
        &env.db.pool,
        "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'",
    )
    .await;
    assert!(vms == 0 || vms == 2, "one decision's worth of VMs: {vms}");
    assert_eq!(jobs, vms, "one job per VM, none for a rejection");
}

#[sqlx::test(migrations = false)]
async fn bob_decides_with_the_kubectl_plugin(opts: PgPoolOptions, connect: PgConnectOptions) {
    let (env, request) = pending_request(opts, connect, 3).await;
    let ticket = request["status"]["ticketId"].as_str().unwrap().to_string();
    let ticket = ticket.as_str();

    let (code, out, err) = env.plugin("bob", &["pending"]).await;
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("TICKET"), "{out}");
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(ticket) && row.contains("alice"), "{out}");
    let (code, out, _) = env.plugin("alice", &["pending", "-o", "json"]).await;
    assert_eq!(
        (code, out.trim()),
        (0, "[]"),
        "nothing waits for the requester"
    );

    // alice may not approve her own ticket; bob may not place it in prod.
    let (code, _, err) = env.plugin("alice", &["approve", ticket]).await;
    assert_eq!(code, 4, "{err}");
    assert!(err.starts_with("error: forbidden:"), "{err}");
    let (code, _, err) = env
        .plugin("bob", &["approve", ticket, "--cluster", "prod-1"])
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("prod-1"), "{err}");

    let (code, out, err) = env
        .plugin(
            "bob",
            &["preview", ticket, "--cluster", "test-2", "-o", "json"],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let preview: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(preview["cluster"], "test-2");
    assert_eq!(
        preview["vmNames"],
        json!([
            "team-a-shop-web-01",
            "team-a-shop-web-02",
            "team-a-shop-web-03"
        ])
    );
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 0);

    let (code, out, err) = env
        .plugin(
            "bob",
            &[
                "approve",
                ticket,
                "--cluster",
                "test-2",
                "--reason",
                "capacity ok",
            ],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("approved") && out.contains("team-a-shop-web-03"),
        "{out}"
    );
    let request = approved(&env, "r1").await;
    let vms = request["status"]["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3, "{request:#}");
    assert!(vms.iter().all(|v| v["cluster"] == "test-2"), "{vms:?}");
    assert_eq!(request.pointer("/status/approver"), Some(&json!("bob")));
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'"
        )
        .await,
        3
    );

    // The decided ticket refuses a second decision, with the conflict exit code.
    let (code, _, err) = env
        .plugin("bob", &["reject", ticket, "--reason", "late"])
        .await;
    assert_eq!(code, 6, "{err}");
    let (code, out, _) = env.plugin("alice", &["vms"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("team-a-shop-web-01") && out.contains("test-2"),
        "{out}"
    );
    let (code, out, err) = env
        .plugin("admin", &["audit", "--action", "approval.", "-o", "yaml"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("approval.approve") && out.contains("bob"),
        "{out}"
    );
    let (code, out, _) = env.plugin("bob", &["whoami"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Username: bob") && out.contains("approver"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn vm_operations_open_tickets_that_approvals_decide(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (env, _) = pending_request(opts, connect, 1).await;
    env.kubectl_ok(
        "bob",
        &["apply", "-f", "-"],
        Some(&approval("a1", "r1", "approve", "")),
    )
    .await;
    approved(&env, "r1").await;
    let vm_operation = |name: &str, vm: &str, operation: &str| {
        format!(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmOperation\nmetadata: {{name: {name}, namespace: apps}}\n\
             spec: {{vm: {vm}, operation: {operation}, reason: \"a copy for debugging\"}}\n"
        )
    };

    // Admission already refuses an operation on a VM that does not exist, and one alice
    // may not perform (operators do not delete).
    let (ok, _, err) = env
        .kubectl(
            "alice",
            &["apply", "-f", "-"],
            Some(&vm_operation("o0", "nope", "stop")),
        )
        .await;
    assert!(!ok && err.contains("vm nope not found"), "{err}");
    let (ok, _, err) = env
        .kubectl(
            "alice",
            &["apply", "-f", "-"],
            Some(&vm_operation("o0", "team-a-shop-web-01", "delete")),
        )
        .await;
    assert!(!ok && err.contains("vm:delete"), "{err}");

    // A stop in test needs no approver: approved at once, its job queued.
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_operation("o1", "team-a-shop-web-01", "stop")),
    )
    .await;
    let stop = phase(&env, "vmoperations", "o1", "Approved").await;
    assert_eq!(
        stop.pointer("/status/approver"),
        Some(&json!("system:approval-policy"))
    );

    // A clone waits for bob, who approves it with an Approval naming the VmOperation.
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_operation("o2", "team-a-shop-web-01", "clone")),
    )
    .await;
    let pending = phase(&env, "vmoperations", "o2", "PendingApproval").await;
    let ticket = pending["status"]["ticketId"].as_str().unwrap().to_string();
    let (code, out, err) = env.plugin("bob", &["pending"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&ticket) && out.contains("clone"), "{out}");
    let on_operation =
        approval("a2", "o2", "approve", "").replace("kind: VmRequest", "kind: VmOperation");
    env.kubectl_ok("bob", &["apply", "-f", "-"], Some(&on_operation))
        .await;
    phase(&env, "approvals", "a2", "Applied").await;
    let approved = phase(&env, "vmoperations", "o2", "Approved").await;
    assert_eq!(approved.pointer("/status/approver"), Some(&json!("bob")));
    assert_eq!(
        approved.pointer("/status/vms/0/name"),
        Some(&json!("team-a-shop-web-01"))
    );
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_operate'"
        )
        .await,
        2
    );
}
