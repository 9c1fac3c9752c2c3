//! The use cases behind the CRD front door on real PostgreSQL: Systems, Services, VmRequests, the
//! catalog, and the permission rules of docs/architecture.md#identity-and-permissions as callers
//! meet them.

use crate::common::world::{alice, bind, carol, request, shop_with_web, world};
use crate::common::{count, setup};
use shepherd::app::AppError;
use shepherd::app::access::{Caller, Check, SystemRef, authorize};
use shepherd::app::catalog;
use shepherd::app::requests::{VmRequestInput, cancel_for_deleted_object, submit_vm_request};
use shepherd::app::systems::{check_service_creation, check_system_deletion, register_system};
use shepherd::crd::{Environment, cluster, vm_namespace, vm_template};
use shepherd::db;
use shepherd::domain::Subject;
use shepherd::domain::permissions::Permission;
use shepherd::domain::ticket::TicketStatus;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn creating_a_system_makes_the_creator_owner_once(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    let first = register_system(&t.pool, &alice(), "shop", "web shop", "uid-1")
        .await
        .unwrap();
    assert!(first.created);
    let again = register_system(&t.pool, &alice(), "shop", "web shop", "uid-1")
        .await
        .unwrap();
    assert_eq!((again.created, again.value.id), (false, first.value.id));
    let role: String = sqlx::query_scalar(
        "SELECT role FROM system_resource_bindings WHERE subject_name = 'alice'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(role, "owner");
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'system.create' AND actor = 'alice'"
        )
        .await,
        1
    );
    // Another object with a live name is refused; an invalid name never reaches the database.
    let err = register_system(&t.pool, &carol(), "shop", "", "uid-2")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("already exists")),
        "{err}"
    );
    let err = register_system(&t.pool, &carol(), "Shop", "", "uid-3")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid { field, .. } if field == "metadata.name"),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn services_need_a_role_on_their_system(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    let system = register_system(&t.pool, &alice(), "shop", "", "uid-sys")
        .await
        .unwrap()
        .value;
    let mut conn = t.pool.acquire().await.unwrap();
    // The owner may; carol, with no role on shop, does not even see it.
    check_service_creation(&mut conn, &alice(), "shop", "web")
        .await
        .unwrap();
    let err = check_service_creation(&mut conn, &carol(), "shop", "web")
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::NotFound { what: "system", .. }),
        "{err}"
    );
    // A viewer sees it but may not create.
    db::rbac::grant_system_role(
        &mut conn,
        system.id,
        &Subject::user("carol"),
        "viewer",
        "alice",
    )
    .await
    .unwrap();
    let err = check_service_creation(&mut conn, &carol(), "shop", "web")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Forbidden(m) if m.contains("viewer")),
        "{err}"
    );
    // A group's role counts for its members.
    db::rbac::grant_system_role(
        &mut conn,
        system.id,
        &Subject::group("dev"),
        "member",
        "alice",
    )
    .await
    .unwrap();
    check_service_creation(&mut conn, &Caller::new("dave", &["dev"]), "shop", "web")
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn deleting_a_system_with_services_is_refused_with_the_count(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    let mut conn = t.pool.acquire().await.unwrap();
    let err = check_system_deletion(&mut conn, &alice(), "shop")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("1 live service")),
        "{err}"
    );
    let err = shepherd::app::systems::remove_system(&t.pool, "alice", "uid-sys-shop")
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)));
    shepherd::app::systems::remove_service(&t.pool, "alice", "uid-svc-web")
        .await
        .unwrap();
    check_system_deletion(&mut conn, &alice(), "shop")
        .await
        .unwrap();
    shepherd::app::systems::remove_system(&t.pool, "alice", "uid-sys-shop")
        .await
        .unwrap();
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM systems WHERE deleted_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action IN ('system.delete', 'service.delete')"
        )
        .await,
        2
    );
}

