//! The authorization holes closed for good: each test tries the hole against the running
//! code (REST in process, admission in process, or the real kubectl) and expects a refusal.

use crate::common::e2e::Env;
use crate::common::rest::{Answer, api};
use crate::common::world::{bind, pending, platform_admins};
use crate::common::{count, setup};
use crate::e2e_provisioning::{
    approval, request_and_approve, settled, vm_request, wait_phase, world,
};
use axum::http::{Method, StatusCode};
use serde_json::json;
use shepherd::domain::Subject;
use shepherd::domain::identity::KeyRing;
use shepherd::http::api::ApiConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const BINDINGS: &str = "/api/v1/rbac/bindings";

/// A POST /api/v1/rbac/bindings body: `role` for user `user`, globally or on `system`.
fn grant(user: &str, role: &str, system: Option<&str>, envs: &[&str]) -> serde_json::Value {
    json!({"subject": {"kind": "User", "name": user}, "role": role,
           "system": system, "allowedEnvironments": envs})
}

/// Creates a binding as `granter`; its id.
async fn granted(api: &crate::common::rest::Api, granter: &str, body: serde_json::Value) -> String {
    let created = api.post(granter, BINDINGS, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"].as_str().unwrap().to_string()
}

async fn revoke(api: &crate::common::rest::Api, user: &str, id: &str) -> Answer {
    let path = format!("{BINDINGS}/{id}");
    api.call(Some(user), Method::DELETE, &path, None).await
}

fn refused(answer: &Answer, needle: &str) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} in {message}");
}

/// A system-admin bound globally for test only tried to make itself platform-admin for
/// test and prod, and got 201.
#[sqlx::test(migrations = false)]
async fn nobody_grants_more_than_they_hold(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    bind(
        &t.pool,
        Subject::user("sam"),
        "system-admin",
        None,
        &["test"],
    )
    .await;
    platform_admins(&t.pool).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let mine = |role: &str, envs: &[&str]| grant("sam", role, None, envs);

    let escalation = api
        .post("sam", BINDINGS, mine("platform-admin", &["test", "prod"]))
        .await;
    refused(&escalation, "platform:admin");
    let into_prod = api.post("sam", BINDINGS, mine("operator", &["prod"])).await;
    refused(&into_prod, "environment prod");
    let approver = api.post("sam", BINDINGS, mine("approver", &["test"])).await;
    refused(&approver, "approval:approve");
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM role_bindings WHERE subject_name = 'sam'"
        )
        .await,
        1,
        "nothing was granted"
    );

    // What sam holds, where sam holds it, sam may grant and take back.
    let id = granted(&api, "sam", grant("dave", "operator", None, &["test"])).await;
    let revoked = revoke(&api, "sam", &id).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);

    // A binding sam could not grant, sam cannot delete either.
    let prod_id = granted(&api, "root", grant("dave", "viewer", None, &["prod"])).await;
    refused(&revoke(&api, "sam", &prod_id).await, "environment prod");
}

/// A system-admin scoped to one System manages bindings on that System, and only there.
#[sqlx::test(migrations = false)]
async fn a_scoped_system_admin_manages_its_system_only(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    let shop: uuid::Uuid = sqlx::query_scalar("SELECT id FROM systems WHERE name = 'shop'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    bind(
        &t.pool,
        Subject::user("sam"),
        "system-admin",
        Some(shop),
        &["test", "prod"],
    )
    .await;
    let api = api(&t.pool, ApiConfig::default()).await;
    granted(
        &api,
        "sam",
        grant("dave", "operator", Some("shop"), &["test", "prod"]),
    )
    .await;
    let global = api
        .post("sam", BINDINGS, grant("dave", "viewer", None, &["test"]))
        .await;
    refused(&global, "globally");
    // sam's listing shows the bindings on shop, not the global ones.
    let listed = api.get("sam", &format!("{BINDINGS}?limit=500")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let items = listed.body["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{}", listed.text);
    assert!(
        items.iter().all(|b| b["system"] == "shop"),
        "{}",
        listed.text
    );
}

// End to end, with the real kubectl against the simulated management cluster.

/// alice asks for `count` VMs in team-a as VmRequest `name`; returns once it awaits approval.
async fn alice_requests(env: &Env, name: &str, count: i32) {
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request(name, "team-a", count)),
    )
    .await;
    wait_phase(env, name, &["PendingApproval"], 30).await;
}

