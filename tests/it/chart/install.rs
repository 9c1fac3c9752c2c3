//! `helm install`, `helm upgrade` and `helm uninstall` of the chart with the real Helm 4 into
//! the simulated management cluster (RBAC enforced), and the installed Deployment's process,
//! started with its exact arguments and environment as the chart's ServiceAccount, taking a
//! request through the front door to VMs running on the target cluster.

use super::{CHART, FULLNAME, Installation, NAMESPACE, RELEASE, VALUES};
use crate::common::TestDb;
use serde_json::{Value, json};
use shepherd::db::rbac::NewRoleBinding;
use shepherd::domain::Subject;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The end-to-end catalog, and the Cluster target-1 whose kubeconfig Secret `prepare` made.
fn catalog() -> String {
    format!(
        "{}---\napiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Cluster\nmetadata: {{name: target-1}}\n\
         spec: {{environment: test, kubeconfigSecretRef: {{namespace: {NAMESPACE}, name: target-1-kubeconfig}}}}\n",
        crate::common::e2e::CATALOG
    )
}

const REQUEST: &str = r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmRequest
metadata: {name: web-1, namespace: apps}
spec: {system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: 1, reason: "first request"}
"#;

/// An empty database: the chart's migration Job creates the schema.
pub async fn empty_database(opts: PgPoolOptions, connect: PgConnectOptions) -> TestDb {
    let pool = opts
        .max_connections(5)
        .connect_with(connect.clone())
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by sqlx::test");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    TestDb {
        pool,
        url: format!("{prefix}/{}", connect.get_database().unwrap()),
    }
}

pub async fn bind(db: &TestDb, subject: Subject, role: &str) {
    let mut conn = db.pool.acquire().await.unwrap();
    shepherd::db::rbac::insert_role_binding(
        &mut conn,
        &NewRoleBinding {
            subject: &subject,
            role,
            scope_system_id: None,
            allowed_environments: &["test".to_string()],
            source: "api",
            created_by: "test",
        },
    )
    .await
    .unwrap();
}

fn phase(o: &Value) -> Option<&str> {
    o.pointer("/status/phase").and_then(Value::as_str)
}

