//! The approval transaction on PostgreSQL 18: names, placement, jobs, snapshots, audit;
//! separation of duties, environment isolation, terminal tickets, and racing decisions.

use crate::common::world::{alice, bind, bob, pending, request};
use crate::common::{count, setup};
use shepherd::app::AppError;
use shepherd::app::access::Caller;
use shepherd::app::approvals::{approve, preview, reject};
use shepherd::app::catalog;
use shepherd::app::requests::submit_vm_request;
use shepherd::crd::approval::Overrides;
use shepherd::domain::Subject;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn river(pool: &PgPool) -> riverqueue::Client {
    shepherd::jobs::inserter(pool).unwrap()
}

#[sqlx::test(migrations = false)]
async fn approving_three_vms_names_places_and_enqueues_them(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 3).await;
    let overrides = Overrides {
        cluster: Some("test-2".into()),
        ..Default::default()
    };
    let preview = preview(&t.pool, &bob(), ticket, &overrides).await.unwrap();
    assert_eq!(preview.plan.cluster.name, "test-2");
    assert_eq!(preview.plan.eligible_clusters, ["test-1", "test-2"]);
    assert_eq!(
        preview.vm_names,
        [
            "team-a-shop-web-01",
            "team-a-shop-web-02",
            "team-a-shop-web-03"
        ]
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM vms").await,
        0,
        "preview writes nothing"
    );

    let approved = approve(&t.pool, &river(&t.pool), &bob(), ticket, "ok", &overrides)
        .await
        .unwrap();
    let names: Vec<&str> = approved.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "team-a-shop-web-01",
            "team-a-shop-web-02",
            "team-a-shop-web-03"
        ]
    );
    assert!(
        approved
            .vms
            .iter()
            .all(|v| v.cluster.as_deref() == Some("test-2") && v.status == "Creating")
    );
    let jobs: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT args FROM river_job WHERE kind = 'vm_provision' ORDER BY id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    let job_vms: Vec<String> = jobs
        .iter()
        .map(|a| a["vm_id"].as_str().unwrap().to_string())
        .collect();
    let vm_ids: Vec<String> = approved.vms.iter().map(|v| v.id.to_string()).collect();
    assert_eq!(job_vms, vm_ids, "one job per VM, carrying only its id");
    assert!(jobs.iter().all(|a| a.as_object().unwrap().len() == 1));
    let (status, approver, snapshot): (String, String, serde_json::Value) = sqlx::query_as(
        "SELECT status, approver, instance_size_snapshot FROM tickets WHERE id = $1",
    )
    .bind(ticket)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), approver.as_str()), ("Approved", "bob"));
    assert_eq!(snapshot["name"], "small");
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'vm.create' AND actor = 'bob'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.approve'"
        )
        .await,
        1
    );
    // Without an override the heaviest eligible cluster is chosen.
    let second = {
        let input = shepherd::app::requests::VmRequestInput {
            count: 1,
            ..request("r2", "team-a")
        };
        submit_vm_request(&t.pool, &crate::common::river(&t.pool), &alice(), &input)
            .await
            .unwrap()
            .ticket_id
    };
    let approved = approve(
        &t.pool,
        &river(&t.pool),
        &bob(),
        second,
        "ok",
        &Overrides::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (approved.cluster.as_str(), approved.vms[0].name.as_str()),
        ("test-1", "team-a-shop-web-04")
    );
}

#[sqlx::test(migrations = false)]
async fn requesters_other_environments_and_terminal_tickets_are_refused(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    bind(&t.pool, Subject::user("alice"), "approver", None, &["test"]).await;
    let err = approve(
        &t.pool,
        &river(&t.pool),
        &alice(),
        ticket,
        "mine",
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Forbidden(m) if m.contains("requested")),
        "{err}"
    );
    let prod = Overrides {
        cluster: Some("prod-1".into()),
        ..Default::default()
    };
    let err = approve(&t.pool, &river(&t.pool), &bob(), ticket, "x", &prod)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid { rule, .. } if rule.contains("environment")),
        "{err}"
    );
    let err = approve(
        &t.pool,
        &river(&t.pool),
        &Caller::new("mallory", &[]),
        ticket,
        "x",
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, AppError::NotFound { .. } | AppError::Forbidden(_)),
        "{err}"
    );
    reject(&t.pool, &bob(), ticket, "not now").await.unwrap();
    let err = approve(
        &t.pool,
        &river(&t.pool),
        &bob(),
        ticket,
        "x",
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.ends_with("is already Rejected (by bob)")),
        "{err}"
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM vms").await,
        0,
        "rejection creates no VM"
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM river_job").await,
        0,
        "rejection creates no job"
    );
}

#[sqlx::test(migrations = false)]
async fn twenty_concurrent_decisions_make_one_set_of_vms(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 3).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (pool, barrier) = (t.pool.clone(), barrier.clone());
            tokio::spawn(async move {
                let river = shepherd::jobs::inserter(&pool).unwrap();
                barrier.wait().await;
                if i % 2 == 0 {
                    approve(&pool, &river, &bob(), ticket, "race", &Overrides::default())
                        .await
                        .map(|_| ())
                } else {
                    reject(&pool, &bob(), ticket, "race").await.map(|_| ())
                }
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => winners += 1,
            Err(AppError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners, 1);
    let status: String = sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let (vms, jobs) = (
        count(&t.pool, "SELECT count(*) FROM vms").await,
        count(&t.pool, "SELECT count(*) FROM river_job").await,
    );
    match status.as_str() {
        "Approved" => assert_eq!((vms, jobs), (3, 3)),
        "Rejected" => assert_eq!((vms, jobs), (0, 0)),
        other => panic!("unexpected status {other}"),
    }
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action IN ('approval.approve', 'approval.reject')"
        )
        .await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn dedicated_cpu_needs_request_equal_to_limit(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let size: shepherd::crd::instance_size::InstanceSizeSpec = serde_json::from_value(serde_json::json!({
        "cpu": {"cores": 2, "dedicated": true}, "memory": {"mib": 2048}, "disk": {"minGiB": 10, "maxGiB": 100}})).unwrap();
    catalog::register_instance_size(&t.pool, "admin", "small", &size, "uid-size")
        .await
        .unwrap();
    let halved = Overrides {
        cpu_request_millis: Some(1000),
        ..Default::default()
    };
    let err = approve(&t.pool, &river(&t.pool), &bob(), ticket, "x", &halved)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid { rule, .. } if rule.contains("dedicated")),
        "{err}"
    );
    assert_eq!(count(&t.pool, "SELECT count(*) FROM vms").await, 0);
    let status: String = sqlx::query_scalar("SELECT status FROM tickets")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(
        status, "PendingApproval",
        "a refused approval changes nothing"
    );
}

