//! Day-2 operations end to end on the simulator: a VmOperation's approved ticket is carried
//! out by the `vm_operate` worker on the VM's cluster. Each test checks the KubeVirt objects
//! on the target cluster, the ticket, the VmOperation's status and the audit rows.

mod faults;

use crate::common::e2e::{Env, start};
use crate::common::{eventually, setup};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};
use shepherd::clusters::kubevirt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

const VM: &str = "team-a-shop-web-01";

/// A test cluster `target-1` (and a prod cluster `prod-1` when `prod`), alice's shop, and
/// one running VM `team-a-shop-web-01` on target-1.
async fn world(opts: PgPoolOptions, connect: PgConnectOptions, prod: bool) -> Env {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    if prod {
        env.add_target("prod-1", "prod", true).await;
    }
    env.apply_shop().await;
    create_vm(&env, "alice", "r1", "team-a").await;
    env
}

/// `user` asks for one VM in `namespace`, bob approves, and it runs.
async fn create_vm(env: &Env, user: &str, name: &str, namespace: &str) -> Value {
    let request = format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{system: shop, service: web, targetNamespace: {namespace}, template: fedora, instanceSize: small, count: 1, reason: more}}\n"
    );
    env.kubectl_ok(user, &["apply", "-f", "-"], Some(&request))
        .await;
    env.wait_for("vmrequests", Some("apps"), name, |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(env, &format!("{name}-ok"), "VmRequest", name).await;
    let done = env
        .wait_for_within(
            Duration::from_secs(90),
            "vmrequests",
            Some("apps"),
            name,
            |o| {
                o.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .is_some_and(|p| ["Succeeded", "Failed"].contains(&p))
            },
        )
        .await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    done
}

/// bob approves the ticket of the VmRequest or VmOperation `target`.
async fn approve(env: &Env, name: &str, kind: &str, target: &str) {
    let approval = format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{target: {{kind: {kind}, name: {target}}}, decision: approve, reason: \"go ahead\"}}\n"
    );
    env.kubectl_ok("bob", &["apply", "-f", "-"], Some(&approval))
        .await;
}

fn operation(name: &str, vm: &str, op: &str, extra: &str) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmOperation\nmetadata: {{name: {name}, namespace: apps}}\n\
         spec: {{vm: {vm}, operation: {op}, reason: \"day two\"{extra}}}\n"
    )
}

/// `user` applies a VmOperation; kubectl's answer (ok, stderr).
async fn ask(env: &Env, user: &str, name: &str, vm: &str, op: &str, extra: &str) -> (bool, String) {
    let (ok, _, err) = env
        .kubectl(
            user,
            &["apply", "-f", "-"],
            Some(&operation(name, vm, op, extra)),
        )
        .await;
    (ok, err)
}

/// Waits (a liveness bound on a loaded machine, not a performance assertion) until the
/// VmOperation's ticket is final; returns the object.
async fn finished(env: &Env, name: &str) -> Value {
    env.wait_for_within(
        Duration::from_secs(90),
        "vmoperations",
        Some("apps"),
        name,
        |o| {
            o.pointer("/status/phase")
                .and_then(Value::as_str)
                .is_some_and(|p| ["Succeeded", "Failed", "Rejected"].contains(&p))
        },
    )
    .await
}

/// alice asks for an operation that needs no approver in test and it succeeds.
async fn operate_ok(env: &Env, name: &str, vm: &str, op: &str, extra: &str) -> Value {
    let (ok, err) = ask(env, "alice", name, vm, op, extra).await;
    assert!(ok, "{err}");
    let done = finished(env, name).await;
    assert_succeeded(env, &done).await;
    done
}

/// The VmOperation shows `Succeeded` with `Ready` True, and its ticket is `Succeeded`.
async fn assert_succeeded(env: &Env, op: &Value) {
    assert_eq!(op["status"]["phase"], "Succeeded", "{op:#}");
    let ready = condition(op, "Ready").expect("a Ready condition");
    assert_eq!(ready["status"], "True", "{op:#}");
    assert_eq!(ticket_of(env, op).await.0, "Succeeded", "{op:#}");
}

fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn api(env: &Env, cluster: &str, resource: &kube::api::ApiResource) -> Api<DynamicObject> {
    api_in(env, cluster, "team-a", resource)
}

