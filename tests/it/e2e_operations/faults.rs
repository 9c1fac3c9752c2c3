//! Day-2 faults: a cluster without snapshot support, a VM that cannot live-migrate, a
//! process killed right after asking the cluster (no double restart, no second snapshot),
//! an unreachable cluster during a delete, and operations on unknown VMs.

use super::*;
use shepherd_sim::{ClusterConfig, KubeVirtConfig};

#[sqlx::test(migrations = false)]
async fn a_snapshot_on_a_cluster_without_the_feature_fails_fast_with_the_reason(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    let mut config = ClusterConfig::target("target-1");
    let mut kubevirt_config = KubeVirtConfig::default();
    kubevirt_config.feature_gates.retain(|g| g != "Snapshot");
    config.kubevirt = Some(kubevirt_config);
    env.add_target_with(config, "test", true).await;
    env.wait_for("clusters.shepherd.kv-shepherd.io", None, "target-1", |o| {
        o.pointer("/status/health") == Some(&json!("Healthy"))
    })
    .await;
    env.apply_shop().await;
    create_vm(&env, "alice", "r1", "team-a").await;

    let (ok, err) = ask(&env, "alice", "snap-1", VM, "snapshot", "").await;
    assert!(ok, "{err}");
    let done = finished(&env, "snap-1").await;
    assert_eq!(done["status"]["phase"], "Failed", "{done:#}");
    assert_eq!(
        done["status"]["result"]["failureReason"],
        "SnapshotUnsupported"
    );
    let ready = condition(&done, "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("Snapshot feature gate is off")),
        "{ready}"
    );
    assert!(
        names_on(&env, "target-1", &kubevirt::snapshot())
            .await
            .is_empty()
    );
    let (status, _) = ticket_of(&env, &done).await;
    assert_eq!(status, "Failed");
    assert!(
        audit_for(&env, VM)
            .await
            .iter()
            .any(|a| a == "vm.snapshot.failed")
    );
    let last_error = vm_field(&env, VM, "last_error").await;
    assert!(
        last_error.is_some_and(|e| e.starts_with("snapshot failed: SnapshotUnsupported")),
        "the VM records what failed"
    );
    // The VM itself is fine: its state still follows the cluster.
    assert_eq!(vm_row(&env, VM).await.0, "Running");
}

