//! One lock order everywhere: a transaction appends its audit rows last, after every other
//! write, because `db::audit::append` locks the chain head that every writer shares. A use
//! case that appended first and then wrote (so locked) another row could deadlock with a
//! transaction that holds that row and then appends, which is what every use case does.
//!
//! Each test plays that second transaction by hand, deterministically: it locks a row the use
//! case writes, waits until the use case is blocked on it, then appends its own audit row
//! and commits. In the right order the use case holds no chain head lock while it waits, so
//! both finish; in the wrong order PostgreSQL finds the cycle and aborts one of them with
//! SQLSTATE 40P01 (deadlock_detected).

use crate::common::world::{alice, bob, clusters, pending, request, shop_with_web, world};
use crate::common::{river, setup};
use shepherd::app::AppError;
use shepherd::app::approvals::approve;
use shepherd::app::drift::record_scan;
use shepherd::app::requests::submit_vm_request;
use shepherd::app::seed::{self, SeedConfig};
use shepherd::crd::approval::Overrides;
use shepherd::db;
use shepherd::db::audit::AuditEntry;
use shepherd::domain::Subject;
use shepherd::domain::drift::Verdict;
use shepherd::domain::ticket::TicketStatus;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Whether `err` is PostgreSQL's deadlock_detected.
fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}

/// Waits until a session of this test's database waits for a lock (the use case, blocked on
/// the row `holder` locked). Fails when the use case finishes first: then it never touched
/// the row and the test would prove nothing.
async fn until_blocked<T>(pool: &PgPool, use_case: &JoinHandle<T>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            !use_case.is_finished(),
            "the use case finished without waiting for the locked row: the test no longer \
             makes it contend with the lock holder"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the use case never waited for the locked row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `use_case` against `holder`, a transaction that has locked a row the use case writes:
/// once the use case waits for that row, the holder appends an audit row and commits, as
/// every use case ends. Neither may fail; the use case's result is returned.
async fn contend<T: Send + 'static>(
    pool: &PgPool,
    mut holder: Transaction<'static, Postgres>,
    use_case: JoinHandle<Result<T, AppError>>,
    what: &str,
) -> T {
    until_blocked(pool, &use_case).await;
    let entry = AuditEntry::new("test.lock_holder", "test", "test", "holder", "holder");
    let held = match db::audit::append(&mut holder, &entry).await {
        Ok(_) => holder.commit().await,
        Err(e) => Err(e),
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), use_case)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish after the lock holder committed"))
        .unwrap();
    if let Err(e) = &held {
        assert!(
            !is_deadlock(e),
            "deadlock: {what} held the audit chain head while it waited for another row \
             (append audit rows last, right before commit): {e}"
        );
        panic!("the lock holder failed: {e}");
    }
    match outcome {
        Ok(value) => value,
        Err(AppError::Database(e)) if is_deadlock(&e) => panic!(
            "deadlock: {what} held the audit chain head while it waited for another row \
             (append audit rows last, right before commit): {e}"
        ),
        Err(e) => panic!("{what} failed: {e}"),
    }
}

/// A VmRequest the approval policy exempts is approved in its submitting transaction, which
/// locks the chosen cluster's row (as a person's approval does before its audit rows).
#[sqlx::test(migrations = false)]
async fn an_auto_approved_submission_appends_its_audit_rows_after_locking_the_cluster(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    clusters(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    sqlx::query(
        "UPDATE approval_policies SET requires_approval = false
         WHERE operation = 'create' AND environment = 'test'",
    )
    .execute(&t.pool)
    .await
    .unwrap();

    let mut holder = t.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM clusters FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (pool, river) = (t.pool.clone(), river(&t.pool));
    let use_case = tokio::spawn(async move {
        submit_vm_request(&pool, &river, &alice(), &request("auto", "team-a")).await
    });
    let submission = contend(&t.pool, holder, use_case, "an auto-approved submission").await;
    assert_eq!(submission.status, TicketStatus::Approved);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE resource_id = $1 OR parent_id = $1 ORDER BY id",
    )
    .bind(submission.ticket_id.to_string())
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["vm.request", "vm.create", "vm.create", "approval.auto"],
        "the audit rows keep their order"
    );
}

/// A drift scan writes its VMs' drift marks; a transaction holding one of those VMs (a
/// watcher recording an observation, say) appends its audit row while the scan waits.
#[sqlx::test(migrations = false)]
async fn a_drift_scan_appends_its_audit_rows_after_marking_its_vms(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    approve(
        &t.pool,
        &river(&t.pool),
        &bob(),
        ticket,
        "ok",
        &Overrides::default(),
    )
    .await
    .unwrap();
    let (vm_id, vm_name, cluster_id, cluster): (Uuid, String, Uuid, String) = sqlx::query_as(
        "SELECT v.id, v.name, c.id, c.name FROM vms v JOIN clusters c ON c.id = v.cluster_id",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();

    let mut holder = t.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM vms WHERE id = $1 FOR UPDATE")
        .bind(vm_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let pool = t.pool.clone();
    let verdict = Verdict {
        suspect: Some("too many VMs look missing".into()),
        drifted: vec![(vm_name, vec!["kubectl-edit".into()])],
        ..Verdict::default()
    };
    let use_case =
        tokio::spawn(async move { record_scan(&pool, cluster_id, &cluster, &verdict).await });
    assert!(contend(&t.pool, holder, use_case, "a drift scan").await);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE actor = 'system:cluster-probe' ORDER BY id",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(
        actions[actions.len() - 2..],
        ["cluster.suspect", "vm.drift"]
    );
}

/// Seeding revokes the bootstrap admins no longer configured; a transaction holding one of
/// their bindings appends its audit row while the seed waits, the seed having added a new
/// admin (audited) before.
#[sqlx::test(migrations = false)]
async fn seeding_appends_its_audit_rows_after_revoking_bindings(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let admins = |names: &[&str]| SeedConfig {
        bootstrap_admins: names.iter().map(|n| Subject::user(*n)).collect(),
    };
    seed::run(&t.pool, &admins(&["root-a", "root-b"]))
        .await
        .unwrap();

    let mut holder = t.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM role_bindings WHERE subject_name = 'root-b' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let pool = t.pool.clone();
    let use_case =
        tokio::spawn(async move { seed::run(&pool, &admins(&["root-a", "root-c"])).await });
    let report = contend(&t.pool, holder, use_case, "seeding").await;
    assert_eq!(report.admins_added, [Subject::user("root-c")]);
    assert_eq!(report.admins_revoked, [Subject::user("root-b")]);
}
