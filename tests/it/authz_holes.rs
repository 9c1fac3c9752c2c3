//! The authorization holes closed for good: each test tries the hole against the running
//! code (REST in process, admission in process, or the real kubectl) and expects a refusal.

use crate::common::rest::{Answer, api};
use crate::common::world::{bind, pending};
use crate::common::{count, setup};
use axum::http::{Method, StatusCode};
use serde_json::json;
use shepherd::domain::Subject;
use shepherd::http::api::ApiConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
    let platform_admins = Subject::group("platform-admins");
    bind(
        &t.pool,
        platform_admins,
        "platform-admin",
        None,
        &["test", "prod"],
    )
    .await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let bindings = "/api/v1/rbac/bindings";
    let grant = |role: &str, system: Option<&str>, envs: &[&str]| {
        json!({"subject": {"kind": "User", "name": "sam"}, "role": role,
               "system": system, "allowedEnvironments": envs})
    };

    let escalation = api
        .post(
            "sam",
            bindings,
            grant("platform-admin", None, &["test", "prod"]),
        )
        .await;
    refused(&escalation, "platform:admin");
    let into_prod = api
        .post("sam", bindings, grant("operator", None, &["prod"]))
        .await;
    refused(&into_prod, "environment prod");
    let approver = api
        .post("sam", bindings, grant("approver", None, &["test"]))
        .await;
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
    let operator = api
        .post(
            "sam",
            bindings,
            json!({"subject": {"kind": "User", "name": "dave"}, "role": "operator",
                   "allowedEnvironments": ["test"]}),
        )
        .await;
    assert_eq!(operator.status, StatusCode::CREATED, "{}", operator.text);
    let id = operator.body["id"].as_str().unwrap();
    let revoked = api
        .call(
            Some("sam"),
            Method::DELETE,
            &format!("{bindings}/{id}"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);

    // A binding sam could not grant, sam cannot delete either.
    let prod = api
        .post(
            "root",
            bindings,
            json!({"subject": {"kind": "User", "name": "dave"}, "role": "viewer",
                   "allowedEnvironments": ["prod"]}),
        )
        .await;
    assert_eq!(prod.status, StatusCode::CREATED, "{}", prod.text);
    let prod_id = prod.body["id"].as_str().unwrap();
    let delete = api
        .call(
            Some("sam"),
            Method::DELETE,
            &format!("{bindings}/{prod_id}"),
            None,
        )
        .await;
    refused(&delete, "environment prod");
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
    let bindings = "/api/v1/rbac/bindings";
    let on_shop = api
        .post(
            "sam",
            bindings,
            json!({"subject": {"kind": "User", "name": "dave"}, "role": "operator",
                   "system": "shop", "allowedEnvironments": ["test", "prod"]}),
        )
        .await;
    assert_eq!(on_shop.status, StatusCode::CREATED, "{}", on_shop.text);
    let global = api
        .post(
            "sam",
            bindings,
            json!({"subject": {"kind": "User", "name": "dave"}, "role": "viewer",
                   "allowedEnvironments": ["test"]}),
        )
        .await;
    refused(&global, "globally");
    // sam's listing shows the bindings on shop, not the global ones.
    let listed = api.get("sam", &format!("{bindings}?limit=500")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let items = listed.body["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{}", listed.text);
    assert!(
        items.iter().all(|b| b["system"] == "shop"),
        "{}",
        listed.text
    );
}