#[sqlx::test(migrations = false)]
async fn a_size_needing_a_gpu_no_cluster_offers_is_refused_with_the_reason(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    // The clusters were probed without GPUs; the size now needs one.
    let size: shepherd::crd::instance_size::InstanceSizeSpec =
        serde_json::from_value(serde_json::json!({
        "cpu": {"cores": 2}, "memory": {"mib": 2048}, "disk": {"minGiB": 10, "maxGiB": 100},
        "gpus": [{"name": "gpu1", "deviceName": "nvidia.com/TU104GL_Tesla_T4"}]}))
        .unwrap();
    catalog::register_instance_size(&t.pool, "admin", "small", &size, "uid-size")
        .await
        .unwrap();
    let err = approve(
        &t.pool,
        &river(&t.pool),
        &bob(),
        ticket,
        "x",
        &Overrides::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid { rule, .. }
            if rule.contains("no cluster can take these VMs")
                && rule.contains("has no GPU device \"nvidia.com/TU104GL_Tesla_T4\"")),
        "{err}"
    );
    assert_eq!(count(&t.pool, "SELECT count(*) FROM vms").await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_storage_class_override_must_exist_on_the_cluster(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let missing = Overrides {
        cluster: Some("test-1".into()),
        storage_class: Some("gold".into()),
        ..Default::default()
    };
    let err = approve(&t.pool, &river(&t.pool), &bob(), ticket, "x", &missing)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid { field, rule }
            if field == "overrides.storageClass"
                && rule.contains("has no storage class \"gold\" (it has: fast, standard)")),
        "{err}"
    );
    let offered = Overrides {
        storage_class: Some("fast".into()),
        ..missing
    };
    let approved = approve(&t.pool, &river(&t.pool), &bob(), ticket, "x", &offered)
        .await
        .unwrap();
    assert_eq!(approved.vms.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn two_approvals_racing_for_the_last_slots_of_a_cluster_leave_one_winner(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let river = river(&t.pool);
    let mut first = pending(&t.pool, 1).await;
    let on_test_1 = Overrides {
        cluster: Some("test-1".into()),
        ..Default::default()
    };
    // Each round: two tickets that fit test-1 alone but not together.
    for (round, (a, b)) in [(1, 2), (3, 4), (5, 6)].into_iter().enumerate() {
        let ask = |count: i32| shepherd::app::requests::VmRequestInput {
            count,
            ..request(&format!("race-{count}"), "team-a")
        };
        if round > 0 {
            first = submit_vm_request(&t.pool, &river, &alice(), &ask(a))
                .await
                .unwrap()
                .ticket_id;
        }
        let second = submit_vm_request(&t.pool, &river, &alice(), &ask(b))
            .await
            .unwrap()
            .ticket_id;
        let before = count(&t.pool, "SELECT count(*) FROM vms WHERE deleted_at IS NULL").await;
        sqlx::query("UPDATE clusters SET max_vms = $1 WHERE name = 'test-1'")
            .bind((before + i64::from(b)) as i32)
            .execute(&t.pool)
            .await
            .unwrap();
        let approver = bob();
        let (x, y) = tokio::join!(
            approve(&t.pool, &river, &approver, first, "a", &on_test_1),
            approve(&t.pool, &river, &approver, second, "b", &on_test_1),
        );
        let after = count(&t.pool, "SELECT count(*) FROM vms WHERE deleted_at IS NULL").await;
        assert!(
            after - before <= i64::from(b),
            "round {round}: {} VMs added",
            after - before
        );
        let (wins, refusals): (Vec<_>, Vec<_>) = [x, y].into_iter().partition(Result::is_ok);
        assert_eq!(wins.len(), 1, "round {round}: {refusals:?}");
        let refusal = refusals.into_iter().next().unwrap().unwrap_err();
        assert!(
            refusal.to_string().contains("at most"),
            "round {round}: {refusal}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn the_preview_says_why_each_cluster_is_out(opts: PgPoolOptions, connect: PgConnectOptions) {
    use shepherd::domain::cluster_probe::{ProbeFailure, assess};
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let test_2: uuid::Uuid = sqlx::query_scalar("SELECT id FROM clusters WHERE name = 'test-2'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let refused = assess(Err(ProbeFailure::CredentialsRefused("401".into())));
    shepherd::app::cluster_probe::record(&t.pool, test_2, &refused)
        .await
        .unwrap();
    let preview = preview(&t.pool, &bob(), ticket, &Overrides::default())
        .await
        .unwrap();
    assert_eq!(preview.plan.eligible_clusters, ["test-1"]);
    // prod-1 is in another environment: not a reason worth listing.
    assert_eq!(
        preview.plan.not_eligible,
        ["cluster \"test-2\" is Unreachable, not Healthy"]
    );
}
