//! A small platform for use-case tests: roles, catalog, users and a System with a Service.

use shepherd::app::access::{Caller, SystemRef};
use shepherd::app::requests::VmRequestInput;
use shepherd::app::requests::submit_vm_request;
use shepherd::app::systems::{register_service, register_system};
use shepherd::app::{catalog, seed};
use shepherd::crd::cluster;
use shepherd::crd::{Environment, instance_size, vm_namespace, vm_template};
use shepherd::db;
use shepherd::db::rbac::NewRoleBinding;
use shepherd::domain::Subject;
use sqlx::PgPool;
use uuid::Uuid;

pub async fn bind(
    pool: &PgPool,
    subject: Subject,
    role: &str,
    system: Option<uuid::Uuid>,
    envs: &[&str],
) {
    let envs: Vec<String> = envs.iter().map(|e| e.to_string()).collect();
    let mut conn = pool.acquire().await.unwrap();
    db::rbac::insert_role_binding(
        &mut conn,
        &NewRoleBinding {
            subject: &subject,
            role,
            scope_system_id: system,
            allowed_environments: &envs,
            source: "api",
            created_by: "test",
        },
    )
    .await
    .unwrap()
    .expect("new binding");
}

/// The group `platform-admins` (root's, in the REST harness) bound platform-admin for both
/// environments.
pub async fn platform_admins(pool: &PgPool) {
    bind(
        pool,
        Subject::group("platform-admins"),
        "platform-admin",
        None,
        &["test", "prod"],
    )
    .await;
}

pub fn alice() -> Caller {
    Caller::new("alice", &["dev"])
}
pub fn carol() -> Caller {
    Caller::new("carol", &[])
}

/// Seeds roles and the catalog: namespaces team-a (test) and shop-prod (prod), a template,
/// an instance size with disk 10..=100 GiB; alice is an operator for test, carol for both.
pub async fn world(pool: &PgPool) {
    seed::run(pool, &seed::SeedConfig::default()).await.unwrap();
    for (name, env) in [
        ("team-a", Environment::Test),
        ("shop-prod", Environment::Prod),
    ] {
        let spec = vm_namespace::VmNamespaceSpec {
            environment: env,
            description: String::new(),
        };
        catalog::register_namespace(pool, "admin", name, &spec, &format!("uid-ns-{name}"))
            .await
            .unwrap();
    }
    let template: vm_template::VmTemplateSpec = serde_json::from_value(serde_json::json!({
        "image": {"containerDisk": "quay.io/containerdisks/fedora:40"}}))
    .unwrap();
    catalog::register_template(pool, "admin", "fedora", &template, "uid-tpl")
        .await
        .unwrap();
    let size: instance_size::InstanceSizeSpec = serde_json::from_value(serde_json::json!({
        "cpu": {"cores": 2}, "memory": {"mib": 2048}, "disk": {"minGiB": 10, "maxGiB": 100}}))
    .unwrap();
    catalog::register_instance_size(pool, "admin", "small", &size, "uid-size")
        .await
        .unwrap();
    bind(pool, Subject::user("alice"), "operator", None, &["test"]).await;
    bind(
        pool,
        Subject::user("carol"),
        "operator",
        None,
        &["test", "prod"],
    )
    .await;
}

pub fn request(uid: &str, target_namespace: &str) -> VmRequestInput {
    VmRequestInput {
        uid: uid.into(),
        object_namespace: "apps".into(),
        object_name: format!("req-{uid}"),
        system: "shop".into(),
        service: "web".into(),
        target_namespace: target_namespace.into(),
        template: "fedora".into(),
        instance_size: "small".into(),
        count: 2,
        disk_gib: None,
        reason: "load test".into(),
    }
}

pub async fn shop_with_web(pool: &PgPool, owner: &Caller) -> SystemRef {
    let system = register_system(pool, owner, "shop", "", "uid-sys-shop")
        .await
        .unwrap()
        .value;
    register_service(pool, owner, "shop", "web", "", "uid-svc-web")
        .await
        .unwrap();
    system
}

pub fn bob() -> Caller {
    Caller::new("bob", &["approvers"])
}

/// What the database benchmarks work on: [`world_with_approvers`] and alice's System
/// `shop` with Services `web0`..`web<services - 1>`.
pub async fn shop_with_services(pool: &PgPool, services: usize) {
    world_with_approvers(pool).await;
    let owner = alice();
    register_system(pool, &owner, "shop", "", "uid-sys-shop")
        .await
        .unwrap();
    for n in 0..services {
        let name = format!("web{n}");
        register_service(pool, &owner, "shop", &name, "", &format!("uid-svc-{name}"))
            .await
            .unwrap();
    }
}

pub async fn clusters(pool: &PgPool) {
    for (name, env, weight) in [
        ("test-1", "test", 100),
        ("test-2", "test", 50),
        ("prod-1", "prod", 100),
    ] {
        let spec: cluster::ClusterSpec = serde_json::from_value(serde_json::json!({
            "environment": env, "schedulingWeight": weight,
            "kubeconfigSecretRef": {"namespace": "kubevirt-shepherd", "name": format!("{name}-kubeconfig")}}))
        .unwrap();
        catalog::register_cluster(pool, "admin", name, &spec, &format!("uid-{name}"))
            .await
            .unwrap();
        crate::common::probed_healthy(pool, name).await;
    }
}

/// [`world`] and [`clusters`], with the group of bob approving for test and prod.
pub async fn world_with_approvers(pool: &PgPool) {
    world(pool).await;
    clusters(pool).await;
    bind(
        pool,
        Subject::group("approvers"),
        "approver",
        None,
        &["test", "prod"],
    )
    .await;
}

/// Clusters test-1 (weight 100), test-2 (50) and prod-1; then alice asks for `count` VMs
/// in team-a (test); the group of bob is an approver for test and prod.
pub async fn pending(pool: &PgPool, count: i32) -> Uuid {
    world_with_approvers(pool).await;
    shop_with_web(pool, &alice()).await;
    let input = shepherd::app::requests::VmRequestInput {
        count,
        ..request("r1", "team-a")
    };
    submit_vm_request(pool, &crate::common::river(pool), &alice(), &input)
        .await
        .unwrap()
        .ticket_id
}