async fn ticket_statuses(env: &Env) -> Vec<(String, String)> {
    sqlx::query_as("SELECT requester, status FROM tickets ORDER BY created_at")
        .fetch_all(&env.db.pool)
        .await
        .unwrap()
}

async fn uid(env: &Env, kind: &str, name: &str) -> String {
    env.get(kind, Some("apps"), name).await.unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An Approval naming a VmRequest that did not exist yet was admitted, and approved the
/// request created later under that name; one whose target was recreated approved the new one.
#[sqlx::test(migrations = false)]
async fn an_approval_binds_to_the_request_it_was_admitted_for(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = world(opts, connect, false).await;
    let (ok, _, err) = env
        .kubectl("bob", &["apply", "-f", "-"], Some(&approval("early", "r1")))
        .await;
    assert!(
        !ok,
        "an Approval of a request that does not exist is refused"
    );
    assert!(err.contains("VmRequest apps/r1 does not exist"), "{err}");
    assert!(env.get("approvals", Some("apps"), "early").await.is_none());

    alice_requests(&env, "r1", 1).await;
    let first_uid = uid(&env, "vmrequests", "r1").await;

    // With the reconcilers stopped, bob approves r1; r1 is then removed (finalizer and all)
    // and alice creates it again before the Approval is looked at.
    env.start_shepherd_with("replica-1", false).await;
    env.kubectl_ok("bob", &["apply", "-f", "-"], Some(&approval("r1-ok", "r1")))
        .await;
    env.kubectl_ok(
        "alice",
        &["delete", "vmrequest", "r1", "-n", "apps", "--wait=false"],
        None,
    )
    .await;
    env.kubectl_ok(
        "admin",
        &[
            "patch",
            "vmrequest",
            "r1",
            "-n",
            "apps",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    )
    .await;
    env.wait_gone("vmrequests", Some("apps"), "r1").await;
    env.kubectl_ok(
        "alice",
        &["apply", "-f", "-"],
        Some(&vm_request("r1", "team-a", 2)),
    )
    .await;
    assert_ne!(uid(&env, "vmrequests", "r1").await, first_uid);
    env.start_shepherd("replica-1").await;

    let refused = env
        .wait_for("approvals", Some("apps"), "r1-ok", |o| {
            o.pointer("/status/phase") == Some(&json!("Refused"))
        })
        .await;
    let condition = &refused["status"]["conditions"][0];
    assert_eq!(condition["reason"], "Stale", "{refused:#}");
    assert!(
        condition["message"].as_str().unwrap().contains(&first_uid),
        "{refused:#}"
    );
    // The new request waits for its own decision.
    wait_phase(&env, "r1", &["PendingApproval"], 30).await;
    assert!(
        ticket_statuses(&env)
            .await
            .iter()
            .all(|(_, status)| status == "PendingApproval" || status == "Cancelled"),
        "nothing was approved: {:?}",
        ticket_statuses(&env).await
    );
}

/// A user with no binding deleted another user's pending VmRequest with kubectl; the
/// cancellation was audited as the controller.
#[sqlx::test(migrations = false)]
async fn only_the_requester_an_approver_or_an_admin_deletes_a_request(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    alice_requests(&env, "r1", 1).await;
    for user in ["mallory", "carol"] {
        let (ok, _, err) = env
            .kubectl(user, &["delete", "vmrequest", "r1", "-n", "apps"], None)
            .await;
        assert!(!ok, "{user} deleted alice's request");
        assert!(
            err.contains(&format!("user \"{user}\" may not delete VmRequest apps/r1")),
            "{err}"
        );
    }
    assert!(env.get("vmrequests", Some("apps"), "r1").await.is_some());
    assert_eq!(
        ticket_statuses(&env).await,
        [("alice".into(), "PendingApproval".into())]
    );

    // bob approves alice's tickets, so he may withdraw the request.
    env.kubectl_ok("bob", &["delete", "vmrequest", "r1", "-n", "apps"], None)
        .await;
    env.wait_gone("vmrequests", Some("apps"), "r1").await;
    assert_eq!(
        ticket_statuses(&env).await,
        [("alice".into(), "Cancelled".into())]
    );
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'approval.cancel'")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(actor, "bob", "the audit row names who deleted it");

    // The requester may always withdraw her own.
    alice_requests(&env, "r2", 1).await;
    env.kubectl_ok("alice", &["delete", "vmrequest", "r2", "-n", "apps"], None)
        .await;
    env.wait_gone("vmrequests", Some("apps"), "r2").await;
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'approval.cancel' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(actors, ["bob", "alice"]);

    // Catalog changes and deletions were audited as the controller; now as the person.
    let catalog_actors: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT actor FROM audit_log
         WHERE action IN ('namespace.register', 'cluster.register', 'instance_size.update',
                          'template.version')",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(catalog_actors, ["admin"]);
    let tiny = "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: InstanceSize\n\
                metadata: {name: tiny}\nspec: {cpu: {cores: 1}, memory: {mib: 512}, disk: {minGiB: 1, maxGiB: 10}}\n";
    env.kubectl_ok("admin", &["apply", "-f", "-"], Some(tiny))
        .await;
    env.wait_for("instancesizes", None, "tiny", |o| {
        o.pointer("/status/phase") == Some(&json!("Ready"))
    })
    .await;
    env.kubectl_ok("admin", &["delete", "instancesize", "tiny"], None)
        .await;
    env.wait_gone("instancesizes", None, "tiny").await;
    let tiny_actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, actor FROM audit_log WHERE resource_name = 'tiny' ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    assert!(tiny_actors.len() >= 2, "{tiny_actors:?}");
    assert!(
        tiny_actors.iter().all(|(_, actor)| actor == "admin"),
        "{tiny_actors:?}"
    );
}

/// A stamp copied from a deleted object onto one recreated under the same name (the
/// webhook bypassed) verified and opened a ticket in the victim's name.
/// A catalog spec changes only for those holding the catalog permission; metadata writes
/// (labels, the controller's finalizers as its ServiceAccount) change no spec and are left
/// to Kubernetes RBAC.
#[sqlx::test(migrations = false)]
async fn only_catalog_managers_change_a_catalog_spec(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = crate::common::e2e::start(setup(opts, connect).await).await;
    let bigger = "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: InstanceSize\n\
                  metadata: {name: small}\nspec: {cpu: {cores: 8}, memory: {mib: 2048}, disk: {minGiB: 10, maxGiB: 100}}\n";
    let (ok, _, err) = env
        .kubectl("alice", &["apply", "-f", "-"], Some(bigger))
        .await;
    assert!(!ok, "alice changed a catalog spec");
    assert!(err.contains("manage templates and instance sizes"), "{err}");
    let size = env.get("instancesizes", None, "small").await.unwrap();
    assert_eq!(size.pointer("/spec/cpu/cores"), Some(&json!(2)));

    env.kubectl_ok(
        "alice",
        &["label", "instancesize", "small", "team=shop"],
        None,
    )
    .await;
    let size = env.get("instancesizes", None, "small").await.unwrap();
    assert_eq!(size.pointer("/metadata/labels/team"), Some(&json!("shop")));

    env.kubectl_ok("admin", &["apply", "-f", "-"], Some(bigger))
        .await;
    let size = env.get("instancesizes", None, "small").await.unwrap();
    assert_eq!(size.pointer("/spec/cpu/cores"), Some(&json!(8)));
}

#[sqlx::test(migrations = false)]
async fn a_stamp_is_good_for_one_object_only(opts: PgPoolOptions, connect: PgConnectOptions) {
    let env = world(opts, connect, false).await;
    alice_requests(&env, "r1", 1).await;
    let original = env.get("vmrequests", Some("apps"), "r1").await.unwrap();
    env.kubectl_ok("alice", &["delete", "vmrequest", "r1", "-n", "apps"], None)
        .await;
    env.wait_gone("vmrequests", Some("apps"), "r1").await;

    // mallory recreates r1 with alice's stamp while the webhook is not in the way.
    env.remove_webhooks().await;
    let mut spec = original["spec"].clone();
    spec["count"] = json!(3);
    let replay = json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1", "kind": "VmRequest",
        "metadata": {"name": "r1", "namespace": "apps",
                     "annotations": original["metadata"]["annotations"].clone()},
        "spec": spec,
    });
    env.kubectl_ok("mallory", &["apply", "-f", "-"], Some(&replay.to_string()))
        .await;
    let denied = env
        .wait_for("vmrequests", Some("apps"), "r1", |o| {
            o.pointer("/status/phase") == Some(&json!("Denied"))
        })
        .await;
    let message = denied["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("already used by another object"),
        "{denied:#}"
    );
    assert_eq!(
        ticket_statuses(&env).await,
        [("alice".into(), "Cancelled".into())],
        "no ticket was opened in alice's name"
    );
}