fn api_in(
    env: &Env,
    cluster: &str,
    namespace: &str,
    resource: &kube::api::ApiResource,
) -> Api<DynamicObject> {
    let client = env.target(cluster).kube_client("admin").unwrap();
    Api::namespaced_with(client, namespace, resource)
}

/// An object in team-a on the target cluster, as JSON.
async fn on_cluster(
    env: &Env,
    cluster: &str,
    resource: &kube::api::ApiResource,
    name: &str,
) -> Option<Value> {
    api(env, cluster, resource)
        .get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

/// The names of the objects of a kind in team-a on a cluster.
async fn names_on(env: &Env, cluster: &str, resource: &kube::api::ApiResource) -> Vec<String> {
    let mut names: Vec<String> = api(env, cluster, resource)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    names.sort();
    names
}

/// The audit actions about the VM `name` (or its ticket), oldest first.
async fn audit_for(env: &Env, vm: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE resource_type = 'vm' AND resource_name = $1 ORDER BY id",
    )
    .bind(vm)
    .fetch_all(&env.db.pool)
    .await
    .unwrap()
}

/// The VM's audit actions, after checking that each of `expected` is among them.
async fn assert_audited(env: &Env, vm: &str, expected: &[&str]) -> Vec<String> {
    let actions = audit_for(env, vm).await;
    for action in expected {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing from {actions:?}"
        );
    }
    actions
}

async fn ticket_of(env: &Env, op: &Value) -> (String, Option<Value>) {
    let id: uuid::Uuid = op["status"]["ticketId"].as_str().unwrap().parse().unwrap();
    sqlx::query_as("SELECT status, result FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap()
}

async fn vm_row(env: &Env, name: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT status, desired_power_state FROM vms WHERE name = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(name)
    .fetch_one(&env.db.pool)
    .await
    .unwrap()
}

/// A column of the VM's (latest) row, as text. `column` is always a literal of these tests.
async fn vm_field(env: &Env, name: &str, column: &'static str) -> Option<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column}::text FROM vms WHERE name = $1 ORDER BY created_at DESC LIMIT 1"
    )))
    .bind(name)
    .fetch_one(&env.db.pool)
    .await
    .unwrap()
}

