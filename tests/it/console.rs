//! The web console's HTTP contract in process (the browser tests are in `e2e_console`):
//! security headers, cookies, the login form's CSRF guard, sessions stored by hash only,
//! and the same visibility as the REST API.

use crate::common::rest::api;
use crate::common::setup;
use crate::common::world::pending;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use shepherd::http::api::ApiConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the cookie `name` this answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|rest| rest.split(';').next().unwrap().to_string())
    }

    fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no Set-Cookie {name}: {:?}", self.headers))
            .to_string()
    }
}

async fn send(
    router: &axum::Router,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Page {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if form.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let response = router
        .clone()
        .oneshot(
            request
                .body(Body::from(form.unwrap_or_default().to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn form_token(page: &Page) -> String {
    let at = page
        .text
        .find("name=\"csrf\" value=\"")
        .expect("a csrf field")
        + 19;
    page.text[at..].split('"').next().unwrap().to_string()
}

/// Logs `token` in through the form; the session cookie as a `Cookie` header value.
async fn log_in(router: &axum::Router, token: &str) -> String {
    let form = send(router, Method::GET, "/ui/login", None, None).await;
    let nonce = form.cookie("__Host-shepherd-login").unwrap();
    assert_eq!(
        form_token(&form),
        nonce,
        "the form repeats the login cookie"
    );
    let done = send(
        router,
        Method::POST,
        "/ui/login",
        Some(&format!("__Host-shepherd-login={nonce}")),
        Some(&format!("csrf={nonce}&token={token}")),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.header(header::LOCATION), "/ui/");
    format!(
        "__Host-shepherd-session={}",
        done.cookie("__Host-shepherd-session").unwrap()
    )
}

#[sqlx::test(migrations = false)]
async fn pages_are_never_cached_nor_framed_and_allow_no_inline_code(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let login = send(&api.router, Method::GET, "/ui/login", None, None).await;
    assert_eq!(login.status, StatusCode::OK);
    let csp = login.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(login.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(login.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(login.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(!login.text.contains("style=") && !login.text.contains("<script>"));
    let nonce = login.set_cookie("__Host-shepherd-login");
    for part in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(nonce.split("; ").any(|p| p == part), "{nonce}");
    }

    // Without a session every page leads to the login form.
    for path in ["/ui/", "/ui/requests", "/ui/vms", "/ui/audit"] {
        let page = send(&api.router, Method::GET, path, None, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.header(header::LOCATION), "/ui/login", "{path}");
    }
    let bare = send(&api.router, Method::GET, "/ui", None, None).await;
    assert_eq!(bare.header(header::LOCATION), "/ui/");

    // The assets come from the binary and may be cached; unknown pages are 404 pages.
    let css = send(
        &api.router,
        Method::GET,
        "/ui/assets/console.css",
        None,
        None,
    )
    .await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert!(css.header(header::CACHE_CONTROL).contains("max-age"));
    let js = send(
        &api.router,
        Method::GET,
        "/ui/assets/console.js",
        None,
        None,
    )
    .await;
    assert!(
        js.header(header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
    let missing = send(&api.router, Method::GET, "/ui/nothing/here", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing
            .header(header::CONTENT_TYPE)
            .starts_with("text/html")
    );
    assert!(
        missing
            .header(header::CONTENT_SECURITY_POLICY)
            .contains("frame-ancestors")
    );
}

#[sqlx::test(migrations = false)]
async fn a_login_needs_its_forms_cookie_and_stores_only_the_sessions_hash(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let token = api.sim.token("bob").unwrap().to_string();
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM console_sessions")
            .fetch_one(&t.pool)
            .await
            .unwrap()
    };

    // A cross-site login (no login cookie, or another one) opens nothing.
    for cookie in [None, Some("__Host-shepherd-login=other")] {
        let refused = send(
            &api.router,
            Method::POST,
            "/ui/login",
            cookie,
            Some(&format!("csrf=guess&token={token}")),
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert!(refused.cookie("__Host-shepherd-session").is_none());
    }
    assert_eq!(sessions().await, 0);

    let cookie = log_in(&api.router, &token).await;
    let id = cookie.strip_prefix("__Host-shepherd-session=").unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_sha256 FROM console_sessions")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored, Sha256::digest(id.as_bytes()).to_vec());
    assert_ne!(stored, id.as_bytes());
    let inbox = send(&api.router, Method::GET, "/ui/", Some(&cookie), None).await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(
        inbox.text.contains("Signed in as <strong>bob</strong>"),
        "{}",
        inbox.text
    );
    assert_eq!(inbox.header(header::CACHE_CONTROL), "no-store");

    // Logging out needs the session's CSRF token; then the cookie no longer works.
    let without = send(
        &api.router,
        Method::POST,
        "/ui/logout",
        Some(&cookie),
        Some(""),
    )
    .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert_eq!(sessions().await, 1);
    let csrf = form_token(&inbox);
    let out = send(
        &api.router,
        Method::POST,
        "/ui/logout",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(sessions().await, 0);
    let after = send(&api.router, Method::GET, "/ui/", Some(&cookie), None).await;
    assert_eq!(after.header(header::LOCATION), "/ui/login");

    // Both ends of the session are in the audit trail, naming bob and the session's hash.
    let rows: Vec<(String, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT action, actor, resource_id, details FROM audit_log
          WHERE resource_type = 'console_session' ORDER BY id",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let hash = hex::encode(&stored);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("console.login", "bob")
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("console.logout", "bob")
    );
    assert!(rows.iter().all(|r| r.2 == hash), "{rows:?}");
    assert_eq!(rows[0].3["method"], "token");
}

#[sqlx::test(migrations = false)]
async fn what_the_rest_api_hides_the_console_hides(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 1).await;
    let api = api(&t.pool, ApiConfig::default()).await;
    let path = format!("/ui/tickets/{ticket}");

    // mallory has no bindings: the ticket does not exist for her, nor the audit log.
    let mallory = log_in(&api.router, api.sim.token("mallory").unwrap()).await;
    let hidden = send(&api.router, Method::GET, &path, Some(&mallory), None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert!(hidden.text.contains("No such ticket"), "{}", hidden.text);
    assert!(!hidden.text.contains("alice"), "{}", hidden.text);
    let audit = send(&api.router, Method::GET, "/ui/audit", Some(&mallory), None).await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN, "{}", audit.text);
    let inbox = send(&api.router, Method::GET, "/ui/", Some(&mallory), None).await;
    assert!(!inbox.text.contains(&ticket.to_string()));

    // bob may decide it: the page offers the preview and the decisions.
    let bob = log_in(&api.router, api.sim.token("bob").unwrap()).await;
    let page = send(&api.router, Method::GET, &path, Some(&bob), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("id=\"approve\"") && page.text.contains("id=\"reject\""));
    // A bad override is named on the page and approves nothing.
    let bad = send(
        &api.router,
        Method::GET,
        &format!("{path}?cpuRequestMillis=0"),
        Some(&bob),
        None,
    )
    .await;
    assert!(
        bad.text
            .contains("overrides.cpuRequestMillis: must be a whole number of at least 1"),
        "{}",
        bad.text
    );
    assert!(!bad.text.contains("id=\"approve\""));
    // A rejection needs a reason.
    let csrf = form_token(&page);
    let empty = send(
        &api.router,
        Method::POST,
        &format!("{path}/reject"),
        Some(&bob),
        Some(&format!("csrf={csrf}&reason=+")),
    )
    .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty.text.contains("invalid reason: must not be empty"),
        "{}",
        empty.text
    );
    let status: String = sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(status, "PendingApproval");

    // alice, the requester, may withdraw but not decide.
    let alice = log_in(&api.router, api.sim.token("alice").unwrap()).await;
    let hers = send(&api.router, Method::GET, &path, Some(&alice), None).await;
    assert!(hers.text.contains("id=\"cancel\""));
    assert!(!hers.text.contains("id=\"approve\"") && !hers.text.contains("id=\"reject\""));
}
