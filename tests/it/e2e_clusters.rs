//! Knowing the clusters, end to end on the simulator: the `cluster_probe` job finds a
//! registered cluster's health, KubeVirt version and capabilities and the Cluster shows them
//! (`kubectl get clusters`); a cluster without KubeVirt is Degraded; an unreachable one is
//! Unreachable and recovers; placement takes Healthy clusters only.

use crate::common::e2e::{Env, start};
use crate::common::{count, setup};
use serde_json::{Value, json};
use shepherd_sim::ClusterConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

const CLUSTERS: &str = "clusters.shepherd.kv-shepherd.io";

fn condition(obj: &Value, kind: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or_else(|| panic!("no {kind} condition in {obj:#}"))
}

async fn health_is(env: &Env, name: &str, health: &str) -> Value {
    env.wait_for_within(Duration::from_secs(60), CLUSTERS, None, name, |o| {
        o.pointer("/status/health") == Some(&json!(health))
    })
    .await
}

#[sqlx::test(migrations = false)]
async fn a_registered_cluster_shows_health_kubevirt_and_capabilities(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    let cluster = health_is(&env, "target-1", "Healthy").await;
    let status = &cluster["status"];
    assert_eq!(status["kubevirtVersion"], "v1.5.2", "{status:#}");
    assert_eq!(status["storageClasses"], json!(["fast", "standard"]));
    let capabilities: Vec<&str> = status["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "gpu:nvidia.com/GA102GL_A10",
        "hugepages:1Gi",
        "hugepages:2Mi",
        "snapshot",
        "live-migration",
    ] {
        assert!(capabilities.contains(&expected), "{capabilities:?}");
    }
    assert!(status["lastProbeTime"].is_string(), "{status:#}");
    let healthy = condition(&cluster, "Healthy");
    assert_eq!(healthy["status"], "True");
    assert_eq!(healthy["reason"], "KubeVirtDeployed");

    // What an operator reads: the HEALTH and KUBEVIRT columns, filled.
    let table = env
        .kubectl_ok("admin", &["get", "clusters.shepherd.kv-shepherd.io"], None)
        .await;
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("HEALTH") && header.contains("KUBEVIRT"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("target-1")).unwrap();
    assert!(row.contains("Healthy") && row.contains("v1.5.2"), "{table}");

    // PostgreSQL holds what placement reads, and the change is audited once.
    let (health, gpus): (String, Value) =
        sqlx::query_as("SELECT health, capabilities->'gpus' FROM clusters WHERE name = 'target-1'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (health.as_str(), gpus),
        ("Healthy", json!(["nvidia.com/GA102GL_A10"]))
    );
    for action in ["cluster.health", "cluster.kubevirt_version"] {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{action}");
    }

    // A size needing a GPU target-1 does not have cannot be placed; the reason says which.
    env.kubectl_ok(
        "admin",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: InstanceSize\nmetadata: {name: gpu-t4}\n\
             spec: {cpu: {cores: 2}, memory: {mib: 2048}, disk: {minGiB: 10, maxGiB: 100},\
             gpus: [{name: t4, deviceName: nvidia.com/TU104GL_Tesla_T4}]}\n",
        ),
    )
    .await;
    env.wait_for("instancesizes", None, "gpu-t4", |o| {
        o.pointer("/status/phase") == Some(&json!("Ready"))
    })
    .await;
    env.apply_shop().await;
    let request = vm_request("g1", 1).replace("instanceSize: small", "instanceSize: gpu-t4");
    env.kubectl_ok("alice", &["apply", "-f", "-"], Some(&request))
        .await;
    let pending = env
        .wait_for("vmrequests", Some("apps"), "g1", |o| {
            o.pointer("/status/phase") == Some(&json!("PendingApproval"))
        })
        .await;
    let ticket = pending["status"]["ticketId"].as_str().unwrap();
    let (code, _, err) = env
        .plugin("bob", &["approve", ticket, "--reason", "gpu"])
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("cluster \"target-1\" has no GPU device \"nvidia.com/TU104GL_Tesla_T4\""),
        "{err}"
    );
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_cluster_without_kubevirt_is_degraded_and_takes_no_vms(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target_with(ClusterConfig::new("bare"), "test", true)
        .await;
    let cluster = health_is(&env, "bare", "Degraded").await;
    let healthy = condition(&cluster, "Healthy");
    assert_eq!(healthy["status"], "False");
    assert_eq!(healthy["reason"], "KubeVirtNotInstalled", "{healthy:#}");
    assert!(
        cluster["status"]["kubevirtVersion"].is_null(),
        "{cluster:#}"
    );

    // An approval that names it is refused with the reason; the request stays pending.
    env.apply_shop().await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {name: r1, namespace: apps}\n\
             spec: {system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: 1, reason: probe}\n",
        ),
    )
    .await;
    let request = env
        .wait_for("vmrequests", Some("apps"), "r1", |o| {
            o.pointer("/status/phase") == Some(&json!("PendingApproval"))
        })
        .await;
    let ticket = request["status"]["ticketId"].as_str().unwrap().to_string();
    let (code, _, err) = env
        .plugin(
            "bob",
            &["approve", &ticket, "--cluster", "bare", "--reason", "try"],
        )
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("\"bare\" is Degraded, not Healthy"), "{err}");
    let (code, _, err) = env
        .plugin("bob", &["approve", &ticket, "--reason", "any"])
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("no cluster can take these VMs"), "{err}");
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM vms").await, 0);
}