/// Waits until the VM's row shows `state`.
async fn wait_vm_state(env: &Env, name: &str, state: &str) {
    eventually(
        &format!("VM {name} becoming {state}"),
        60,
        || vm_field(env, name, "status"),
        |s| s.as_deref() == Some(state),
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn stop_start_and_restart_go_through_kubevirt_and_keep_the_desired_power(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let vms = kubevirt::virtual_machine();
    let vmis = kubevirt::virtual_machine_instance();

    let stop = operate_ok(&env, "stop-1", VM, "stop", "").await;
    let vm = on_cluster(&env, "target-1", &vms, VM).await.unwrap();
    assert_eq!(vm["spec"]["runStrategy"], "Halted", "{vm:#}");
    assert_eq!(vm["status"]["printableStatus"], "Stopped", "{vm:#}");
    assert!(on_cluster(&env, "target-1", &vmis, VM).await.is_none());
    assert_eq!(
        vm_row(&env, VM).await,
        ("Stopped".to_string(), "Stopped".to_string())
    );
    assert_eq!(ticket_of(&env, &stop).await.0, "Succeeded");
    assert_eq!(stop["status"]["vms"][0]["name"], VM);
    assert_eq!(stop["status"]["approver"], "system:approval-policy");

    // Stopping a stopped VM is success: it already is where it was asked to be.
    operate_ok(&env, "stop-2", VM, "stop", "").await;

    operate_ok(&env, "start-1", VM, "start", "").await;
    let vm = on_cluster(&env, "target-1", &vms, VM).await.unwrap();
    assert_eq!(vm["spec"]["runStrategy"], "Always", "{vm:#}");
    let first = on_cluster(&env, "target-1", &vmis, VM).await.unwrap();
    assert_eq!(first["status"]["phase"], "Running");
    wait_vm_state(&env, VM, "Running").await;
    assert_eq!(vm_row(&env, VM).await.1, "Running");

    let restart = operate_ok(&env, "restart-1", VM, "restart", "").await;
    let second = on_cluster(&env, "target-1", &vmis, VM).await.unwrap();
    assert_ne!(
        second["metadata"]["uid"], first["metadata"]["uid"],
        "a restart replaces the instance"
    );
    assert_eq!(second["status"]["phase"], "Running");
    let (_, result) = ticket_of(&env, &restart).await;
    assert_eq!(
        result.unwrap()["replacedVmi"],
        first["metadata"]["uid"],
        "the restart recorded the instance it replaced"
    );

    let actions = assert_audited(
        &env,
        VM,
        &[
            "vm.stop.started",
            "vm.power.desired",
            "vm.stop.succeeded",
            "vm.start.started",
            "vm.start.succeeded",
            "vm.restart.started",
            "vm.restart.requested",
            "vm.restart.succeeded",
        ],
    )
    .await;
    // Each operation was started and finished once.
    for op in ["stop", "start", "restart"] {
        let started = actions
            .iter()
            .filter(|a| **a == format!("vm.{op}.started"))
            .count();
        let expected = if op == "stop" { 2 } else { 1 };
        assert_eq!(started, expected, "{op}: {actions:?}");
    }
    // A restart of a stopped VM is refused at admission, with the reason.
    operate_ok(&env, "stop-3", VM, "stop", "").await;
    let (ok, err) = ask(&env, "alice", "restart-2", VM, "restart", "").await;
    assert!(!ok && err.contains("restart needs it Running"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn a_snapshot_is_listed_and_restored_onto_the_stopped_vm(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let snap = operate_ok(&env, "snap-1", VM, "snapshot", ", snapshot: before-upgrade").await;
    assert_eq!(snap["status"]["result"]["snapshot"], "before-upgrade");
    let object = on_cluster(&env, "target-1", &kubevirt::snapshot(), "before-upgrade")
        .await
        .expect("the VirtualMachineSnapshot on the cluster");
    assert_eq!(object["status"]["readyToUse"], true, "{object:#}");
    assert_eq!(object["spec"]["source"]["name"], VM);
    assert_eq!(
        object["metadata"]["labels"]["kubevirt-shepherd.io/ticket-id"],
        snap["status"]["ticketId"]
    );
    // A snapshot without a name gets one fixed by its ticket.
    let unnamed = operate_ok(&env, "snap-2", VM, "snapshot", "").await;
    let generated = unnamed["status"]["result"]["snapshot"].as_str().unwrap();
    assert!(
        generated.starts_with(&format!("{VM}-snapshot-")),
        "{generated}"
    );
    assert_eq!(names_on(&env, "target-1", &kubevirt::snapshot()).await, {
        let mut both = vec!["before-upgrade".to_string(), generated.to_string()];
        both.sort();
        both
    });

    // Listed by the plugin and the REST API; alice may read her VM.
    let (code, out, err) = env.plugin("alice", &["snapshots", VM]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("before-upgrade") && out.contains(generated),
        "{out}"
    );
    let (code, out, err) = env.plugin("alice", &["snapshots", VM, "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    assert!(
        listed
            .iter()
            .all(|s| s["ready"] == true && s["cluster"] == "target-1"),
        "{out}"
    );
    // A name already taken is refused at admission.
    let (ok, err) = ask(
        &env,
        "alice",
        "snap-3",
        VM,
        "snapshot",
        ", snapshot: before-upgrade",
    )
    .await;
    assert!(!ok && err.contains("already has a snapshot"), "{err}");

    // Restore: refused at admission while the VM runs, and for an unknown snapshot.
    let (ok, err) = ask(
        &env,
        "alice",
        "restore-0",
        VM,
        "restore",
        ", snapshot: before-upgrade",
    )
    .await;
    assert!(!ok && err.contains("restore needs it Stopped"), "{err}");
    operate_ok(&env, "stop-1", VM, "stop", "").await;
    wait_vm_state(&env, VM, "Stopped").await;
    let (ok, err) = ask(
        &env,
        "alice",
        "restore-0",
        VM,
        "restore",
        ", snapshot: nope",
    )
    .await;
    assert!(!ok && err.contains("has no snapshot \"nope\""), "{err}");

    // A restore needs an approver.
    let (ok, err) = ask(
        &env,
        "alice",
        "restore-1",
        VM,
        "restore",
        ", snapshot: before-upgrade",
    )
    .await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "restore-1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(&env, "restore-1-ok", "VmOperation", "restore-1").await;
    let restored = finished(&env, "restore-1").await;
    assert_succeeded(&env, &restored).await;
    assert_eq!(restored["status"]["approver"], "bob");
    assert_eq!(restored["status"]["result"]["snapshot"], "before-upgrade");
    let restores = names_on(&env, "target-1", &kubevirt::restore()).await;
    assert_eq!(restores.len(), 1, "{restores:?}");
    let restore = on_cluster(&env, "target-1", &kubevirt::restore(), &restores[0])
        .await
        .unwrap();
    assert_eq!(restore["status"]["complete"], true, "{restore:#}");
    assert_eq!(
        restore["spec"]["virtualMachineSnapshotName"],
        "before-upgrade"
    );
    assert_audited(
        &env,
        VM,
        &[
            "vm.snapshot.started",
            "vm.snapshot.succeeded",
            "vm.restore.started",
            "vm.restore.succeeded",
        ],
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn migrate_moves_the_running_vm_to_another_node(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let before = on_cluster(&env, "target-1", &kubevirt::virtual_machine_instance(), VM)
        .await
        .unwrap();
    let from = before["status"]["nodeName"].as_str().unwrap().to_string();
    let done = operate_ok(&env, "move-1", VM, "migrate", "").await;
    let to = done["status"]["result"]["targetNode"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(from, to);
    assert_eq!(done["status"]["result"]["sourceNode"], from.as_str());
    let migrations = names_on(&env, "target-1", &kubevirt::migration()).await;
    assert_eq!(migrations.len(), 1, "{migrations:?}");
    let migration = on_cluster(&env, "target-1", &kubevirt::migration(), &migrations[0])
        .await
        .unwrap();
    assert_eq!(migration["status"]["phase"], "Succeeded", "{migration:#}");
    assert_eq!(migration["spec"]["vmiName"], VM);
    let after = on_cluster(&env, "target-1", &kubevirt::virtual_machine_instance(), VM)
        .await
        .unwrap();
    assert_eq!(after["status"]["nodeName"], to.as_str());
    // The VM's row follows the instance to its new node.
    eventually(
        "the VM's node",
        30,
        || vm_field(&env, VM, "node"),
        |n| n.as_deref() == Some(to.as_str()),
    )
    .await;
    assert_audited(
        &env,
        VM,
        &[
            "vm.migrate.started",
            "vm.migrate.requested",
            "vm.migrate.succeeded",
        ],
    )
    .await;
    // A stopped VM cannot migrate: refused at admission.
    operate_ok(&env, "stop-1", VM, "stop", "").await;
    wait_vm_state(&env, VM, "Stopped").await;
    let (ok, err) = ask(&env, "alice", "move-2", VM, "migrate", "").await;
    assert!(!ok && err.contains("migrate needs it Running"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn clone_makes_a_new_vm_with_the_next_index_and_its_own_labels(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let (ok, err) = ask(&env, "alice", "copy-1", VM, "clone", "").await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "copy-1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(&env, "copy-1-ok", "VmOperation", "copy-1").await;
    let done = finished(&env, "copy-1").await;
    assert_succeeded(&env, &done).await;
    let clone_name = "team-a-shop-web-02";
    assert_eq!(done["status"]["result"]["clone"], clone_name);
    let clone = on_cluster(&env, "target-1", &kubevirt::virtual_machine(), clone_name)
        .await
        .expect("the clone on the cluster");
    let ticket = done["status"]["ticketId"].as_str().unwrap();
    let labels = &clone["metadata"]["labels"];
    assert_eq!(
        labels["kubevirt-shepherd.io/ticket-id"], ticket,
        "{clone:#}"
    );
    // The same labels as any VM of the platform: its own instance, ticket and requester.
    assert_eq!(labels["kubevirt-shepherd.io/instance"], "02", "{clone:#}");
    assert_eq!(
        labels["kubevirt-shepherd.io/created-by"], "alice",
        "{clone:#}"
    );
    assert_eq!(labels["kubevirt-shepherd.io/system"], "shop", "{clone:#}");
    assert_eq!(
        labels["kubevirt-shepherd.io/managed-by"],
        "kubevirt-shepherd"
    );
    let template_labels = &clone["spec"]["template"]["metadata"]["labels"];
    assert_eq!(template_labels["kubevirt-shepherd.io/ticket-id"], ticket);
    let objects = names_on(&env, "target-1", &kubevirt::clone()).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    let object = on_cluster(&env, "target-1", &kubevirt::clone(), &objects[0])
        .await
        .unwrap();
    assert_eq!(object["status"]["phase"], "Succeeded", "{object:#}");
    // The clone is followed like a provisioned VM: it runs and shows in the operation.
    wait_vm_state(&env, clone_name, "Running").await;
    assert!(vm_field(&env, clone_name, "source_vm_id").await.is_some());
    let shown = env
        .wait_for("vmoperations", Some("apps"), "copy-1", |o| {
            o.pointer("/status/vms/1/phase") == Some(&json!("Running"))
        })
        .await;
    assert_eq!(shown["status"]["vms"][1]["name"], clone_name);
    let (code, out, err) = env.plugin("alice", &["vms"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(clone_name), "{out}");
    let actions = audit_for(&env, clone_name).await;
    assert_eq!(
        actions.first().map(String::as_str),
        Some("vm.create"),
        "{actions:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn delete_removes_the_vm_and_a_prod_delete_must_repeat_its_name(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, true).await;
    // Operators do not delete.
    let (ok, err) = ask(&env, "alice", "del-0", VM, "delete", "").await;
    assert!(!ok && err.contains("missing permission vm:delete"), "{err}");
    let (ok, err) = ask(&env, "admin", "del-1", VM, "delete", "").await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "del-1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(&env, "del-1-ok", "VmOperation", "del-1").await;
    let done = finished(&env, "del-1").await;
    assert_succeeded(&env, &done).await;
    assert!(
        on_cluster(&env, "target-1", &kubevirt::virtual_machine(), VM)
            .await
            .is_none()
    );
    wait_vm_state(&env, VM, "Deleted").await;
    let actions = assert_audited(
        &env,
        VM,
        &["vm.delete.started", "vm.deleted", "vm.delete.succeeded"],
    )
    .await;
    assert!(!actions.iter().any(|a| a == "vm.missing"), "{actions:?}");
    // A Deleted VM takes no operation.
    let (ok, err) = ask(&env, "alice", "stop-9", VM, "stop", "").await;
    assert!(!ok && err.contains("not found"), "{err}");

    // In prod the name must be repeated: CEL checks it matches, admission that it is there.
    create_vm(&env, "admin", "r2", "shop-prod").await;
    let prod_vm = "shop-prod-shop-web-02";
    // alice's bindings allow test only: no operation of hers reaches a prod VM.
    let (ok, err) = ask(&env, "alice", "stop-prod", prod_vm, "stop", "").await;
    assert!(!ok && err.contains("environment \"prod\""), "{err}");
    let (ok, err) = ask(&env, "admin", "del-2", prod_vm, "delete", "").await;
    assert!(!ok && err.contains("spec.confirmName"), "{err}");
    let (ok, err) = ask(
        &env,
        "admin",
        "del-2",
        prod_vm,
        "delete",
        ", confirmName: wrong",
    )
    .await;
    assert!(
        !ok && err.contains("confirmName must equal spec.vm"),
        "{err}"
    );
    let (ok, err) = ask(
        &env,
        "admin",
        "del-2",
        prod_vm,
        "delete",
        &format!(", confirmName: {prod_vm}"),
    )
    .await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "del-2", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    assert!(
        api_in(&env, "prod-1", "shop-prod", &kubevirt::virtual_machine())
            .get_opt(prod_vm)
            .await
            .unwrap()
            .is_some()
    );
    approve(&env, "del-2-ok", "VmOperation", "del-2").await;
    let deleted = finished(&env, "del-2").await;
    assert_succeeded(&env, &deleted).await;
    wait_vm_state(&env, prod_vm, "Deleted").await;
    assert!(
        api_in(&env, "prod-1", "shop-prod", &kubevirt::virtual_machine())
            .get_opt(prod_vm)
            .await
            .unwrap()
            .is_none()
    );
}
