//! What the fuzz targets share: the fixed identity keys, an allow-all admission policy, one
//! Tokio runtime and a way to drive an axum router in process.
//!
//! Every target checks two things on every input: nothing panics, and no answer is a
//! server error (5xx). Each adds the properties of what it exercises (see its file).

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use shepherd::app::admission::{AdmissionInput, AdmissionPolicy, BoxFuture, Denial};
use shepherd::domain::identity::KeyRing;
use tower::ServiceExt;

/// The identity key the targets sign with (the seed corpus `identity_stamp` carries stamps
/// made with it: `fuzz/seeds.py` writes them).
pub const KEY: &[u8] = b"fuzz-identity-key-fuzz-identity!";
/// A retired key: still trusted as `previous` after a rotation.
pub const OLD_KEY: &[u8] = b"fuzz-identity-key-retired-key-0!";
/// A key no ring of the targets trusts.
pub const FOREIGN_KEY: &[u8] = b"fuzz-identity-key-not-trusted-0!";

/// A ring whose current key is `current` and that still trusts `previous`.
pub fn ring_of(current: &[u8], previous: &[&[u8]]) -> KeyRing {
    KeyRing::new(
        current.to_vec(),
        previous.iter().map(|k| k.to_vec()).collect(),
    )
    .expect("the fuzz keys are long enough")
}

/// The ring the webhook signs with.
pub fn ring() -> KeyRing {
    ring_of(KEY, &[])
}

/// Allows everything: the webhook's own parsing and stamping is what is fuzzed.
pub struct AllowAll;

impl AdmissionPolicy for AllowAll {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The admission webhook as `shepherd run` serves it, with [`AllowAll`].
pub fn webhook() -> Router {
    shepherd::http::webhook::router(shepherd::http::webhook::WebhookState::new(
        ring(),
        Arc::new(AllowAll),
    ))
}

/// One current-thread runtime for all inputs of a process (time enabled: the webhook
/// bounds its policy with a timeout).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime")
    })
}

/// Sends `request` to `router` and returns the status and body. Panics (a finding) when
/// the answer is a server error.
pub fn call(router: &Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let what = format!("{} {}", request.method(), request.uri());
    runtime().block_on(async {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("axum routers are infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body of an in-process answer");
        assert!(
            !status.is_server_error(),
            "{what} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        (status, body.to_vec())
    })
}
