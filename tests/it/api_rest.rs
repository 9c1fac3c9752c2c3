//! The REST API in-process on PostgreSQL 18, with bearer tokens checked by the simulator's
//! TokenReview: the approver's flow, visibility, pagination, audit, RBAC administration, and
//! every error code.

use crate::common::rest::{Answer, api};
use crate::common::world::{alice, pending};
use crate::common::{count, setup};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use shepherd::app::requests::{VmRequestInput, submit_vm_request};
use shepherd::http::api::ApiConfig;
use shepherd::http::api::auth::RateLimit;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::num::NonZeroU32;
use tower::ServiceExt;
use uuid::Uuid;

/// The error answer's shape and code.
fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["code"], code, "{}", a.text);
    assert!(
        a.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
    assert!(a.body.get("details").is_some(), "{}", a.text);
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn an_approver_lists_previews_and_approves_with_a_cluster_override(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 3).await;
    let api = api(&t.pool, ApiConfig::default()).await;

    let me = api.get("bob", "/api/v1/whoami").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["username"], "bob");
    assert!(
        me.body["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("approvers"))
    );
    assert_eq!(me.body["bindings"][0]["role"], "approver", "{}", me.text);

    let waiting = api.get("bob", "/api/v1/tickets?awaitingMe=true").await;
    assert_eq!(ids(&waiting.body), [ticket.to_string()], "{}", waiting.text);
    // alice sees her ticket, but it does not wait for her.
    let mine = api.get("alice", "/api/v1/tickets").await;
    assert_eq!(ids(&mine.body), [ticket.to_string()]);
    let hers = api.get("alice", "/api/v1/tickets?awaitingMe=true").await;
    assert_eq!(ids(&hers.body), Vec::<String>::new());

    let preview = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{ticket}/preview"),
            json!({"overrides": {"cluster": "test-2"}}),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert_eq!(preview.body["cluster"], "test-2");
    assert_eq!(
        preview.body["eligibleClusters"],
        json!(["test-1", "test-2"])
    );
    assert_eq!(
        preview.body["vmNames"],
        json!([
            "team-a-shop-web-01",
            "team-a-shop-web-02",
            "team-a-shop-web-03"
        ])
    );
    assert_eq!(preview.body["resources"]["cpuLimitMillis"], 2000);
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM vms").await,
        0,
        "preview writes nothing"
    );

    let approved = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{ticket}/approve"),
            json!({"reason": "capacity ok", "overrides": {"cluster": "test-2"}}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::ACCEPTED, "{}", approved.text);
    assert_eq!(
        approved.headers["location"],
        format!("/api/v1/tickets/{ticket}").as_str()
    );
    assert_eq!(approved.body["status"], "Approved");
    assert_eq!(approved.body["approver"], "bob");
    let vms = approved.body["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3);
    assert!(vms.iter().all(|v| v["cluster"] == "test-2"), "{vms:?}");
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM river_job WHERE kind = 'vm_provision'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'approval.approve' AND actor = 'bob'"
        )
        .await,
        1
    );

    // The Location answers with the ticket; the VMs are listed for their readers.
    let polled = api.get("alice", &format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(polled.body["status"], "Approved", "{}", polled.text);
    let vms = api.get("alice", "/api/v1/vms").await;
    assert_eq!(
        vms.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        vms.text
    );
    let waiting = api.get("bob", "/api/v1/tickets?awaitingMe=true").await;
    assert_eq!(ids(&waiting.body), Vec::<String>::new());
}

#[sqlx::test(migrations = false)]
async fn rejection_and_cancellation_make_no_vm_and_no_job(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 2).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let rejected = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{ticket}/reject"),
            json!({"reason": "use the shared pool"}),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    assert_eq!(rejected.body["status"], "Rejected");
    assert_eq!(rejected.body["decisionReason"], "use the shared pool");

    let second = submit_vm_request(
        &t.pool,
        &crate::common::river(&t.pool),
        &alice(),
        &VmRequestInput {
            count: 1,
            ..crate::common::world::request("r2", "team-a")
        },
    )
    .await
    .unwrap()
    .ticket_id;
    // Only the requester (or a platform admin) cancels; an approver rejects instead.
    let by_bob = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{second}/cancel"),
            json!({"reason": "no"}),
        )
        .await;
    assert_error(&by_bob, StatusCode::FORBIDDEN, "forbidden");
    let cancelled = api
        .post(
            "alice",
            &format!("/api/v1/tickets/{second}/cancel"),
            json!({"reason": "not needed any more"}),
        )
        .await;
    assert_eq!(cancelled.body["status"], "Cancelled", "{}", cancelled.text);
    assert_eq!(count(&t.pool, "SELECT count(*) FROM vms").await, 0);
    assert_eq!(count(&t.pool, "SELECT count(*) FROM river_job").await, 0);
}

