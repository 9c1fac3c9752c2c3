//! Provisioning faults: name conflicts, missing or unusable credentials, unreachable and
//! throttling clusters, cut watches, a process killed mid-job, the last failed attempt.

use super::*;
use crate::common::e2e::start_with;

#[sqlx::test(migrations = false)]
async fn a_foreign_vm_with_the_same_name_is_never_overwritten(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(env.target("target-1").kube_client("admin").unwrap());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap(),
        )
        .await
        .unwrap();
    let foreign: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "team-a-shop-web-01", "namespace": "team-a", "labels": {"owner": "someone-else"}},
        "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}},
    }))
    .unwrap();
    vm_api(&env, "target-1", Some("team-a"))
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Failed", "{done:#}");
    assert_eq!(done["status"]["vms"][0]["phase"], "Failed");
    assert_eq!(done["status"]["vms"][0]["reason"], "NameConflict");
    let theirs = vm_api(&env, "target-1", Some("team-a"))
        .get("team-a-shop-web-01")
        .await
        .unwrap();
    let theirs = serde_json::to_value(&theirs).unwrap();
    assert_eq!(
        theirs["spec"]["runStrategy"], "Halted",
        "overwritten: {theirs:#}"
    );
    assert_eq!(
        theirs["metadata"]["labels"],
        json!({"owner": "someone-else"})
    );
    let failed: Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'vm.provision.failed'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(failed["reason"], "NameConflict", "{failed}");
    let failed = events_for(&env, "r1").await;
    assert!(
        failed.iter().any(|e| e["reason"] == "VMFailed"
            && e["note"]
                .as_str()
                .is_some_and(|n| n.contains("NameConflict"))),
        "{failed:#?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_missing_kubeconfig_secret_shows_on_the_cluster_and_jobs_wait_for_it(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // No workers at first: nothing probes, so the cluster is recorded as probed healthy and
    // the request can be approved onto it while its Secret is still missing.
    let mut env = start_with(setup(opts, connect).await, false).await;
    env.add_target("target-1", "test", false).await;
    let cluster = env
        .wait_for("clusters.shepherd.kv-shepherd.io", None, "target-1", |o| {
            condition(o, "CredentialsReady").is_some_and(|c| c["status"] == "False")
        })
        .await;
    let credentials = condition(&cluster, "CredentialsReady").unwrap();
    assert_eq!(credentials["reason"], "SecretMissing", "{credentials}");
    assert!(
        credentials["message"]
            .as_str()
            .unwrap()
            .contains("kubevirt-shepherd/target-1-kubeconfig"),
        "{credentials}"
    );
    env.apply_shop().await;
    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    wait_phase(&env, "r1", &["Approved"], 30).await;
    env.workers = true;
    env.start_shepherd("replica-2").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM vms")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(status, "Creating");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("waiting for credentials")),
        "{error:?}"
    );
    // The job waits rather than failing.
    let job = provision_job(&env).await;
    assert!(
        matches!(job.0.as_str(), "scheduled" | "available" | "running"),
        "{job:?}"
    );
    assert!(vms_on(&env, "target-1").await.is_empty());
    // The probe the new process ran found the cluster unreachable, for the same reason.
    let cluster = env
        .wait_for("clusters.shepherd.kv-shepherd.io", None, "target-1", |o| {
            o.pointer("/status/health") == Some(&json!("Unreachable"))
        })
        .await;
    let healthy = condition(&cluster, "Healthy").unwrap();
    assert_eq!(
        (healthy["status"].as_str(), healthy["reason"].as_str()),
        (Some("False"), Some("SecretMissing")),
        "{healthy}"
    );

    let kubeconfig = env.target("target-1").kubeconfig_yaml("admin").unwrap();
    env.put_kubeconfig_secret("target-1", &kubeconfig).await;
    env.wait_for("clusters.shepherd.kv-shepherd.io", None, "target-1", |o| {
        condition(o, "CredentialsReady").is_some_and(|c| c["status"] == "True")
            && o.pointer("/status/health") == Some(&json!("Healthy"))
    })
    .await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01"]
    );
    // The kubeconfig's token never reached PostgreSQL.
    let token = env.target("target-1").token("admin").unwrap().to_string();
    let like = format!("%{token}%");
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM audit_log WHERE details::text LIKE $1)
              + (SELECT count(*) FROM vms WHERE coalesce(last_error, '') LIKE $1)
              + (SELECT count(*) FROM domain_events WHERE payload::text LIKE $1)
              + (SELECT count(*) FROM river_job WHERE errors::text LIKE $1 OR args::text LIKE $1)",
    )
    .bind(&like)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    // Nor the management cluster's status or Events.
    let cluster = env
        .kubectl_ok(
            "admin",
            &["get", "clusters.shepherd.kv-shepherd.io", "-o", "json"],
            None,
        )
        .await;
    let events = env
        .kubectl_ok("admin", &["get", "events", "-A", "-o", "json"], None)
        .await;
    assert!(!cluster.contains(&token) && !events.contains(&token));
}

