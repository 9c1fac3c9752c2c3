//! The REST API `/api/v1`: tickets and decisions, inventory, audit and RBAC
//! administration, for the `kubectl shepherd` plugin and other tools. Callers authenticate
//! with a Kubernetes bearer token (`TokenReview`); the same permission rules as everywhere
//! else decide what they see and do. The OpenAPI 3.1 document is generated from the
//! handlers and types below ([`openapi`]) and served at `/api/v1/openapi.json`.

pub mod audit;
pub mod auth;
pub mod error;
pub mod inventory;
pub mod rbac;
pub mod tickets;

use crate::app::listings::{DEFAULT_PAGE, MAX_PAGE};
use auth::{RateLimit, TokenReviewer, UserRateLimiter};
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use error::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shepherd_types::api::paths;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Request bodies are small JSON documents.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub river: Arc<riverqueue::Client>,
    pub tokens: Arc<TokenReviewer>,
    pub limiter: Arc<UserRateLimiter>,
    /// How long a web console login lasts.
    pub session_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long an accepted token is trusted before asking the cluster again.
    pub token_cache_ttl: Duration,
    pub rate_limit: RateLimit,
    /// Audiences a bearer token must be valid for (TokenReview `spec.audiences`); empty:
    /// the management cluster's API server audiences.
    pub token_audiences: Vec<String>,
    /// How long a web console login lasts (`/ui/`), whatever the token's own lifetime.
    pub session_ttl: Duration,
}

/// A working day: an approver logs in once a morning.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token_cache_ttl: Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            token_audiences: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }
}

impl ApiState {
    /// `river` is the process's one insert-only River client (`jobs::inserter`).
    pub fn new(
        pool: PgPool,
        river: Arc<riverqueue::Client>,
        client: kube::Client,
        config: ApiConfig,
    ) -> Self {
        Self {
            river,
            pool,
            tokens: Arc::new(TokenReviewer::new(
                client,
                config.token_cache_ttl,
                config.token_audiences,
            )),
            limiter: Arc::new(UserRateLimiter::new(config.rate_limit)),
            session_ttl: config.session_ttl,
        }
    }
}

/// A page request: its size and where to continue. Cursors are opaque to callers
/// (base64url of the last row's key).
pub struct Paging<K> {
    pub limit: usize,
    pub after: Option<K>,
}

impl<K: DeserializeOwned> Paging<K> {
    pub fn parse(limit: Option<usize>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let after = cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "malformed cursor: pass nextCursor from the previous page unchanged",
                        )
                    })
            })
            .transpose()?;
        Ok(Self { limit, after })
    }
}

impl Paging<()> {
    pub fn cursor<K: Serialize>(key: Option<&K>) -> Option<String> {
        key.and_then(|k| serde_json::to_vec(k).ok())
            .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Kubernetes bearer token of the management cluster, checked with TokenReview",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "KubeVirt Shepherd API", description = "Tickets, approvals, inventory, audit and RBAC of KubeVirt Shepherd."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// Every endpoint, declared once: each handler's `#[utoipa::path]` (its method and its path
/// from `shepherd_types::api::paths`) makes both its route and its OpenAPI operation.
fn endpoints() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(inventory::whoami))
        .routes(routes!(inventory::console_login_link))
        .routes(routes!(tickets::list))
        .routes(routes!(tickets::get))
        .routes(routes!(tickets::preview))
        .routes(routes!(tickets::approve))
        .routes(routes!(tickets::reject))
        .routes(routes!(tickets::cancel))
        .routes(routes!(inventory::systems))
        .routes(routes!(inventory::system_services))
        .routes(routes!(inventory::services))
        .routes(routes!(inventory::vms))
        .routes(routes!(inventory::orphans))
        .routes(routes!(inventory::vm_snapshots))
        .routes(routes!(audit::query))
        .routes(routes!(audit::export))
        .routes(routes!(rbac::roles))
        .routes(routes!(rbac::bindings, rbac::create_binding))
        .routes(routes!(rbac::delete_binding))
}

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    endpoints().into_openapi()
}

/// The document as committed in `openapi/v1.json`.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().expect("the document serialises");
    text.push('\n');
    text
}

/// The REST API: every request has an id (`x-request-id`, kept from the client or made
/// up) that the response carries back and that every audit row written while serving it
/// records (`details.requestId`); each is counted and timed under its route template.
pub fn router(state: ApiState) -> Router {
    let (endpoints, doc) = endpoints().split_for_parts();
    let doc = Json(doc);
    let router = endpoints
        .route(paths::OPENAPI, get(move || async move { doc }))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no such endpoint",
                serde_json::Value::Null,
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(audit_request_id))
        .layer(middleware::from_fn(crate::http::metrics::track_api))
        .with_state(state);
    crate::http::with_request_ids(router)
}

/// Scopes the request with its id, for the audit rows it writes (REST API and console).
pub(crate) async fn audit_request_id(request: Request, next: Next) -> Response {
    match crate::http::request_id(&request).map(str::to_string) {
        Some(id) => crate::db::audit::with_request_id(id, next.run(request)).await,
        None => next.run(request).await,
    }
}