#[sqlx::test(migrations = false)]
async fn a_vm_request_opens_one_pending_ticket_keyed_by_its_uid(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    let first = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r1", "team-a"),
    )
    .await
    .unwrap();
    assert_eq!(
        (first.status, first.environment, first.created),
        (TicketStatus::PendingApproval, Environment::Test, true)
    );
    let again = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r1", "team-a"),
    )
    .await
    .unwrap();
    assert_eq!((again.ticket_id, again.created), (first.ticket_id, false));
    assert_eq!(count(&t.pool, "SELECT count(*) FROM tickets").await, 1);
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'vm.request'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM domain_events WHERE event_type = 'vm.request'"
        )
        .await,
        1
    );
    // An identical request under another object is a duplicate while the first is pending.
    let err = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r2", "team-a"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains(&first.ticket_id.to_string())),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn prod_needs_a_binding_that_allows_prod(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    let system = shop_with_web(&t.pool, &alice()).await;
    let mut conn = t.pool.acquire().await.unwrap();
    db::rbac::grant_system_role(
        &mut conn,
        system.id,
        &Subject::user("carol"),
        "member",
        "alice",
    )
    .await
    .unwrap();
    let err = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r1", "shop-prod"),
    )
    .await
    .unwrap_err();
    let AppError::Forbidden(message) = err else {
        panic!("{err}")
    };
    assert_eq!(
        message,
        r#"user "alice" may not request VMs in environment "prod" for system "shop": no binding allows prod for vm:create"#
    );
    let accepted = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &carol(),
        &request("r2", "shop-prod"),
    )
    .await
    .unwrap();
    assert_eq!(accepted.environment, Environment::Prod);
}

#[sqlx::test(migrations = false)]
async fn requests_are_checked_against_the_catalog(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    let cases: Vec<(VmRequestInput, &str)> = vec![
        (
            VmRequestInput {
                disk_gib: Some(500),
                ..request("a", "team-a")
            },
            "spec.diskGib",
        ),
        (
            VmRequestInput {
                template: "nope".into(),
                ..request("b", "team-a")
            },
            "spec.template",
        ),
        (
            VmRequestInput {
                instance_size: "huge".into(),
                ..request("c", "team-a")
            },
            "spec.instanceSize",
        ),
        (
            VmRequestInput {
                target_namespace: "elsewhere".into(),
                ..request("d", "team-a")
            },
            "spec.targetNamespace",
        ),
        (
            VmRequestInput {
                count: 11,
                ..request("e", "team-a")
            },
            "spec.count",
        ),
    ];
    for (input, field) in cases {
        let err = submit_vm_request(&t.pool, &crate::common::river(&t.pool), &alice(), &input)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let err = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &VmRequestInput {
            service: "db".into(),
            ..request("f", "team-a")
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            AppError::NotFound {
                what: "service",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM tickets").await,
        0,
        "bad input changes nothing"
    );
}

#[sqlx::test(migrations = false)]
async fn deleting_a_pending_request_cancels_its_ticket_once(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r1", "team-a"),
    )
    .await
    .unwrap();
    assert_eq!(
        cancel_for_deleted_object(&t.pool, "alice", "r1", "VmRequest")
            .await
            .unwrap(),
        Some(TicketStatus::Cancelled)
    );
    assert_eq!(
        cancel_for_deleted_object(&t.pool, "alice", "r1", "VmRequest")
            .await
            .unwrap(),
        Some(TicketStatus::Cancelled)
    );
    assert_eq!(
        cancel_for_deleted_object(&t.pool, "alice", "never", "VmRequest")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.cancel'"
        )
        .await,
        1
    );
    let status: String = sqlx::query_scalar("SELECT status FROM tickets")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(status, "Cancelled");
}

#[sqlx::test(migrations = false)]
async fn an_exempt_operation_is_approved_in_the_same_transaction(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    crate::common::world::clusters(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    sqlx::query("UPDATE approval_policies SET requires_approval = false WHERE operation = 'create' AND environment = 'test'")
        .execute(&t.pool)
        .await
        .unwrap();
    let s = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &request("r1", "team-a"),
    )
    .await
    .unwrap();
    assert_eq!(s.status, TicketStatus::Approved);
    let approver: String = sqlx::query_scalar("SELECT approver FROM tickets")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(approver, shepherd::app::approvals::AUTO_APPROVER);
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.auto'"
        )
        .await,
        1
    );
    // Approved means the VMs exist, are placed, and their jobs are queued.
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM vms WHERE cluster_id IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'"
        )
        .await,
        2
    );
}

mod catalog_and_permissions;
