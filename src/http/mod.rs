//! HTTP surfaces of `shepherd run` (docs/architecture.md#processes-and-interfaces). Each module
//! builds an axum `Router`; the binary decides which to mount and where.

pub mod api;
mod cert_reload;
pub mod console;
pub mod metrics;
pub mod tls;
pub mod webhook;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Gives every request of `router` an id and a span: a well-formed `x-request-id` from
/// the client is kept (others are replaced by a new UUID), the response carries it back,
/// and the request's span (`http_request`) names the method, route template, path and id,
/// so every log line written while serving it does too.
pub fn with_request_ids(router: Router) -> Router {
    router
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_malformed_request_id))
}

/// The request id of a request that went through [`with_request_ids`].
pub fn request_id<B>(request: &axum::http::Request<B>) -> Option<&str> {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// A client's request id ends up in logs and audit rows: only short ids of letters,
/// digits and `-_.:/+=` are kept.
async fn drop_malformed_request_id(mut request: Request) -> Request {
    let well_formed = request_id(&request).is_some_and(|id| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
    });
    if !well_formed {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "http_request",
        method = %request.method(),
        route,
        path = request.uri().path(),
        request_id = request_id(request).unwrap_or_default(),
    )
}