/// Rotating the identity key used to turn every existing object Denied.
#[sqlx::test(migrations = false)]
async fn a_key_rotation_leaves_succeeded_requests_alone(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut env = world(opts, connect, false).await;
    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");

    let new_key = b"the-next-identity-key-after-rotation-32b".to_vec();
    env.identity_keys = KeyRing::new(new_key, vec![crate::common::e2e::KEY.to_vec()]).unwrap();
    env.start_shepherd("replica-1").await;
    // A new request is stamped with the new key; the old one still verifies.
    alice_requests(&env, "r2", 1).await;
    let r2 = env.get("vmrequests", Some("apps"), "r2").await.unwrap();
    assert_eq!(
        r2["metadata"]["annotations"][shepherd::crd::identity::KEY_ID],
        shepherd::domain::identity::key_id(b"the-next-identity-key-after-rotation-32b")
    );
    // Every reconcile of r1 after the restart verified it with the previous key.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let r1 = env.get("vmrequests", Some("apps"), "r1").await.unwrap();
    assert_eq!(r1["status"]["phase"], "Succeeded", "{r1:#}");
}

/// One database pool per component: with the REST API's pool exhausted, admission, the
/// reconcilers and the workers still bring a request to its VMs; and the audit chain's head
/// is exported to a ConfigMap that `audit verify --anchor` accepts.
#[sqlx::test(migrations = false)]
async fn an_exhausted_api_pool_leaves_the_other_components_working(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let env = world(opts, connect, false).await;
    let api_pool = env.pools.as_ref().unwrap().api.clone();
    let mut held = Vec::new();
    for _ in 0..shepherd::db::PoolSizes::for_workers(4).api.max_connections {
        held.push(api_pool.acquire().await.unwrap());
    }
    let (code, _, err) = env.plugin("bob", &["pending"]).await;
    assert_ne!(code, 0, "the REST API has no connection left: {err}");
    assert!(err.contains("unavailable"), "{err}");

    request_and_approve(&env, "alice", "r1", "team-a", 1).await;
    let done = settled(&env, "r1").await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");

    drop(held);
    let (code, _, err) = env.plugin("bob", &["pending"]).await;
    assert_eq!(code, 0, "the REST API answers again: {err}");

    // The anchor follows the chain's head; the chain verifies against it.
    let mut anchor = None;
    for _ in 0..100 {
        let head = shepherd::app::audit::anchor(&env.db.pool).await.unwrap();
        let exported = env
            .get(
                "configmaps",
                Some("kubevirt-shepherd"),
                "kubevirt-shepherd-audit-anchor",
            )
            .await
            .and_then(|cm| cm["data"]["anchor"].as_str().map(str::to_string));
        if exported.as_deref() == Some(head.to_string().as_str()) {
            anchor = Some(head);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let anchor = anchor.expect("the ConfigMap carries the chain's head");
    let report = shepherd::app::audit::verify_against(&env.db.pool, Some(&anchor))
        .await
        .unwrap();
    assert_eq!(report.problem, None);
}

/// Every distinct token used to cost a TokenReview, without limit: calls that need one (or
/// carry no token) are now limited per client address, while cached callers go on.
#[sqlx::test(migrations = false)]
async fn unauthenticated_calls_are_limited_per_address(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let known = api.get("alice", "/api/v1/tickets").await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
    let mut answers = Vec::new();
    for i in 0..30 {
        let a = api
            .call_with_token(
                &format!("made-up-token-{i}"),
                Method::GET,
                "/api/v1/tickets",
            )
            .await;
        answers.push(a.status);
    }
    assert_eq!(answers[0], StatusCode::UNAUTHORIZED);
    assert!(
        answers.contains(&StatusCode::TOO_MANY_REQUESTS),
        "a flood of unknown tokens is cut off: {answers:?}"
    );
    let no_token = api.call(None, Method::GET, "/api/v1/tickets", None).await;
    assert_eq!(
        no_token.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        no_token.text
    );
    // alice's token is cached: she is not held back by the strangers' flood.
    let known = api.get("alice", "/api/v1/tickets").await;
    assert_eq!(known.status, StatusCode::OK, "{}", known.text);
}

/// Ticket listings read only rows the caller may see: the database filters them, rather
/// than the whole table being read and filtered afterwards.
#[sqlx::test(migrations = false)]
async fn the_database_filters_ticket_visibility(opts: PgPoolOptions, connect: PgConnectOptions) {
    use shepherd::db::tickets::{TicketFilter, TicketVisibility, list};
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    let mut conn = t.pool.acquire().await.unwrap();
    let all = list(&mut conn, &TicketFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let only = |visibility: TicketVisibility| TicketFilter {
        visible_to: Some(visibility),
        ..TicketFilter::default()
    };
    let stranger = TicketVisibility {
        requester: Some("mallory".into()),
        ..TicketVisibility::default()
    };
    assert!(
        list(&mut conn, &only(stranger), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let requester = TicketVisibility {
        requester: Some("alice".into()),
        ..TicketVisibility::default()
    };
    assert_eq!(
        list(&mut conn, &only(requester), None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let approver = |environment: &str| TicketVisibility {
        system_ids: vec![all[0].system_id],
        environments: vec![environment.into()],
        excluded_requester: Some("bob".into()),
        ..TicketVisibility::default()
    };
    assert_eq!(
        list(&mut conn, &only(approver("test")), None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        list(&mut conn, &only(approver("prod")), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let own = TicketVisibility {
        excluded_requester: Some("alice".into()),
        ..approver("test")
    };
    assert!(
        list(&mut conn, &only(own), None, 100)
            .await
            .unwrap()
            .is_empty(),
        "not one's own"
    );
}

/// Admission records are pruned when no reconcile can need them, and claimed nonces (which
/// refuse a copied stamp) are kept.
#[sqlx::test(migrations = false)]
async fn stale_admission_records_are_pruned(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    sqlx::raw_sql(
        "INSERT INTO identity_stamps (nonce, kind, name, username, issued_at, object_uid, claimed_at) VALUES
           (repeat('a', 32), 'VmRequest', 'old-unclaimed', 'alice', now() - interval '2 days', NULL, NULL),
           (repeat('b', 32), 'VmRequest', 'old-claimed', 'alice', now() - interval '2 days', 'uid-1', now()),
           (repeat('c', 32), 'VmRequest', 'new-unclaimed', 'alice', now(), NULL, NULL);
         INSERT INTO object_deletions (object_uid, kind, name, deleted_by, requested_at) VALUES
           ('uid-old', 'VmRequest', 'r1', 'bob', now() - interval '40 days'),
           ('uid-new', 'VmRequest', 'r2', 'bob', now());",
    )
    .execute(&t.pool)
    .await
    .unwrap();
    let mut conn = t.pool.acquire().await.unwrap();
    assert_eq!(shepherd::db::stamps::prune(&mut conn, 30).await.unwrap(), 2);
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM identity_stamps ORDER BY name")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(names, ["new-unclaimed", "old-claimed"]);
    let uids: Vec<String> = sqlx::query_scalar("SELECT object_uid FROM object_deletions")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(uids, ["uid-new"]);
}

/// Found by the API fuzzer: text with NUL characters and dates beyond PostgreSQL's range
/// answered 500. They are the caller's mistakes: 400 or 422, naming what is wrong.
#[sqlx::test(migrations = false)]
async fn values_the_database_cannot_store_are_refused_not_failed(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    platform_admins(&t.pool).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let body = api
        .post(
            "alice",
            &format!("/api/v1/tickets/{ticket}/cancel"),
            json!({"reason": "a\u{0}b"}),
        )
        .await;
    assert_eq!(
        body.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        body.text
    );
    assert!(body.text.contains("reason"), "{}", body.text);
    let binding = api
        .post(
            "root",
            BINDINGS,
            grant("da\u{0}ve", "viewer", None, &["test"]),
        )
        .await;
    assert_eq!(
        binding.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        binding.text
    );
    assert!(binding.text.contains("subject/name"), "{}", binding.text);
    for path in [
        "/api/v1/tickets?system=a%00b",
        "/api/v1/audit?actor=a%00b",
        "/api/v1/audit/export?actor=a%00b",
        "/api/v1/systems/a%00b/services",
    ] {
        let a = api.get("root", path).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.text);
    }
    let ancient = api
        .get("root", "/api/v1/audit?since=-262143-01-01T00:00:00Z")
        .await;
    assert_eq!(
        ancient.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        ancient.text
    );
    // A cursor that decodes to a string with NUL reaches the database; refused, not failed.
    let cursor = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&json!("a\u{0}")).unwrap(),
    );
    let page = api
        .get("root", &format!("/api/v1/systems?cursor={cursor}"))
        .await;
    assert!(page.status.is_client_error(), "{}", page.text);
}

/// Every component's pool ends a statement that runs past its statement_timeout.
#[sqlx::test(migrations = false)]
async fn each_pool_has_its_statement_timeout(opts: PgPoolOptions, connect: PgConnectOptions) {
    use shepherd::db::{PoolSize, PoolSizes, Pools};
    let t = setup(opts, connect).await;
    let size = |ms| PoolSize {
        max_connections: 1,
        statement_timeout: std::time::Duration::from_millis(ms),
    };
    let pools = Pools::connect_lazy(
        &t.url,
        &PoolSizes {
            webhook: size(100),
            api: size(200),
            controllers: size(300),
            workers: size(400),
        },
    )
    .unwrap();
    for (name, pool, ms) in [
        ("webhook", &pools.webhook, 100),
        ("api", &pools.api, 200),
        ("controllers", &pools.controllers, 300),
        ("workers", &pools.workers, 400),
    ] {
        let setting: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(setting, format!("{ms}ms"), "{name}");
        let err = sqlx::query("SELECT pg_sleep(2)")
            .execute(pool)
            .await
            .unwrap_err();
        assert_eq!(crate::common::sqlstate(&err), "57014", "{name}: {err}");
    }
}