#[sqlx::test(migrations = false)]
async fn a_vm_with_a_gpu_cannot_migrate_and_is_refused_with_kubevirts_reason(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    // node-1 of the simulated cluster has two A10 GPUs.
    env.kubectl_ok(
        "admin",
        &["apply", "-f", "-"],
        Some(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: InstanceSize\nmetadata: {name: gpu-a10}\n\
             spec: {cpu: {cores: 2}, memory: {mib: 2048}, disk: {minGiB: 10, maxGiB: 100},\
             gpus: [{name: a10, deviceName: nvidia.com/GA102GL_A10}]}\n",
        ),
    )
    .await;
    env.wait_for("instancesizes", None, "gpu-a10", |o| {
        o.pointer("/status/phase") == Some(&json!("Ready"))
    })
    .await;
    env.apply_shop().await;
    let request = "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\nmetadata: {name: g1, namespace: apps}\n\
         spec: {system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: gpu-a10, count: 1, reason: gpu}\n";
    env.kubectl_ok("alice", &["apply", "-f", "-"], Some(request))
        .await;
    env.wait_for("vmrequests", Some("apps"), "g1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(&env, "g1-ok", "VmRequest", "g1").await;
    env.wait_for_within(
        Duration::from_secs(90),
        "vmrequests",
        Some("apps"),
        "g1",
        |o| o.pointer("/status/phase") == Some(&json!("Succeeded")),
    )
    .await;
    // The watcher records what KubeVirt says about the running instance.
    eventually(
        "the VM's not_migratable",
        30,
        || vm_field(&env, VM, "not_migratable"),
        Option::is_some,
    )
    .await;
    let (ok, err) = ask(&env, "alice", "move-1", VM, "migrate", "").await;
    assert!(
        !ok && err.contains("cannot live-migrate: HostDeviceNotLiveMigratable"),
        "{err}"
    );
    assert!(
        names_on(&env, "target-1", &kubevirt::migration())
            .await
            .is_empty()
    );
}

/// Waits until the worker process exits (it kills itself after asking the cluster).
async fn crashed(mut child: tokio::process::Child) {
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the worker exits after its request")
        .unwrap();
    assert_eq!(status.code(), Some(137));
}

#[sqlx::test(migrations = false)]
async fn a_process_killed_after_asking_neither_restarts_twice_nor_snapshots_twice(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = world(opts, connect, false).await;
    // From now on jobs are worked by separate `shepherd run` processes only.
    env.stop_shepherd().await;
    env.workers = false;
    env.start_shepherd("replica-1").await;
    let vmis = kubevirt::virtual_machine_instance();
    let first = on_cluster(&env, "target-1", &vmis, VM).await.unwrap();

    let (ok, err) = ask(&env, "alice", "restart-1", VM, "restart", "").await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "restart-1", |o| {
        o.pointer("/status/phase") == Some(&json!("Approved"))
    })
    .await;
    crashed(env.worker_process(
        "crashing",
        Some(shepherd::jobs::operate::EXIT_AFTER_REQUEST_ENV),
    ))
    .await;
    let _restarted = env.worker_process("restarted", None);
    let done = finished(&env, "restart-1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    // One restart: the instance was replaced once, so the one running now is the second.
    let requested = audit_for(&env, VM)
        .await
        .iter()
        .filter(|a| *a == "vm.restart.requested")
        .count();
    assert_eq!(requested, 1);
    let current = on_cluster(&env, "target-1", &vmis, VM).await.unwrap();
    assert_ne!(current["metadata"]["uid"], first["metadata"]["uid"]);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM domain_events WHERE event_type = 'vm.restart.succeeded'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(events, 1);
    drop(_restarted);

    let (ok, err) = ask(&env, "alice", "snap-1", VM, "snapshot", "").await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "snap-1", |o| {
        o.pointer("/status/phase") == Some(&json!("Approved"))
    })
    .await;
    crashed(env.worker_process(
        "crashing-2",
        Some(shepherd::jobs::operate::EXIT_AFTER_REQUEST_ENV),
    ))
    .await;
    assert_eq!(
        names_on(&env, "target-1", &kubevirt::snapshot())
            .await
            .len(),
        1
    );
    let _restarted = env.worker_process("restarted-2", None);
    let done = finished(&env, "snap-1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    assert_eq!(
        names_on(&env, "target-1", &kubevirt::snapshot())
            .await
            .len(),
        1,
        "no second snapshot"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM vm_snapshots")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1);
}

#[sqlx::test(migrations = false)]
async fn an_unreachable_cluster_during_a_delete_is_retried_until_it_converges(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    env.target("target-1").faults().set_unreachable();
    let (ok, err) = ask(&env, "admin", "del-1", VM, "delete", "").await;
    assert!(ok, "{err}");
    env.wait_for("vmoperations", Some("apps"), "del-1", |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await;
    approve(&env, "del-1-ok", "VmOperation", "del-1").await;
    // The VM leaves service at approval; its job fails against the unreachable cluster.
    wait_vm_state(&env, VM, "Deleting").await;
    let (ok, err) = ask(&env, "alice", "stop-1", VM, "stop", "").await;
    assert!(
        !ok && err.contains("is Deleting and accepts no operation"),
        "{err}"
    );
    eventually(
        "a failed attempt of the delete job",
        60,
        || async {
            sqlx::query_scalar::<_, i32>(
                "SELECT coalesce(array_length(errors, 1), 0) FROM river_job WHERE kind = 'vm_operate'",
            )
            .fetch_one(&env.db.pool)
            .await
            .unwrap()
        },
        |errors| *errors > 0,
    )
    .await;
    env.target("target-1").faults().set_reachable();
    let done = finished(&env, "del-1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    wait_vm_state(&env, VM, "Deleted").await;
    assert!(
        on_cluster(&env, "target-1", &kubevirt::virtual_machine(), VM)
            .await
            .is_none()
    );
    let actions = audit_for(&env, VM).await;
    assert!(!actions.iter().any(|a| a == "vm.missing"), "{actions:?}");
}

#[sqlx::test(migrations = false)]
async fn an_operation_on_an_unknown_vm_is_refused(opts: PgPoolOptions, connect: PgConnectOptions) {
    let env = world(opts, connect, false).await;
    let (ok, err) = ask(&env, "alice", "stop-1", "team-a-shop-web-99", "stop", "").await;
    assert!(
        !ok && err.contains("vm team-a-shop-web-99 not found"),
        "{err}"
    );
    // CEL: a restore names its snapshot; only a delete takes confirmName.
    let (ok, err) = ask(&env, "alice", "restore-1", VM, "restore", "").await;
    assert!(
        !ok && err.contains("spec.snapshot is required for restore"),
        "{err}"
    );
    let (ok, err) = ask(
        &env,
        "alice",
        "stop-2",
        VM,
        "stop",
        &format!(", confirmName: {VM}"),
    )
    .await;
    assert!(!ok && err.contains("only a delete takes it"), "{err}");
}