#[sqlx::test(migrations = false)]
async fn an_unreachable_cluster_is_reported_and_recovers(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.probe_interval = Duration::from_secs(2);
    env.start_shepherd("replica-2").await;
    env.add_target("target-1", "test", true).await;
    env.target("target-1").faults().set_unreachable();
    let cluster = health_is(&env, "target-1", "Unreachable").await;
    let healthy = condition(&cluster, "Healthy");
    assert_eq!(healthy["reason"], "Unreachable", "{healthy:#}");
    // The last known version and capabilities stay while it is away.
    assert_eq!(cluster["status"]["kubevirtVersion"], "v1.5.2");

    env.target("target-1").faults().set_reachable();
    health_is(&env, "target-1", "Healthy").await;
    let transitions: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'to' FROM audit_log WHERE action = 'cluster.health' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(transitions, ["Healthy", "Unreachable", "Healthy"]);
}

fn vm_request(name: &str, count: i32) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: {count}, reason: lifecycle}}\n"
    )
}

async fn pending(env: &Env, name: &str, count: i32) -> String {
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request(name, count)),
    )
    .await;
    let request = env
        .wait_for("vmrequests", Some("apps"), name, |o| {
            o.pointer("/status/phase") == Some(&json!("PendingApproval"))
        })
        .await;
    request["status"]["ticketId"].as_str().unwrap().to_string()
}

/// alice's request `name` for `count` VMs, approved by bob and running.
async fn running(env: &Env, name: &str, count: i32) {
    let ticket = pending(env, name, count).await;
    let (code, _, err) = env
        .plugin("bob", &["approve", &ticket, "--reason", "ok"])
        .await;
    assert_eq!(code, 0, "{err}");
    env.wait_for_within(
        Duration::from_secs(60),
        "vmrequests",
        Some("apps"),
        name,
        |o| o.pointer("/status/phase") == Some(&json!("Succeeded")),
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn catalog_objects_in_use_cannot_be_deleted_and_unused_ones_are_soft_deleted(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    env.apply_shop().await;
    running(&env, "r1", 2).await;
    pending(&env, "r2", 1).await;

    // Refused at admission, with how much uses each; nothing changes.
    for (resource, name, says) in [
        (
            "clusters.shepherd.kv-shepherd.io",
            "target-1",
            "is in use: 2 live VMs; set spec.enabled: false",
        ),
        ("vmnamespaces", "team-a", "is in use: 2 live VMs"),
        (
            "instancesizes",
            "small",
            "is in use: 1 pending tickets naming it",
        ),
        (
            "vmtemplates",
            "fedora",
            "is in use: 1 pending tickets naming it",
        ),
    ] {
        let (ok, _, err) = env
            .kubectl("admin", &["delete", resource, name], None)
            .await;
        assert!(!ok, "{resource}/{name} was deleted");
        assert!(err.contains(says), "{resource}/{name}: {err}");
        assert!(env.get(resource, None, name).await.is_some());
    }
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM audit_log WHERE action LIKE '%.delete'"
        )
        .await,
        0
    );

    // An unused size goes: soft-deleted and audited, and new requests cannot name it.
    env.kubectl_ok(
        "admin",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: InstanceSize\nmetadata: {name: spare}\n\
             spec: {cpu: {cores: 1}, memory: {mib: 1024}, disk: {minGiB: 10, maxGiB: 20}}\n",
        ),
    )
    .await;
    env.wait_for("instancesizes", None, "spare", |o| {
        o.pointer("/status/phase") == Some(&json!("Ready"))
    })
    .await;
    env.kubectl_ok("admin", &["delete", "instancesizes", "spare"], None)
        .await;
    env.wait_gone("instancesizes", None, "spare").await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM instance_sizes WHERE name = 'spare'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "Deleted");
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'instance_size.delete'"
        )
        .await,
        1
    );
    let spare = vm_request("r3", 1).replace("instanceSize: small", "instanceSize: spare");
    let (ok, _, err) = env
        .kubectl("alice", &["apply", "-f", "-"], Some(&spare))
        .await;
    assert!(
        !ok && err.contains("instance size \"spare\" does not exist"),
        "{err}"
    );

    // A disabled cluster takes no new VMs and keeps its own.
    env.kubectl_ok(
        "admin",
        &[
            "patch",
            "clusters.shepherd.kv-shepherd.io",
            "target-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"enabled":false}}"#,
        ],
        None,
    )
    .await;
    env.wait_for_within(Duration::from_secs(30), CLUSTERS, None, "target-1", |o| {
        o.pointer("/metadata/generation") == o.pointer("/status/observedGeneration")
    })
    .await;
    let r2 = env.get("vmrequests", Some("apps"), "r2").await.unwrap();
    let ticket = r2["status"]["ticketId"].as_str().unwrap();
    let (code, _, err) = env
        .plugin("bob", &["approve", ticket, "--reason", "more"])
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("\"target-1\" is disabled"), "{err}");
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM vms WHERE status = 'Running'"
        )
        .await,
        2
    );
}