#[sqlx::test(migrations = false)]
async fn an_unusable_kubeconfig_is_reported_without_its_contents(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.add_target("target-1", "test", true).await;
    let secret_token = "do-not-print-this-token-0123456789";
    // An exec plugin would run a command in the controller: refused, without echoing it.
    env.put_kubeconfig_secret(
        "target-1",
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n\
             clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:1'}}}}]\n\
             users: [{{name: u, user: {{token: {secret_token}, exec: {{apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}}}}}]\n"
        ),
    )
    .await;
    let cluster = env
        .wait_for("clusters.shepherd.kv-shepherd.io", None, "target-1", |o| {
            condition(o, "CredentialsReady").is_some_and(|c| c["status"] == "False")
        })
        .await;
    let credentials = condition(&cluster, "CredentialsReady").unwrap();
    assert_eq!(credentials["reason"], "KubeconfigInvalid");
    assert!(credentials["message"].as_str().unwrap().contains("exec"));
    assert!(!cluster.to_string().contains(secret_token));
    let events = env
        .kubectl_ok("admin", &["get", "events", "-A", "-o", "json"], None)
        .await;
    assert!(!events.contains(secret_token));
}

#[sqlx::test(migrations = false)]
async fn an_unreachable_then_throttling_cluster_converges_without_duplicates(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let target = env.target("target-1");
    target.faults().set_unreachable();
    request_and_approve(&env, "alice", "r1", "team-a", 2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let creating = count(
        &env.db.pool,
        "SELECT count(*) FROM vms WHERE status = 'Creating'",
    )
    .await;
    assert_eq!(
        creating, 2,
        "nothing can be created while the cluster is away"
    );
    target.faults().set_reachable();
    target.faults().fail_next(4, FailWith::TooManyRequests);
    tokio::time::sleep(Duration::from_secs(2)).await;
    target.faults().fail_next(3, FailWith::InternalError);
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01", "team-a/team-a-shop-web-02"]
    );
    let retried = count(
        &env.db.pool,
        "SELECT count(*) FROM river_job WHERE kind = 'vm_provision' AND attempt > 1 AND state = 'completed'",
    )
    .await;
    assert!(retried >= 1, "the jobs were retried");
}

#[sqlx::test(migrations = false)]
async fn cut_and_compacted_watches_still_converge_and_a_vm_deleted_behind_our_back_is_missing(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let target = env.target("target-1");
    request_and_approve(&env, "alice", "r1", "team-a", 2).await;
    // Cut and compact the watches while the VMs start: each re-watch gets 410 and relists.
    for _ in 0..5 {
        target.faults().compact_and_cut();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");

    vm_api(&env, "target-1", Some("team-a"))
        .delete("team-a-shop-web-02", &DeleteParams::default())
        .await
        .unwrap();
    let missing = wait_until(&env, "r1", 60, |o| {
        vm_phases(o).contains(&("team-a-shop-web-02".into(), "Missing".into()))
    })
    .await;
    assert_eq!(
        vm_phases(&missing)[0],
        ("team-a-shop-web-01".into(), "Running".into())
    );
    // The ticket's outcome stays what it was; the VM's fate is recorded.
    assert_eq!(missing["status"]["phase"], "Succeeded");
    assert!(
        audit_actions(&env)
            .await
            .contains(&"vm.missing".to_string())
    );
    assert_eq!(event_count(&env, "r1", "VMMissing").await, 1);
    // Nothing recreated it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01"]
    );
}

