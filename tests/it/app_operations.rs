//! Day-2 operations on PostgreSQL 18: tickets per (VM, operation), the approval policy
//! (auto-approval with its job in the same transaction), deciding operation tickets, and
//! the permission each operation needs.

use crate::common::world::{alice, bind, bob, pending};
use crate::common::{count, setup};
use shepherd::app::AppError;
use shepherd::app::access::Caller;
use shepherd::app::approvals::{approve, preview, reject};
use shepherd::app::operations::{VmOperationInput, submit_vm_operation};
use shepherd::crd::VmOperationSpec;
use shepherd::crd::approval::Overrides;
use shepherd::domain::Subject;
use shepherd::domain::ticket::{Operation, TicketStatus};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const VM: &str = "team-a-shop-web-01";

fn river(pool: &PgPool) -> riverqueue::Client {
    shepherd::jobs::inserter(pool).unwrap()
}

fn op(uid: &str, operation: Operation) -> VmOperationInput {
    VmOperationInput {
        uid: uid.into(),
        object_namespace: "apps".into(),
        object_name: format!("op-{uid}"),
        spec: VmOperationSpec {
            vm: VM.into(),
            operation,
            reason: "maintenance".into(),
            snapshot: None,
            confirm_name: None,
        },
    }
}

/// One approved VM in team-a (test), created by alice and approved by bob.
async fn one_vm(pool: &PgPool) {
    let ticket = pending(pool, 1).await;
    approve(
        pool,
        &river(pool),
        &bob(),
        ticket,
        "ok",
        &Overrides::default(),
    )
    .await
    .unwrap();
}

async fn jobs(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM river_job WHERE kind = 'vm_operate'",
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn test_power_operations_are_approved_by_policy_with_their_job(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    one_vm(&t.pool).await;
    let river = river(&t.pool);
    let stop = submit_vm_operation(&t.pool, &river, &alice(), &op("s1", Operation::Stop))
        .await
        .unwrap();
    assert_eq!(stop.status, TicketStatus::Approved);
    assert_eq!(jobs(&t.pool).await, 1);
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.auto'"
        )
        .await,
        1
    );
    // The same object again finds its ticket and writes nothing.
    let again = submit_vm_operation(&t.pool, &river, &alice(), &op("s1", Operation::Stop))
        .await
        .unwrap();
    assert_eq!((again.ticket_id, again.created), (stop.ticket_id, false));
    assert_eq!(jobs(&t.pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn an_operation_that_needs_approval_waits_and_is_decided_once(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    one_vm(&t.pool).await;
    let river = river(&t.pool);
    let clone = submit_vm_operation(&t.pool, &river, &alice(), &op("c1", Operation::Clone))
        .await
        .unwrap();
    assert_eq!(clone.status, TicketStatus::PendingApproval);
    assert_eq!(jobs(&t.pool).await, 0);

    // One pending ticket per (VM, operation).
    let second = submit_vm_operation(&t.pool, &river, &alice(), &op("c2", Operation::Clone)).await;
    assert!(
        matches!(&second, Err(AppError::Conflict(m)) if m.contains("pending clone")),
        "{second:?}"
    );

    // Nothing to preview or override for an operation; the requester cannot decide it.
    let previewed = preview(&t.pool, &bob(), clone.ticket_id, &Overrides::default()).await;
    assert!(
        matches!(previewed, Err(AppError::Invalid { .. })),
        "{previewed:?}"
    );
    let overridden = Overrides {
        cluster: Some("test-2".into()),
        ..Default::default()
    };
    let refused = approve(&t.pool, &river, &bob(), clone.ticket_id, "ok", &overridden).await;
    assert!(
        matches!(&refused, Err(AppError::Invalid { field, .. }) if field == "overrides"),
        "{refused:?}"
    );
    let own = approve(
        &t.pool,
        &river,
        &alice(),
        clone.ticket_id,
        "mine",
        &Overrides::default(),
    )
    .await;
    assert!(matches!(own, Err(AppError::Forbidden(_))), "{own:?}");

    let approved = approve(
        &t.pool,
        &river,
        &bob(),
        clone.ticket_id,
        "ok",
        &Overrides::default(),
    )
    .await
    .unwrap();
    assert_eq!(approved.vms.len(), 1);
    assert_eq!(approved.vms[0].name, VM);
    assert_eq!(jobs(&t.pool).await, 1);
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM vms").await,
        1,
        "the clone is made by its worker, not at approval"
    );
    let late = reject(&t.pool, &bob(), clone.ticket_id, "late").await;
    assert!(matches!(late, Err(AppError::Conflict(_))), "{late:?}");

    // After the decision a new clone ticket may be opened; rejecting it makes no job.
    let next = submit_vm_operation(&t.pool, &river, &alice(), &op("c3", Operation::Clone))
        .await
        .unwrap();
    reject(&t.pool, &bob(), next.ticket_id, "not now")
        .await
        .unwrap();
    assert_eq!(jobs(&t.pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn each_operation_needs_its_permission(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    one_vm(&t.pool).await;
    let river = river(&t.pool);
    // Operators may operate but not delete.
    let delete = submit_vm_operation(&t.pool, &river, &alice(), &op("d1", Operation::Delete)).await;
    assert!(
        matches!(&delete, Err(AppError::Forbidden(m)) if m.contains("vm:delete")),
        "{delete:?}"
    );
    let shop: uuid::Uuid = sqlx::query_scalar("SELECT id FROM systems WHERE name = 'shop'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    bind(
        &t.pool,
        Subject::user("alice"),
        "system-admin",
        Some(shop),
        &["test"],
    )
    .await;
    let delete = submit_vm_operation(&t.pool, &river, &alice(), &op("d1", Operation::Delete))
        .await
        .unwrap();
    assert_eq!(delete.status, TicketStatus::PendingApproval);

    // Someone without a role on the System does not see the VM at all.
    let stranger = Caller::new("mallory", &[]);
    let hidden = submit_vm_operation(&t.pool, &river, &stranger, &op("x1", Operation::Stop)).await;
    assert!(
        matches!(hidden, Err(AppError::NotFound { .. })),
        "{hidden:?}"
    );
    let mut unknown = op("x2", Operation::Stop);
    unknown.spec.vm = "no-such-vm".into();
    let missing = submit_vm_operation(&t.pool, &river, &alice(), &unknown).await;
    assert!(
        matches!(missing, Err(AppError::NotFound { what: "vm", .. })),
        "{missing:?}"
    );
    assert_eq!(jobs(&t.pool).await, 0);
}