#[sqlx::test(migrations = false)]
async fn drift_scans_report_orphans_and_drift_and_a_wrong_cluster_is_only_suspect(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
    use shepherd::clusters::kubevirt;
    let mut env = start(setup(opts, connect).await).await;
    env.drift_interval = Duration::from_secs(2);
    env.start_shepherd("replica-2").await;
    env.add_target("target-1", "test", true).await;
    env.apply_shop().await;
    running(&env, "r1", 2).await;
    let consistent = env
        .wait_for_within(Duration::from_secs(30), CLUSTERS, None, "target-1", |o| {
            condition_is(o, "Consistent", "True")
        })
        .await;
    assert_eq!(consistent["status"]["orphans"], 0);

    // Someone creates a VM with our label, and edits one of ours with another manager.
    let vms: Api<DynamicObject> = Api::namespaced_with(
        env.target("target-1").kube_client("admin").unwrap(),
        "team-a",
        &kubevirt::virtual_machine(),
    );
    let stray: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "stray", "labels": {"kubevirt-shepherd.io/managed-by": "kubevirt-shepherd"}},
        "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}},
    }))
    .unwrap();
    vms.create(&PostParams::default(), &stray).await.unwrap();
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    vms.patch(
        "team-a-shop-web-01",
        &edit,
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"labels": {"edited": "yes"}}}}})),
    )
    .await
    .unwrap();
    let drifted = env
        .wait_for_within(Duration::from_secs(30), CLUSTERS, None, "target-1", |o| {
            o.pointer("/status/orphans") == Some(&json!(1))
                && o.pointer("/status/driftedVms") == Some(&json!(1))
        })
        .await;
    let reason = &condition(&drifted, "Consistent")["reason"];
    assert_eq!(reason, "Drift", "{drifted:#}");
    let (code, out, err) = env.plugin("admin", &["orphans"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("target-1") && out.contains("team-a") && out.contains("stray"),
        "{out}"
    );
    let drifted_by: Vec<String> =
        sqlx::query_scalar("SELECT unnest(drifted_by) FROM vms WHERE name = 'team-a-shop-web-01'")
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(drifted_by, ["kubectl-edit"]);
    for action in ["cluster.orphans", "vm.drift"] {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{action}");
    }

    // The Secret now holds another cluster's kubeconfig: its VMs all look gone, so the
    // cluster is suspect and no VM is marked missing, by the scans or the watchers.
    env.add_target_with(ClusterConfig::target("elsewhere"), "test", false)
        .await;
    let elsewhere = env.target("elsewhere").kubeconfig_yaml("admin").unwrap();
    env.put_kubeconfig_secret("target-1", &elsewhere).await;
    let suspect = env
        .wait_for_within(Duration::from_secs(30), CLUSTERS, None, "target-1", |o| {
            condition_is(o, "Consistent", "False")
                && condition(o, "Consistent")["reason"] == "Suspect"
        })
        .await;
    let message = condition(&suspect, "Consistent")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("2 of the 2 VMs"), "{message}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let missing = count(
        &env.db.pool,
        "SELECT count(*) FROM vms WHERE status = 'Missing'",
    )
    .await;
    assert_eq!(missing, 0, "a wrong cluster marks nothing missing");
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'cluster.suspect'"
        )
        .await,
        1
    );

    // The right kubeconfig back: consistent again once the stray and the edit are undone.
    let right = env.target("target-1").kubeconfig_yaml("admin").unwrap();
    env.put_kubeconfig_secret("target-1", &right).await;
    vms.delete("stray", &Default::default()).await.unwrap();
    env.wait_for_within(Duration::from_secs(30), CLUSTERS, None, "target-1", |o| {
        o.pointer("/status/orphans") == Some(&json!(0))
            && condition(o, "Consistent")["reason"] != "Suspect"
    })
    .await;
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM vms WHERE status = 'Running'"
        )
        .await,
        2
    );
}

fn condition_is(obj: &Value, kind: &str, status: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == status))
}
