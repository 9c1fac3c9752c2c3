//! Races on real PostgreSQL: deciding one ticket, allocating instance indexes, and River
//! jobs inserted in the same transaction as the domain write.

use crate::common::{count, inventory, new_ticket, pending_ticket, setup};
use serde_json::json;
use shepherd::app::AppError;
use shepherd::app::job_args::ProvisionVm;
use shepherd::app::tickets::{Verdict, decide};
use shepherd::db;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::BTreeSet;
use std::time::Duration;

#[sqlx::test(migrations = false)]
async fn second_of_two_overlapping_decisions_gets_a_conflict(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let ticket = pending_ticket(&t.pool, &inv, "alice").await;

    // Transaction 1 decides and holds its lock, uncommitted.
    let mut first = t.pool.begin().await.unwrap();
    let won = db::tickets::decide(
        &mut first,
        ticket,
        "PendingApproval",
        "Approved",
        "bob",
        "ok",
    )
    .await
    .unwrap();
    assert!(won.is_some());
    // Transaction 2 decides the same ticket: it must wait for transaction 1...
    let pool = t.pool.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let r = db::tickets::decide(
            &mut tx,
            ticket,
            "PendingApproval",
            "Rejected",
            "carol",
            "no",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second decision must block on the first one's row lock"
    );
    first.commit().await.unwrap();
    // ...and then find the ticket decided.
    assert!(
        second.await.unwrap().is_none(),
        "the second decision must lose"
    );
    let row = db::tickets::get(&mut t.pool.acquire().await.unwrap(), ticket)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.approver.as_deref()),
        ("Approved", Some("bob"))
    );
}

#[sqlx::test(migrations = false)]
async fn twenty_concurrent_decisions_have_exactly_one_winner(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let ticket = pending_ticket(&t.pool, &inv, "alice").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (pool, barrier) = (t.pool.clone(), barrier.clone());
            tokio::spawn(async move {
                let verdict = if i % 2 == 0 {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                };
                barrier.wait().await;
                decide(&pool, ticket, verdict, &format!("approver{i}"), "race").await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(row) => winners.push(row),
            Err(AppError::Conflict(msg)) => assert!(msg.contains(&ticket.to_string()), "{msg}"),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one decision wins");
    let winner = &winners[0];
    let stored = db::tickets::get(&mut t.pool.acquire().await.unwrap(), ticket)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&stored.status, &stored.approver),
        (&winner.status, &winner.approver)
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action LIKE 'approval.%'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM domain_events").await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn requester_cannot_decide_and_terminal_tickets_refuse(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let ticket = pending_ticket(&t.pool, &inv, "alice").await;
    let err = decide(&t.pool, ticket, Verdict::Approve, "alice", "mine")
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err}");
    decide(&t.pool, ticket, Verdict::Reject, "bob", "not now")
        .await
        .unwrap();
    let err = decide(
        &t.pool,
        ticket,
        Verdict::Approve,
        "carol",
        "changed my mind",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.ends_with("is already Rejected (by bob)")),
        "{err}"
    );
    let err = decide(&t.pool, uuid::Uuid::new_v4(), Verdict::Approve, "bob", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound { .. }), "{err}");
}

#[sqlx::test(migrations = false)]
async fn concurrent_index_allocations_are_unique_and_never_reused(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let pool = t.pool.clone();
            let service = inv.service_id;
            tokio::spawn(async move {
                let n = 1 + i % 3;
                let mut tx = pool.begin().await.unwrap();
                let first = db::services::allocate_instance_indexes(&mut tx, service, n)
                    .await
                    .unwrap()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.commit().await.unwrap();
                (first..first + n).collect::<Vec<i32>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let total: i32 = (0..20).map(|i| 1 + i % 3).sum();
    let unique: BTreeSet<i32> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "duplicate index handed out: {all:?}"
    );
    assert_eq!(
        unique,
        (1..=total).collect::<BTreeSet<_>>(),
        "committed allocations are consecutive"
    );

    // A rolled-back allocation leaves no trace; a committed one is never handed out again.
    let mut tx = t.pool.begin().await.unwrap();
    db::services::allocate_instance_indexes(&mut tx, inv.service_id, 5)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut conn = t.pool.acquire().await.unwrap();
    let next = db::services::allocate_instance_indexes(&mut conn, inv.service_id, 1)
        .await
        .unwrap();
    assert_eq!(next, Some(total + 1));
    let err = sqlx::query("UPDATE services SET next_instance_index = 1 WHERE id = $1")
        .bind(inv.service_id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only grows"), "{err}");
}

async fn river_jobs(pool: &sqlx::PgPool) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as("SELECT kind, args FROM river_job ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn job_inserted_with_a_ticket_vanishes_on_rollback_and_lands_on_commit(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let river = shepherd::jobs::inserter(&t.pool).unwrap();
    let request = json!({"count": 1});
    let vm_id = uuid::Uuid::new_v4();

    for commit in [false, true] {
        let mut tx = riverqueue::database::begin_postgres(&t.pool).await.unwrap();
        db::tickets::insert(&mut tx, &new_ticket(&inv, "alice", &request))
            .await
            .unwrap();
        river
            .insert(ProvisionVm { vm_id })
            .tx(&mut tx)
            .await
            .unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
            assert_eq!(count(&t.pool, "SELECT count(*) FROM tickets").await, 0);
            assert!(
                river_jobs(&t.pool).await.is_empty(),
                "the job must vanish with the ticket"
            );
        }
    }
    assert_eq!(count(&t.pool, "SELECT count(*) FROM tickets").await, 1);
    let jobs = river_jobs(&t.pool).await;
    assert_eq!(
        jobs,
        vec![("vm_provision".to_string(), json!({"vm_id": vm_id}))],
        "ids only"
    );
    let queue: String = sqlx::query_scalar("SELECT queue FROM river_job")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(queue, shepherd::jobs::VM_QUEUE);
}

/// A watch event that changes nothing takes no lock, so it does not wait behind a
/// transaction holding the VM's ticket (the VMs of one ticket used to take turns on the
/// ticket's row for every event, found by `make bench-provisioning`).
#[sqlx::test(migrations = false)]
async fn a_watch_event_that_changes_nothing_does_not_wait_for_the_tickets_lock(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use crate::common::world::{bob, pending};
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    shepherd::app::approvals::approve(
        &t.pool,
        &crate::common::river(&t.pool),
        &bob(),
        ticket,
        "ok",
        &Default::default(),
    )
    .await
    .unwrap();
    let (cluster_id, name): (uuid::Uuid, String) =
        sqlx::query_as("SELECT cluster_id, name FROM vms")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    let mut holder = t.pool.begin().await.unwrap();
    db::tickets::lock_status(&mut holder, ticket).await.unwrap();

    // The VM is still Creating and its cluster has no such VirtualMachine yet: nothing to
    // record. Waiting for the lock would last until the holder ends (a liveness bound).
    let recorded = tokio::time::timeout(
        Duration::from_secs(10),
        shepherd::app::provisioning::record_observation(&t.pool, cluster_id, &name, None),
    )
    .await
    .expect("the event waited for the ticket's lock")
    .unwrap();
    assert!(!recorded);
    holder.rollback().await.unwrap();
}