#[sqlx::test(migrations = false)]
async fn a_process_killed_after_the_apply_leaves_one_vm_and_the_job_completes_after_restart(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    // Jobs are worked by a separate `shepherd run` process only.
    env.workers = false;
    env.start_shepherd("replica-1").await;
    env.add_target("target-1", "test", true).await;
    env.apply_shop().await;
    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    wait_phase(&env, "r1", &["Approved"], 30).await;

    let mut crashing = env.worker_process(
        "crashing",
        Some(shepherd::jobs::provision::EXIT_AFTER_APPLY_ENV),
    );
    let status = tokio::time::timeout(Duration::from_secs(60), crashing.wait())
        .await
        .expect("the worker exits after the apply")
        .unwrap();
    assert_eq!(status.code(), Some(137));
    // The VM exists on the cluster, its row was not updated and the job is left running.
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01"]
    );
    let state: String = sqlx::query_scalar("SELECT status FROM vms")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(state, "Creating");
    let job: String =
        sqlx::query_scalar("SELECT state::text FROM river_job WHERE kind = 'vm_provision'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(job, "running");

    let _restarted = env.worker_process("restarted", None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let job: String =
            sqlx::query_scalar("SELECT state::text FROM river_job WHERE kind = 'vm_provision'")
                .fetch_one(&env.db.pool)
                .await
                .unwrap();
        if job == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job is {job}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        vms_on(&env, "target-1").await,
        ["team-a/team-a-shop-web-01"]
    );
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    let token = env.target("target-1").token("admin").unwrap().to_string();
    for name in ["crashing", "restarted"] {
        let log = std::fs::read_to_string(env.dir.path().join(format!("{name}.log"))).unwrap();
        assert!(!log.contains(&token), "the {name} process logged a token");
    }
    let revisions = count(&env.db.pool, "SELECT count(*) FROM vm_revisions").await;
    let restarted = std::fs::read_to_string(env.dir.path().join("restarted.log")).unwrap();
    let crashed = std::fs::read_to_string(env.dir.path().join("crashing.log")).unwrap();
    let job: (String, i16, Value) = sqlx::query_as(
        "SELECT state::text, attempt, to_jsonb(errors) FROM river_job WHERE kind = 'vm_provision'",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(
        revisions, 1,
        "{job:?}\n--crashed--\n{crashed}\n--restarted--\n{restarted}"
    );
}

#[sqlx::test(migrations = false)]
async fn the_last_failed_attempt_marks_the_vm_and_the_ticket_failed(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    env.target("target-1").faults().set_unreachable();
    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    wait_phase(&env, "r1", &["Approved", "Executing"], 30).await;
    // Two attempts instead of ten, so the test sees the last one fail.
    sqlx::query("UPDATE river_job SET max_attempts = 2 WHERE kind = 'vm_provision'")
        .execute(&env.db.pool)
        .await
        .unwrap();
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Failed", "{done:#}");
    assert_eq!(done["status"]["vms"][0]["phase"], "Failed");
    assert_eq!(done["status"]["vms"][0]["reason"], "ProvisioningFailed");
    let (reason, error): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT status_reason, last_error FROM vms")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("ProvisioningFailed"));
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("cluster target-1")),
        "{error:?}"
    );
    let job = provision_job(&env).await;
    assert_eq!(job, ("discarded".to_string(), 2));
    let ticket: String = sqlx::query_scalar("SELECT status FROM tickets")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(ticket, "Failed");
    let actions = audit_actions(&env).await;
    assert!(
        actions.contains(&"vm.provision.failed".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"ticket.failed".to_string()),
        "{actions:?}"
    );
    let failed_events = count(
        &env.db.pool,
        "SELECT count(*) FROM domain_events WHERE event_type = 'vm.state.failed'",
    )
    .await;
    assert_eq!(failed_events, 1);
    assert_eq!(event_count(&env, "r1", "VMFailed").await, 1);
    env.target("target-1").faults().set_reachable();
    assert!(vms_on(&env, "target-1").await.is_empty());
}