fn condition(o: &Value, kind: &str) -> Option<String> {
    o.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

#[sqlx::test(migrations = false)]
async fn helm_installs_the_chart_and_its_deployment_runs_the_front_door_under_rbac(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let i = Installation::prepare(empty_database(opts, connect).await).await;
    let notes = i.install(&[]).await;
    // The notes tell the next steps: a target cluster, people's RBAC, the first request.
    for step in [
        "Register a target cluster",
        "kubevirt-shepherd-user",
        "The first request",
    ] {
        assert!(
            notes.contains(step),
            "the notes do not say {step:?}:\n{notes}"
        );
    }

    // What helm installed: the CRDs first, then the release's objects.
    for crd in ["vmrequests", "approvals", "clusters"] {
        assert!(
            i.get("crd", None, &format!("{crd}.shepherd.kv-shepherd.io"))
                .await
                .is_some(),
            "CRD {crd}"
        );
    }
    let deployment = i
        .get("deployment", Some(NAMESPACE), FULLNAME)
        .await
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], json!(2));
    let (ok, listed, err) = i.helm_with_hook(&["list", "-o", "json"], false).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["status"], json!("deployed"), "{listed}");
    let tls_before = i
        .get("secret", Some(NAMESPACE), &format!("{FULLNAME}-tls"))
        .await
        .unwrap();
    let key_before = i
        .get("secret", Some(NAMESPACE), &format!("{FULLNAME}-identity"))
        .await
        .unwrap();

    // The migration Job migrated and seeded: the bootstrap admin from the values is there.
    let admins: Vec<String> =
        sqlx::query_scalar("SELECT subject_name FROM role_bindings WHERE source = 'config'")
            .fetch_all(&i.db.pool)
            .await
            .unwrap();
    assert_eq!(admins, ["admin"]);

    // Two replicas of the Deployment's pod, as its ServiceAccount, against RBAC.
    let first = i
        .start_replica(&format!("{FULLNAME}-5d8f7-a1b2c"))
        .await
        .unwrap();
    let second = i
        .start_replica(&format!("{FULLNAME}-5d8f7-d3e4f"))
        .await
        .unwrap();

    // People: Kubernetes RBAC from the chart's user ClusterRole, Shepherd's RBAC in PostgreSQL.
    i.bind_users(&["alice", "bob"]).await;
    bind(&i.db, Subject::user("alice"), "operator").await;
    bind(&i.db, Subject::user("bob"), "approver").await;
    // Without the ClusterRole, mallory-like users are refused by the API server itself.
    let (ok, _, err) = i
        .kubectl("alice", &["apply", "-f", "-"], Some(&catalog()))
        .await;
    assert!(
        !ok && err.contains("forbidden"),
        "alice may not write the catalog: {err}"
    );

    i.kubectl_ok("admin", &["apply", "-f", "-"], Some(&catalog()))
        .await;
    let cluster = i
        .wait_for(
            "clusters.shepherd.kv-shepherd.io",
            None,
            "target-1",
            90,
            |o| condition(o, "Healthy").as_deref() == Some("True"),
        )
        .await;
    assert_eq!(
        condition(&cluster, "CredentialsReady").as_deref(),
        Some("True")
    );

    i.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(crate::common::e2e::SHOP),
    )
    .await;
    i.kubectl_ok("alice", &["apply", "-f", "-"], Some(REQUEST))
        .await;
    let request = i
        .wait_for("vmrequests", Some("apps"), "web-1", 60, |o| {
            phase(o) == Some("PendingApproval")
        })
        .await;
    assert_eq!(request.pointer("/status/requester"), Some(&json!("alice")));
    let ticket = request
        .pointer("/status/ticketId")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();

    // bob approves through the REST API (TokenReview as the ServiceAccount).
    let (code, out, err) = i.plugin(&first, "bob", &["approve", &ticket]).await;
    assert_eq!(code, 0, "{out}{err}");
    let request = i
        .wait_for("vmrequests", Some("apps"), "web-1", 120, |o| {
            matches!(
                phase(o),
                Some("Succeeded" | "Failed" | "PartiallySucceeded")
            )
        })
        .await;
    assert_eq!(phase(&request), Some("Succeeded"), "{request}");
    let target = i.target.kube_client("admin").unwrap();
    let vms: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        target,
        "team-a",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "kubevirt.io",
            "v1",
            "VirtualMachine",
        )),
    );
    let listed = vms.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // Events on the request, and the audit anchor in the release namespace.
    let events = i
        .kubectl_ok(
            "admin",
            &["get", "events.events.k8s.io", "-n", "apps", "-o", "json"],
            None,
        )
        .await;
    assert!(events.contains("web-1"), "no Event names web-1: {events}");
    i.wait_for(
        "configmap",
        Some(NAMESPACE),
        "kubevirt-shepherd-audit-anchor",
        30,
        |_| true,
    )
    .await;
    let log = format!("{}{}", first.log_text(), second.log_text());
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a call was refused:\n{log}"
    );
    first.stop().await;
    second.stop().await;

    // helm upgrade with a changed value: the Job migrates again, the Deployment changes, the
    // serving pair and the identity key are kept.
    let mut args = vec!["upgrade", RELEASE, CHART, "--timeout", "3m"];
    args.extend_from_slice(VALUES);
    args.extend_from_slice(&["--set", "workers.concurrency=3"]);
    let (ok, out, err) = i.helm_with_hook(&args, true).await;
    assert!(ok, "helm upgrade failed: {err}{out}");
    let deployment = i
        .get("deployment", Some(NAMESPACE), FULLNAME)
        .await
        .unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "SHEPHERD_WORKER_CONCURRENCY", "value": "3"})),
        "{env}"
    );
    let tls_after = i
        .get("secret", Some(NAMESPACE), &format!("{FULLNAME}-tls"))
        .await
        .unwrap();
    assert_eq!(
        tls_after["data"], tls_before["data"],
        "the serving pair changed on upgrade"
    );
    let key_after = i
        .get("secret", Some(NAMESPACE), &format!("{FULLNAME}-identity"))
        .await
        .unwrap();
    assert_eq!(
        key_after["data"], key_before["data"],
        "the identity key changed on upgrade"
    );
    let hooks = i
        .get("validatingwebhookconfiguration", None, FULLNAME)
        .await
        .unwrap();
    assert_eq!(
        hooks["webhooks"][0]["clientConfig"]["caBundle"],
        tls_before["data"]["ca.crt"]
    );
    // The upgraded Deployment still runs and still verifies the stamps it signed before.
    let third = i
        .start_replica(&format!("{FULLNAME}-7c9d1-g5h6i"))
        .await
        .unwrap();
    i.wait_for("vmrequests", Some("apps"), "web-1", 30, |o| {
        condition(o, "Accepted").as_deref() == Some("True")
    })
    .await;
    third.stop().await;

    // helm uninstall: the release's objects go; CRDs, objects, identity key and database stay.
    let (ok, out, err) = i
        .helm_with_hook(&["uninstall", RELEASE, "--timeout", "2m"], false)
        .await;
    assert!(ok, "helm uninstall failed: {err}{out}");
    assert!(
        i.get("deployment", Some(NAMESPACE), FULLNAME)
            .await
            .is_none()
    );
    assert!(i.get("clusterrole", None, FULLNAME).await.is_none());
    assert!(
        i.get("validatingwebhookconfiguration", None, FULLNAME)
            .await
            .is_none()
    );
    assert!(
        i.get("crd", None, "vmrequests.shepherd.kv-shepherd.io")
            .await
            .is_some()
    );
    assert!(i.get("vmrequests", Some("apps"), "web-1").await.is_some());
    assert!(
        i.get("secret", Some(NAMESPACE), &format!("{FULLNAME}-identity"))
            .await
            .is_some()
    );
    let report = shepherd::app::audit::verify(&i.db.pool).await.unwrap();
    assert_eq!(report.problem, None);
    assert!(report.rows_checked > 0);
}
