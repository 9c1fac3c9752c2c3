//! The use cases behind the CRD front door on real PostgreSQL: Systems, Services,
//! VmRequests, the catalog, and the permission rules of DESIGN §3 as callers meet them.

mod common;

use common::world::{alice, bind, carol, request, shop_with_web, world};
use common::{count, setup};
use shepherd::api::{EnvironmentName, cluster, vm_namespace, vm_template};
use shepherd::app::AppError;
use shepherd::app::access::{Caller, Check, SystemRef, authorize};
use shepherd::app::catalog;
use shepherd::app::requests::{VmRequestInput, cancel_for_deleted_object, submit_vm_request};
use shepherd::app::systems::{check_service_creation, check_system_deletion, register_system};
use shepherd::db;
use shepherd::domain::permissions::Permission;
use shepherd::domain::ticket::TicketStatus;
use shepherd::domain::{Environment, Subject};
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
    let first = submit_vm_request(&t.pool, &alice(), &request("r1", "team-a"))
        .await
        .unwrap();
    assert_eq!(
        (first.status, first.environment, first.created),
        (TicketStatus::PendingApproval, Environment::Test, true)
    );
    let again = submit_vm_request(&t.pool, &alice(), &request("r1", "team-a"))
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
    let err = submit_vm_request(&t.pool, &alice(), &request("r2", "team-a"))
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
    let err = submit_vm_request(&t.pool, &alice(), &request("r1", "shop-prod"))
        .await
        .unwrap_err();
    let AppError::Forbidden(message) = err else {
        panic!("{err}")
    };
    assert_eq!(
        message,
        r#"user "alice" may not request VMs in environment "prod" for system "shop": no binding allows prod for vm:create"#
    );
    let accepted = submit_vm_request(&t.pool, &carol(), &request("r2", "shop-prod"))
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
        let err = submit_vm_request(&t.pool, &alice(), &input)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let err = submit_vm_request(
        &t.pool,
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
    submit_vm_request(&t.pool, &alice(), &request("r1", "team-a"))
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
    common::world::clusters(&t.pool).await;
    shop_with_web(&t.pool, &alice()).await;
    sqlx::query("UPDATE approval_policies SET requires_approval = false WHERE operation = 'create' AND environment = 'test'")
        .execute(&t.pool)
        .await
        .unwrap();
    let s = submit_vm_request(&t.pool, &alice(), &request("r1", "team-a"))
        .await
        .unwrap();
    assert_eq!(s.status, TicketStatus::Approved);
    let approver: String = sqlx::query_scalar("SELECT approver FROM tickets")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(approver, shepherd::app::requests::AUTO_APPROVER);
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

#[sqlx::test(migrations = false)]
async fn catalog_mirrors_converge_and_keep_environments(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    let audit_before = count(&t.pool, "SELECT count(*) FROM audit_log").await;
    // Re-applying the same objects changes nothing.
    let ns = vm_namespace::VmNamespaceSpec {
        environment: EnvironmentName::Test,
        description: String::new(),
    };
    assert!(
        !catalog::register_namespace(&t.pool, "admin", "team-a", &ns, "uid-ns-team-a")
            .await
            .unwrap()
    );
    let template: vm_template::VmTemplateSpec = serde_json::from_value(serde_json::json!({
        "image": {"containerDisk": "quay.io/containerdisks/fedora:40"}}))
    .unwrap();
    assert_eq!(
        catalog::register_template(&t.pool, "admin", "fedora", &template, "uid-tpl")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM audit_log").await,
        audit_before
    );
    // A changed template is a new version; the old one stays.
    let changed = vm_template::VmTemplateSpec {
        cloud_init: Some("#cloud-config\n".into()),
        ..template
    };
    assert_eq!(
        catalog::register_template(&t.pool, "admin", "fedora", &changed, "uid-tpl")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM template_versions").await,
        2
    );
    // Environments never cross.
    let prod = vm_namespace::VmNamespaceSpec {
        environment: EnvironmentName::Prod,
        description: String::new(),
    };
    let err = catalog::register_namespace(&t.pool, "admin", "team-a", &prod, "uid-ns-team-a")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("cannot change")),
        "{err}"
    );
    let c = |env| -> cluster::ClusterSpec {
        serde_json::from_value(serde_json::json!({"environment": env,
            "kubeconfigSecretRef": {"namespace": "shepherd", "name": "c1-kubeconfig"}}))
        .unwrap()
    };
    assert!(
        catalog::register_cluster(&t.pool, "admin", "c1", &c("test"), "uid-c1")
            .await
            .unwrap()
    );
    assert!(
        !catalog::register_cluster(&t.pool, "admin", "c1", &c("test"), "uid-c1")
            .await
            .unwrap()
    );
    // Without VMs the environment may still be corrected...
    assert!(
        catalog::register_cluster(&t.pool, "admin", "c1", &c("prod"), "uid-c1")
            .await
            .unwrap()
    );
    // ...but not once it holds one.
    let inv = common::inventory(&t.pool).await;
    let ticket = common::pending_ticket(&t.pool, &inv, "alice").await;
    sqlx::query("INSERT INTO vms (name, ticket_id, service_id, namespace_id, cluster_id, instance_index, created_by)
                 SELECT 'v-01', $1, $2, $3, id, 1, 'alice' FROM clusters WHERE name = 'c1'")
        .bind(ticket)
        .bind(inv.service_id)
        .bind(inv.namespace_id)
        .execute(&t.pool)
        .await
        .unwrap();
    let err = catalog::register_cluster(&t.pool, "admin", "c1", &c("test"), "uid-c1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("holds 1 VM")),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn permission_rules_allow_and_deny(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    world(&t.pool).await;
    let shop = shop_with_web(&t.pool, &alice()).await;
    let crm = register_system(&t.pool, &carol(), "crm", "", "uid-crm")
        .await
        .unwrap()
        .value;
    bind(
        &t.pool,
        Subject::user("root-admin"),
        "platform-admin",
        None,
        &["test", "prod"],
    )
    .await;
    bind(
        &t.pool,
        Subject::user("test-admin"),
        "platform-admin",
        None,
        &["test"],
    )
    .await;
    bind(
        &t.pool,
        Subject::user("shop-admin"),
        "system-admin",
        Some(shop.id),
        &["test", "prod"],
    )
    .await;
    bind(
        &t.pool,
        Subject::group("approvers"),
        "approver",
        None,
        &["test", "prod"],
    )
    .await;
    let mut conn = t.pool.acquire().await.unwrap();
    fn check(
        permission: Permission,
        system: Option<&SystemRef>,
        environment: Option<Environment>,
    ) -> Check<'_> {
        Check {
            permission,
            action: "act",
            system,
            environment,
        }
    }
    let test = Some(Environment::Test);
    let prod = Some(Environment::Prod);
    type Case<'a> = (Caller, Check<'a>, &'static str);
    let cases: Vec<Case> = vec![
        // platform:admin allows everything, in the environments its binding allows.
        (
            Caller::new("root-admin", &[]),
            check(Permission::VmDelete, Some(&crm), prod),
            "allow",
        ),
        (
            Caller::new("root-admin", &[]),
            check(Permission::ClusterManage, None, None),
            "allow",
        ),
        (
            Caller::new("test-admin", &[]),
            check(Permission::VmDelete, Some(&crm), prod),
            "forbidden",
        ),
        (
            Caller::new("test-admin", &[]),
            check(Permission::VmDelete, Some(&crm), test),
            "allow",
        ),
        // Platform permissions need a binding that carries them.
        (
            alice(),
            check(Permission::ClusterManage, None, None),
            "forbidden",
        ),
        // Global vs System scope: shop-admin's binding covers shop only.
        (
            Caller::new("shop-admin", &[]),
            check(Permission::VmDelete, Some(&shop), prod),
            "allow",
        ),
        (
            Caller::new("shop-admin", &[]),
            check(Permission::VmDelete, Some(&crm), test),
            "invisible",
        ),
        // Allowed environments.
        (
            alice(),
            check(Permission::VmCreate, Some(&shop), test),
            "allow",
        ),
        (
            alice(),
            check(Permission::VmCreate, Some(&shop), prod),
            "forbidden",
        ),
        // Resource roles: the owner may delete the System; without a role it is invisible.
        (
            alice(),
            check(Permission::SystemDelete, Some(&shop), None),
            "allow",
        ),
        (
            alice(),
            check(Permission::SystemRead, Some(&crm), None),
            "invisible",
        ),
        // Resource roles are inherited by what is under the System (VM actions on shop).
        (
            alice(),
            check(Permission::VmOperate, Some(&shop), test),
            "allow",
        ),
        // An operator role without vm:delete cannot delete VMs, even as owner.
        (
            alice(),
            check(Permission::VmDelete, Some(&shop), test),
            "forbidden",
        ),
        // Approvers decide across Systems, in their environments.
        (
            Caller::new("bob", &["approvers"]),
            check(Permission::ApprovalApprove, Some(&crm), prod),
            "allow",
        ),
        (
            Caller::new("bob", &[]),
            check(Permission::ApprovalApprove, Some(&crm), prod),
            "invisible",
        ),
    ];
    for (caller, c, want) in cases {
        let got = match authorize(&mut conn, &caller, &c).await {
            Ok(()) => "allow",
            Err(AppError::Forbidden(_)) => "forbidden",
            Err(AppError::NotFound { .. }) => "invisible",
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            got,
            want,
            "{} {:?} on {:?} in {:?}",
            caller.username,
            c.permission,
            c.system.map(|s| &s.name),
            c.environment
        );
    }
}
