//! The CRD front door end to end: the real kubectl, the simulated management cluster, the
//! admission webhook and the reconcilers, on PostgreSQL 18 (issue: CRD front door).

use crate::common::e2e::{Env, start};
use crate::common::{count, setup};
use serde_json::json;
use shepherd::domain::Subject;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn vm_request(name: &str, target: &str) -> String {
    format!(
        r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmRequest
metadata: {{name: {name}, namespace: apps}}
spec: {{system: shop, service: web, targetNamespace: {target}, template: fedora, instanceSize: small, count: 2, reason: "load test"}}
"#
    )
}

async fn pending(env: &Env, name: &str) -> serde_json::Value {
    env.wait_for("vmrequests", Some("apps"), name, |o| {
        o.pointer("/status/phase") == Some(&json!("PendingApproval"))
    })
    .await
}

#[sqlx::test(migrations = false)]
async fn alices_request_reaches_pending_approval_attributed_and_audited(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = start(setup(opts, connect).await).await;
    env.apply_shop().await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", "team-a")),
    )
    .await;
    let request = pending(&env, "r1").await;
    let ticket = request
        .pointer("/status/ticketId")
        .and_then(|t| t.as_str())
        .expect("ticket id")
        .to_string();
    assert_eq!(request.pointer("/status/environment"), Some(&json!("test")));
    assert_eq!(request.pointer("/status/requester"), Some(&json!("alice")));
    assert_eq!(
        request.pointer("/metadata/annotations/shepherd.kv-shepherd.io~1requested-by"),
        Some(&json!("alice"))
    );
    let accepted = request["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Accepted");
    assert_eq!(accepted.map(|c| c["status"].clone()), Some(json!("True")));

    let system = env.get("systems", None, "shop").await.unwrap();
    assert_eq!(system.pointer("/status/owner"), Some(&json!("alice")));

    // `kubectl get` shows the printer columns, ticket included.
    let table = env
        .kubectl_ok("alice", &["get", "vmrequests", "-n", "apps"], None)
        .await;
    assert!(
        table.contains("PendingApproval") && table.contains(&ticket) && table.contains("team-a"),
        "{table}"
    );

    // The audit log holds the three actions, attributed to alice, and verifies.
    let mut conn = env.db.pool.acquire().await.unwrap();
    let actions = shepherd::db::audit::actions_by_actor(&mut conn, "alice")
        .await
        .unwrap();
    assert_eq!(actions, ["system.create", "service.create", "vm.request"]);
    let report = shepherd::app::audit::verify(&env.db.pool).await.unwrap();
    assert_eq!(report.problem, None);

    // A Kubernetes Event records the transition.
    let events = env
        .kubectl_ok(
            "admin",
            &["get", "events.events.k8s.io", "-n", "apps", "-o", "json"],
            None,
        )
        .await;
    assert!(
        events.contains("PendingApproval") && events.contains("r1"),
        "{events}"
    );
}

#[sqlx::test(migrations = false)]
async fn prod_is_refused_at_admission_for_alice_and_accepted_for_carol(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = start(setup(opts, connect).await).await;
    env.apply_shop().await;
    let (ok, _, err) = env
        .kubectl(
            "alice",
            &["apply", "-f", "-"],
            Some(&vm_request("p1", "shop-prod")),
        )
        .await;
    assert!(!ok);
    assert!(
        err.contains(r#"user "alice" may not request VMs in environment "prod" for system "shop": no binding allows prod"#),
        "{err}"
    );
    assert!(
        env.get("vmrequests", Some("apps"), "p1").await.is_none(),
        "a refused object is not stored"
    );
    // carol may use prod; she needs a role on alice's System (members are managed over the
    // REST API, which comes later: granted directly here).
    let mut conn = env.db.pool.acquire().await.unwrap();
    let system = shepherd::db::services::live_system_by_name(&mut conn, "shop")
        .await
        .unwrap()
        .unwrap();
    shepherd::db::rbac::grant_system_role(
        &mut conn,
        system.id,
        &Subject::user("carol"),
        "member",
        "alice",
    )
    .await
    .unwrap();
    env.kubectl_ok(
        "carol",
        &["apply", "-f", "-"],
        Some(&vm_request("p1", "shop-prod")),
    )
    .await;
    let request = pending(&env, "p1").await;
    assert_eq!(request.pointer("/status/environment"), Some(&json!("prod")));
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM tickets WHERE environment = 'prod'"
        )
        .await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn a_forged_identity_without_the_webhook_ends_denied(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = start(setup(opts, connect).await).await;
    env.apply_shop().await;
    env.remove_webhooks().await;
    let forged = r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmRequest
metadata:
  name: forged
  namespace: apps
  annotations:
    shepherd.kv-shepherd.io/requested-by: carol
    shepherd.kv-shepherd.io/requested-by-uid: ""
    shepherd.kv-shepherd.io/requested-by-groups: "[]"
    shepherd.kv-shepherd.io/identity-signature: "00000000000000000000000000000000"
spec: {system: shop, service: web, targetNamespace: team-a, template: fedora, instanceSize: small, count: 1, reason: "x"}
"#;
    env.kubectl_ok("alice", &["apply", "-f", "-"], Some(forged))
        .await;
    let denied = env
        .wait_for("vmrequests", Some("apps"), "forged", |o| {
            o.pointer("/status/phase") == Some(&json!("Denied"))
        })
        .await;
    let conditions = denied["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Denied" && c["reason"] == "UnverifiedIdentity"),
        "{denied:#}"
    );
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM tickets").await, 0);
    // An unsigned object is denied the same way.
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("unsigned", "team-a")),
    )
    .await;
    env.wait_for("vmrequests", Some("apps"), "unsigned", |o| {
        o.pointer("/status/conditions/1/reason") == Some(&json!("UnverifiedIdentity"))
    })
    .await;
    assert_eq!(count(&env.db.pool, "SELECT count(*) FROM tickets").await, 0);
}

