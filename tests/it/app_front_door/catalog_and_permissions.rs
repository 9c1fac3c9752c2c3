//! The catalog mirrors, and the permission rules as callers meet them.

use super::*;

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
        environment: Environment::Test,
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
        environment: Environment::Prod,
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
    let inv = crate::common::inventory(&t.pool).await;
    let ticket = crate::common::pending_ticket(&t.pool, &inv, "alice").await;
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