#[sqlx::test(migrations = false)]
async fn every_error_code_is_reachable(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let approve = format!("/api/v1/tickets/{ticket}/approve");

    // 401: no token, a malformed header, a token the cluster does not know.
    let none = api.call(None, Method::GET, "/api/v1/whoami", None).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthenticated");
    let request = Request::get("/api/v1/whoami")
        .header("authorization", "Bearer not-a-token")
        .body(Body::empty())
        .unwrap();
    let forged = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // 400: malformed JSON, a cursor that was not handed out, an id that is no UUID.
    let malformed = api
        .call(Some("bob"), Method::POST, &approve, Some("{not json"))
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "bad_request");
    let cursor = api.get("bob", "/api/v1/tickets?cursor=bogus").await;
    assert_error(&cursor, StatusCode::BAD_REQUEST, "bad_request");
    let id = api.get("bob", "/api/v1/tickets/42").await;
    assert_error(&id, StatusCode::BAD_REQUEST, "bad_request");

    // 403: the requester approves her own ticket; 404: a ticket that does not exist, and
    // one the caller may not see.
    let own = api.post("alice", &approve, json!({"reason": "mine"})).await;
    assert_error(&own, StatusCode::FORBIDDEN, "forbidden");
    let missing = api
        .get("bob", &format!("/api/v1/tickets/{}", Uuid::new_v4()))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let invisible = api
        .get("mallory", &format!("/api/v1/tickets/{ticket}"))
        .await;
    assert_error(&invisible, StatusCode::NOT_FOUND, "not_found");

    // 422: a field breaks a rule (named in details).
    let empty_reason = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{ticket}/reject"),
            json!({"reason": " "}),
        )
        .await;
    assert_error(&empty_reason, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(empty_reason.body["details"]["field"], "reason");
    let limit = api.get("bob", "/api/v1/tickets?limit=0").await;
    assert_error(&limit, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(limit.body["details"]["field"], "limit");
    let other_env = api
        .post("bob", &approve, json!({"overrides": {"cluster": "prod-1"}}))
        .await;
    assert_error(&other_env, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(other_env.body["details"]["field"], "overrides.cluster");

    // 409: a decision on a decided ticket.
    let first = api.post("bob", &approve, json!({"reason": "ok"})).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let again = api
        .post(
            "bob",
            &format!("/api/v1/tickets/{ticket}/reject"),
            json!({"reason": "late"}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");

    // 429: one request per second, no burst beyond it.
    let one = NonZeroU32::new(1).unwrap();
    let strict = self::api(
        &t.pool,
        ApiConfig {
            rate_limit: RateLimit {
                per_second: one,
                burst: one,
            },
            ..ApiConfig::default()
        },
    )
    .await;
    assert_eq!(
        strict.get("bob", "/api/v1/whoami").await.status,
        StatusCode::OK
    );
    let limited = strict.get("bob", "/api/v1/whoami").await;
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));

    // 503: the management cluster cannot be asked about the token.
    let gone = self::api(&t.pool, ApiConfig::default()).await;
    gone.sim.shutdown();
    let unavailable = gone.get("bob", "/api/v1/whoami").await;
    assert_error(&unavailable, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[sqlx::test(migrations = false)]
async fn pages_stay_stable_while_tickets_are_added(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    let submit = |uid: &'static str, count: i32| {
        let pool = t.pool.clone();
        async move {
            submit_vm_request(
                &pool,
                &crate::common::river(&pool),
                &alice(),
                &VmRequestInput {
                    count,
                    ..crate::common::world::request(uid, "team-a")
                },
            )
            .await
            .unwrap()
            .ticket_id
            .to_string()
        }
    };
    for (uid, n) in [("p2", 2), ("p3", 3), ("p4", 4), ("p5", 5)] {
        submit(uid, n).await;
    }
    let api = api(&t.pool, ApiConfig::default()).await;
    let all_before = ids(&api.get("bob", "/api/v1/tickets?limit=500").await.body);
    assert_eq!(all_before.len(), 5);

    let first = api.get("bob", "/api/v1/tickets?limit=2").await;
    let mut seen = ids(&first.body);
    let mut cursor = first.body["nextCursor"].as_str().unwrap().to_string();
    // Tickets added between pages come after the ones already listed.
    let added = [submit("p6", 6).await, submit("p7", 7).await];
    loop {
        let page = api
            .get("bob", &format!("/api/v1/tickets?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen.extend(ids(&page.body));
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let mut expected = all_before.clone();
    expected.extend(added);
    assert_eq!(seen, expected, "every ticket once, in order");
}

#[sqlx::test(migrations = false)]
async fn lists_audit_and_rbac_follow_permissions(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    pending(&t.pool, 1).await;
    crate::common::world::platform_admins(&t.pool).await;
    let api = api(&t.pool, ApiConfig::default()).await;

    // mallory has no binding and no resource role: nothing is visible.
    for path in [
        "/api/v1/tickets",
        "/api/v1/systems",
        "/api/v1/services",
        "/api/v1/vms",
    ] {
        let a = api.get("mallory", path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert_eq!(a.body["items"], json!([]), "{path}");
    }
    let systems = api.get("alice", "/api/v1/systems").await;
    assert_eq!(systems.body["items"][0]["name"], "shop", "{}", systems.text);
    let services = api.get("alice", "/api/v1/systems/shop/services").await;
    assert_eq!(
        services.body["items"][0]["name"], "web",
        "{}",
        services.text
    );
    let hidden = api.get("mallory", "/api/v1/systems/shop/services").await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "not_found");

    // Audit needs audit:read.
    let refused = api.get("alice", "/api/v1/audit").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let requests = api
        .get("root", "/api/v1/audit?action=vm.request&actor=alice")
        .await;
    assert_eq!(requests.status, StatusCode::OK, "{}", requests.text);
    let rows = requests.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", requests.text);
    assert_eq!(rows[0]["environment"], "test");
    let prod_only = api.get("root", "/api/v1/audit?environment=prod").await;
    let prod_rows = prod_only.body["items"].as_array().unwrap();
    assert!(!prod_rows.is_empty(), "{}", prod_only.text);
    assert!(
        prod_rows.iter().all(|r| r["environment"] == "prod"),
        "platform rows and test rows are left out: {}",
        prod_only.text
    );
    let page = api.get("root", "/api/v1/audit?limit=500").await;
    let export = api.get("root", "/api/v1/audit/export").await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, *page.body["items"].as_array().unwrap());

    // RBAC administration needs rbac:manage.
    let binding = json!({"subject": {"kind": "User", "name": "dave"}, "role": "viewer",
                         "system": "shop", "allowedEnvironments": ["test"]});
    let denied = api
        .post("alice", "/api/v1/rbac/bindings", binding.clone())
        .await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");
    let created = api
        .post("root", "/api/v1/rbac/bindings", binding.clone())
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["system"], "shop");
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/rbac/bindings/{id}").as_str()
    );
    let duplicate = api.post("root", "/api/v1/rbac/bindings", binding).await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");
    let bad_kind = api
        .post(
            "root",
            "/api/v1/rbac/bindings",
            json!({"subject": {"kind": "Robot", "name": "x"}, "role": "viewer"}),
        )
        .await;
    assert_error(&bad_kind, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let listed = api.get("root", "/api/v1/rbac/bindings?limit=500").await;
    assert!(ids(&listed.body).contains(&id), "{}", listed.text);
    let roles = api.get("root", "/api/v1/rbac/roles").await;
    assert!(roles.text.contains("\"approver\""), "{}", roles.text);
    let deleted = api
        .call(
            Some("root"),
            Method::DELETE,
            &format!("/api/v1/rbac/bindings/{id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE actor = 'root' AND action IN ('role.assign', 'role.revoke')"
        )
        .await,
        2
    );
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_is_served_without_a_token(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let doc = api
        .call(None, Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/api/v1/tickets/{id}/approve"]["post"].is_object());
}