#[sqlx::test(migrations = false)]
async fn restarting_the_controller_creates_no_duplicates(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = start(setup(opts, connect).await).await;
    env.apply_shop().await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", "team-a")),
    )
    .await;
    pending(&env, "r1").await;
    let snapshot = |sql| count(&env.db.pool, sql);
    let before = (
        snapshot("SELECT count(*) FROM tickets").await,
        snapshot("SELECT count(*) FROM audit_log").await,
        snapshot("SELECT count(*) FROM systems").await,
        snapshot("SELECT count(*) FROM domain_events").await,
    );
    // A new replica takes over once the old one's lease lapses, re-lists everything, and
    // must find every row it would write already there.
    env.stop_shepherd().await;
    env.start_shepherd("replica-2").await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r2", "team-a").replace("count: 2", "count: 3")),
    )
    .await;
    pending(&env, "r2").await;
    let snapshot = |sql| count(&env.db.pool, sql);
    let after = (
        snapshot("SELECT count(*) FROM tickets").await,
        snapshot("SELECT count(*) FROM audit_log").await,
        snapshot("SELECT count(*) FROM systems").await,
        snapshot("SELECT count(*) FROM domain_events").await,
    );
    // Exactly the second request's ticket, audit row and event are new.
    assert_eq!(after, (before.0 + 1, before.1 + 1, before.2, before.3 + 1));
}

#[sqlx::test(migrations = false)]
async fn deletion_guards_and_cancellation(opts: PgPoolOptions, connect: PgConnectOptions) {
    let env = start(setup(opts, connect).await).await;
    env.apply_shop().await;
    let (ok, _, err) = env
        .kubectl("alice", &["delete", "system", "shop"], None)
        .await;
    assert!(!ok);
    assert!(
        err.contains(r#"system "shop" still has 1 live service(s)"#),
        "{err}"
    );
    assert!(env.get("systems", None, "shop").await.is_some());

    // Deleting a pending request cancels its ticket, then releases the object.
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", "team-a")),
    )
    .await;
    pending(&env, "r1").await;
    env.kubectl_ok("alice", &["delete", "vmrequest", "r1", "-n", "apps"], None)
        .await;
    env.wait_gone("vmrequests", Some("apps"), "r1").await;
    let status: String = sqlx::query_scalar("SELECT status FROM tickets")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "Cancelled");
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.cancel'"
        )
        .await,
        1
    );

    // With the Service gone, the System goes too, and both rows are soft-deleted.
    env.kubectl_ok(
        "alice",
        &["delete", "services.shepherd.kv-shepherd.io", "shop.web"],
        None,
    )
    .await;
    env.wait_gone("services.shepherd.kv-shepherd.io", None, "shop.web")
        .await;
    env.kubectl_ok("alice", &["delete", "system", "shop"], None)
        .await;
    env.wait_gone("systems", None, "shop").await;
    assert_eq!(
        count(
            &env.db.pool,
            "SELECT count(*) FROM systems WHERE deleted_at IS NOT NULL"
        )
        .await,
        1
    );
}
