//! Request ids of the REST API and the admission webhook: a client's `x-request-id` is
//! kept and echoed, a missing or malformed one is replaced by a UUID, and the audit rows
//! written while serving a request carry its id (and still verify).

use crate::common::rest::api;
use crate::common::setup;
use crate::common::world::pending;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use shepherd::app::admission::{AdmissionInput, AdmissionPolicy, BoxFuture, Denial};
use shepherd::http::api::ApiConfig;
use shepherd::http::webhook::WebhookState;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower::ServiceExt;
use uuid::Uuid;

fn is_uuid(id: Option<&str>) -> bool {
    id.is_some_and(|id| Uuid::parse_str(id).is_ok())
}

#[sqlx::test(migrations = false)]
async fn a_request_id_is_kept_or_made_up_and_always_echoed(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let path = format!("/api/v1/tickets/{ticket}");

    let kept = api
        .call_with_id(Some("bob"), Method::GET, &path, Some("test-123"), None)
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert_eq!(kept.request_id(), Some("test-123"));

    let made_up = api
        .call_with_id(Some("bob"), Method::GET, &path, None, None)
        .await;
    assert_eq!(made_up.status, StatusCode::OK, "{}", made_up.text);
    assert!(is_uuid(made_up.request_id()), "{:?}", made_up.request_id());
    let again = api
        .call_with_id(Some("bob"), Method::GET, &path, None, None)
        .await;
    assert_ne!(
        again.request_id(),
        made_up.request_id(),
        "one id per request"
    );

    // Errors carry it too: unauthenticated, and a path no route matches.
    let refused = api
        .call_with_id(
            None,
            Method::GET,
            "/api/v1/whoami",
            Some("no-token-1"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.request_id(), Some("no-token-1"));
    let unknown = api
        .call_with_id(Some("bob"), Method::GET, "/api/v1/nothing-here", None, None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(is_uuid(unknown.request_id()));

    // An id that would not be safe in logs and audit rows is replaced.
    for bad in ["has spaces in it", &"x".repeat(200), "quote\"d"] {
        let answer = api
            .call_with_id(Some("bob"), Method::GET, &path, Some(bad), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            is_uuid(answer.request_id()),
            "{bad:?} -> {:?}",
            answer.request_id()
        );
    }
}

#[sqlx::test(migrations = false)]
async fn the_audit_rows_of_a_decision_carry_its_request_id(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 2).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let before: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_log")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    let without_id: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details ? 'requestId' AND id <= $1",
    )
    .bind(before)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(without_id, 0, "rows written outside a request have no id");

    let approved = api
        .call_with_id(
            Some("bob"),
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Some("approve-42"),
            Some(&json!({"reason": "capacity ok"}).to_string()),
        )
        .await;
    assert_eq!(approved.status, StatusCode::ACCEPTED, "{}", approved.text);
    assert_eq!(approved.request_id(), Some("approve-42"));

    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, details->>'requestId' FROM audit_log WHERE id > $1 ORDER BY id",
    )
    .bind(before)
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert!(
        rows.iter().any(|(action, _)| action == "approval.approve"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(_, id)| id.as_deref() == Some("approve-42")),
        "{rows:?}"
    );

    // A second decision is refused (409) and writes nothing; a rejection of another ticket
    // gets its own, generated id.
    let again = api
        .call_with_id(
            Some("bob"),
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/approve"),
            Some("approve-43"),
            Some(&json!({"reason": "again"}).to_string()),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let tagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details->>'requestId' = 'approve-43'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(tagged, 0);

    // The request id is part of the hashed row: the chain still verifies.
    let report = shepherd::app::audit::verify(&t.pool).await.unwrap();
    assert_eq!(report.problem, None);
    assert!(report.rows_checked as usize > rows.len());
}

/// Allows everything: the webhook's answers are not what this test is about.
struct AllowAll;

impl AdmissionPolicy for AllowAll {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test]
async fn the_webhook_echoes_request_ids_too() {
    let key: &[u8] = b"test-key-test-key-test-key-test-key!";
    let router = shepherd::http::webhook::router(WebhookState::new(
        shepherd::domain::identity::KeyRing::new(key.to_vec(), Vec::new()).unwrap(),
        std::sync::Arc::new(AllowAll),
    ));
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    for (sent, check) in [
        (Some("hook-7"), Some("hook-7")),
        (None, None), // a UUID
    ] {
        let mut request = Request::post("/validate").header("content-type", "application/json");
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(review.to_string())).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        match check {
            Some(id) => assert_eq!(echoed.as_deref(), Some(id)),
            None => assert!(is_uuid(echoed.as_deref()), "{echoed:?}"),
        }
    }
}
