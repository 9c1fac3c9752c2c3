//! The web console `/ui/`: server-rendered pages for approvers and requesters on the REST
//! API's listener. A login pastes a Kubernetes bearer token, checked with TokenReview like
//! every REST call, and opens a server-side session (`app::sessions`); from then on each
//! page calls the same use cases and listings as the REST API, so permissions and visibility
//! are the same (what the caller may not see is not found). Every asset is served by the
//! binary; every form carries the session's CSRF token; pages are never cached and never
//! framed, and the Content-Security-Policy allows no inline script or style.

mod pages;
mod session;
mod view;

use crate::app::{AppError, ErrorKind};
use crate::http::api::ApiState;
use crate::http::api::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

/// Where the console lives on the REST API's listener.
pub const PREFIX: &str = "/ui";

/// Forms are a few short fields.
const BODY_LIMIT: usize = 16 * 1024;

/// Scripts and styles only from the binary's own assets, forms only to the console, no
/// framing, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The console's routes; the caller merges them into the REST API's router.
pub fn router(state: ApiState) -> Router {
    let router = Router::new()
        .route(PREFIX, get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::inbox))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/requests", get(pages::my_requests))
        .route("/ui/tickets/{id}", get(pages::ticket))
        .route("/ui/tickets/{id}/approve", post(pages::approve))
        .route("/ui/tickets/{id}/reject", post(pages::reject))
        .route("/ui/tickets/{id}/cancel", post(pages::cancel))
        .route("/ui/vms", get(pages::vms))
        .route("/ui/vms/{name}/operations", post(pages::start_operation))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/audit/export", get(pages::audit_export))
        .route("/ui/assets/console.css", get(view::stylesheet))
        .route("/ui/assets/console.js", get(view::script))
        .route("/ui/{*rest}", axum::routing::any(not_found))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(crate::http::metrics::track_api))
        .layer(middleware::from_fn(crate::http::api::audit_request_id))
        .with_state(state);
    crate::http::with_request_ids(router)
}

async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("No such page.".into())
}

/// Headers every console answer carries; pages (everything but the assets) are not stored
/// by the browser or any cache, since they show what one user may see.
async fn security_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let cache = if asset {
        "public, max-age=300"
    } else {
        "no-store"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// What a console request can fail with, answered as a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("{}", .0.body.message)]
    Api(ApiError),
    #[error("{0}")]
    NotFound(String),
    /// A form without the session's CSRF token, or one sent from another site.
    #[error(
        "refused: this form did not carry the console's CSRF token (it was sent from another \
         site, or the page is stale). Reload the page and try again."
    )]
    Csrf,
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::App(e) => match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ConsoleError::Api(e) => e.status,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
        }
    }

    /// What the user reads: the platform's own failures only name themselves (details go
    /// to the log).
    pub fn message(&self) -> String {
        match self {
            ConsoleError::App(e) if !e.kind().is_callers() => {
                if e.kind() == ErrorKind::Internal {
                    tracing::error!(error = %e, "console request failed");
                }
                match e.kind() {
                    ErrorKind::Unavailable => {
                        "The database cannot be reached right now; try again shortly.".into()
                    }
                    _ => "Something went wrong on the platform's side; it was logged.".into(),
                }
            }
            ConsoleError::App(AppError::NotFound { what, .. }) => format!("No such {what}."),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, view::error_page(status, &self.message())).into_response()
    }
}
