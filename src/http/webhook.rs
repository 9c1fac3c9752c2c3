//! The admission webhook (DESIGN §3, §9).
//!
//! - `POST /mutate` stamps who created a System, Service, VmRequest, VmOperation or
//!   Approval: the API server's `userInfo`, signed with the identity key
//!   ([`crate::domain::identity`]). Whatever identity annotation the user wrote is replaced
//!   on create, and on update the old object's stamp is put back, so it never changes.
//! - `POST /validate` hands every request for a Shepherd kind to an [`AdmissionPolicy`]
//!   (references, permissions, deletion guards: implemented elsewhere) and turns its
//!   [`Denial`] or warnings into the AdmissionReview answer. It never allows by accident: a
//!   policy that fails, panics or takes too long yields a denial.
//!
//! [`serve`] runs the router over TLS from a certificate and key on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::{self, AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, GroupVersionKind, Status};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::app::AppError;
use crate::domain::identity::{self, Identity, ObjectKey};
use crate::http::metrics;

/// The kinds whose creator is stamped and signed on create.
pub const STAMPED_KINDS: [&str; 5] = ["System", "Service", "VmRequest", "VmOperation", "Approval"];

/// How long a policy may take before the request is denied. The API server's own webhook
/// timeout (`timeoutSeconds`, 10 s by default) should be longer, so the user reads our
/// message rather than a bare timeout.
pub const DEFAULT_POLICY_TIMEOUT: Duration = Duration::from_secs(8);

/// An AdmissionReview holds the object and the old object; each may be up to the API
/// server's 3 MiB request limit.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, connections get this long to finish the requests they are serving.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A boxed future: what [`AdmissionPolicy::check`] returns, so the trait stays
/// dyn-compatible without `async-trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The admission operations a policy sees (`CONNECT` never reaches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// One admission request of a Shepherd kind, as a policy needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionInput {
    /// The kind in `shepherd.kv-shepherd.io`, e.g. `VmRequest`. Requests for other API
    /// groups never reach a policy.
    pub kind: String,
    pub operation: Operation,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// E.g. `status` when the webhook is registered for a subresource.
    pub sub_resource: Option<String>,
    /// The API server will not persist the result; a policy must then have no side effects.
    pub dry_run: bool,
    /// The requester, from the API server's `userInfo`.
    pub identity: Identity,
    /// The object after mutation; `None` on delete.
    pub object: Option<Value>,
    /// The stored object on update and delete.
    pub old_object: Option<Value>,
}

/// Why a policy refuses a request. `reason` is a Kubernetes `StatusReason` (CamelCase);
/// `message` names the rule, the object and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct Denial {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl Denial {
    pub fn new(code: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// 400: the request itself is not well formed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404: a referenced object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    /// 409: the request conflicts with the current state (duplicates, live children).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "Conflict", message)
    }

    /// 422: a field breaks a rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 500: the check could not be made; the request is refused rather than let through.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
}

/// Use-case errors become denials; anything that is not the caller's fault (database, job
/// queue) is logged and refused as an internal error, never allowed.
impl From<AppError> for Denial {
    fn from(err: AppError) -> Self {
        match &err {
            AppError::NotFound { .. } => Self::not_found(err.to_string()),
            AppError::Conflict(_) => Self::conflict(err.to_string()),
            AppError::Invalid { .. } => Self::invalid(err.to_string()),
            AppError::Forbidden(_) => Self::forbidden(err.to_string()),
            _ => {
                tracing::error!(error = %err, "admission check failed");
                Self::internal(
                    "Shepherd could not complete its admission checks (internal error); \
                     retry, and tell the platform team if it persists",
                )
            }
        }
    }
}

/// The validating checks. `Ok` carries warnings for the client (may be empty).
pub trait AdmissionPolicy: Send + Sync + 'static {
    fn check<'a>(&'a self, input: &'a AdmissionInput)
    -> BoxFuture<'a, Result<Vec<String>, Denial>>;
}

/// What the webhook's handlers share.
#[derive(Clone)]
pub struct WebhookState {
    key: Arc<[u8]>,
    policy: Arc<dyn AdmissionPolicy>,
    policy_timeout: Duration,
}

impl WebhookState {
    /// `key` signs identity stamps (from a Kubernetes Secret); it must have at least
    /// [`identity::MIN_KEY_LEN`] bytes.
    pub fn new(
        key: impl Into<Arc<[u8]>>,
        policy: Arc<dyn AdmissionPolicy>,
    ) -> Result<Self, WebhookError> {
        let key = key.into();
        if key.len() < identity::MIN_KEY_LEN {
            return Err(WebhookError::WeakKey {
                len: key.len(),
                min: identity::MIN_KEY_LEN,
            });
        }
        Ok(Self {
            key,
            policy,
            policy_timeout: DEFAULT_POLICY_TIMEOUT,
        })
    }

    /// Replaces [`DEFAULT_POLICY_TIMEOUT`].
    pub fn with_policy_timeout(mut self, timeout: Duration) -> Self {
        self.policy_timeout = timeout;
        self
    }
}

impl fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookState")
            .field("key", &"<redacted>")
            .field("policy_timeout", &self.policy_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "the identity signing key has {len} bytes; it needs at least {min}: put {min} or more \
         random bytes in its Secret"
    )]
    WeakKey { len: usize, min: usize },
    #[error("cannot read the webhook certificate {}: {source}", .path.display())]
    Certificate { path: PathBuf, source: pem::Error },
    #[error("the webhook certificate file {} holds no CERTIFICATE block", .path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot read the webhook private key {}: {source}", .path.display())]
    PrivateKey { path: PathBuf, source: pem::Error },
    #[error(
        "the webhook certificate {} and private key {} cannot be used together: {source}",
        .cert.display(), .key.display()
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("the webhook cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// `POST /mutate` and `POST /validate`, with request ids and request spans
/// ([`super::with_request_ids`]); each answer is counted and timed
/// (`shepherd_webhook_requests_total`, `shepherd_webhook_request_duration_seconds`).
pub fn router(state: WebhookState) -> Router {
    super::with_request_ids(
        Router::new()
            .route("/mutate", post(mutate))
            .route("/validate", post(validate))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(state),
    )
}

/// The AdmissionReview as the handlers receive it: a body that is not one is answered by
/// axum's rejection (4xx), but counted first.
type Review = Result<Json<AdmissionReview<DynamicObject>>, JsonRejection>;

async fn mutate(State(state): State<WebhookState>, review: Review) -> Response {
    answer("mutate", review, |request| async move {
        match mutation(&state.key, &request) {
            Ok(None) => AdmissionResponse::from(&request),
            Ok(Some(patch)) => match AdmissionResponse::from(&request).with_patch(patch) {
                Ok(response) => response,
                Err(e) => denied(&request, Denial::internal(e.to_string())),
            },
            Err(denial) => denied(&request, denial),
        }
    })
    .await
}

async fn validate(State(state): State<WebhookState>, review: Review) -> Response {
    answer("validate", review, |request| async move {
        validation(&state, &request).await
    })
    .await
}

/// Unpacks the review, runs `decide` on its request and records the answer's metrics.
async fn answer<F, Fut>(endpoint: &'static str, review: Review, decide: F) -> Response
where
    F: FnOnce(AdmissionRequest<DynamicObject>) -> Fut,
    Fut: Future<Output = AdmissionResponse>,
{
    let started = Instant::now();
    let (operation, verdict, response) = match review {
        Err(rejection) => ("unknown", "invalid", rejection.into_response()),
        Ok(Json(review)) => match review.try_into() {
            Err(_) => (
                "unknown",
                "invalid",
                reply(AdmissionResponse::invalid(
                    "the AdmissionReview carries no request",
                )),
            ),
            Ok(request) => {
                let request: AdmissionRequest<DynamicObject> = request;
                let operation = operation_label(&request.operation);
                let response = decide(request).await;
                let verdict = if response.allowed {
                    "allowed"
                } else {
                    "denied"
                };
                (operation, verdict, reply(response))
            }
        },
    };
    metrics::record_admission(endpoint, operation, verdict, started.elapsed());
    response
}

fn operation_label(operation: &admission::Operation) -> &'static str {
    match operation {
        admission::Operation::Create => "CREATE",
        admission::Operation::Update => "UPDATE",
        admission::Operation::Delete => "DELETE",
        admission::Operation::Connect => "CONNECT",
    }
}

async fn validation(
    state: &WebhookState,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    match admission_input(request) {
        Ok(None) => AdmissionResponse::from(request),
        Ok(Some(input)) => match run_policy(state, input).await {
            Ok(warnings) => {
                let mut response = AdmissionResponse::from(request);
                if !warnings.is_empty() {
                    response.warnings = Some(warnings);
                }
                response
            }
            Err(denial) => denied(request, denial),
        },
        Err(denial) => denied(request, denial),
    }
}

/// Runs the policy on its own task, so that a panic or an overrun becomes a denial.
async fn run_policy(state: &WebhookState, input: AdmissionInput) -> Result<Vec<String>, Denial> {
    let policy = Arc::clone(&state.policy);
    let what = describe(&input.kind, input.namespace.as_deref(), &input.name);
    let task = tokio::spawn(async move { policy.check(&input).await });
    let abort = task.abort_handle();
    match tokio::time::timeout(state.policy_timeout, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join_error)) => {
            tracing::error!(object = %what, error = %join_error, "admission policy panicked");
            Err(Denial::internal(format!(
                "Shepherd could not check {what} (internal error); retry, and tell the \
                 platform team if it persists"
            )))
        }
        Err(_elapsed) => {
            abort.abort();
            tracing::error!(object = %what, timeout = ?state.policy_timeout, "admission policy timed out");
            Err(Denial::internal(format!(
                "Shepherd could not check {what} within {:?}; retry shortly",
                state.policy_timeout
            )))
        }
    }
}

/// The identity patch for `request`, if any. Pure but for the signature.
fn mutation(
    key: &[u8],
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Option<Patch>, Denial> {
    if !is_stamped(&request.kind) {
        return Ok(None);
    }
    let kind = request.kind.kind.as_str();
    match request.operation {
        admission::Operation::Create => {
            let object = request
                .object
                .as_ref()
                .ok_or_else(|| Denial::bad_request(format!("CREATE of a {kind} without object")))?;
            let name = non_empty(object.metadata.name.as_deref())
                .or(non_empty(Some(&request.name)))
                .ok_or_else(|| {
                    Denial::invalid(format!(
                        "{kind} has no metadata.name: Shepherd signs who created it together \
                         with its name, so generateName cannot be used; set metadata.name"
                    ))
                })?;
            let namespace = non_empty(request.namespace.as_deref())
                .or(non_empty(object.metadata.namespace.as_deref()));
            let requester = identity_of(&request.user_info);
            if requester.username.is_empty() {
                return Err(Denial::forbidden(format!(
                    "{}: the API server reported no username for this request, and Shepherd \
                     records who creates every {kind}; create it as an authenticated user",
                    describe(kind, namespace, name)
                )));
            }
            let object_key = ObjectKey {
                kind,
                namespace,
                name,
            };
            let stamp = identity::stamp(key, &requester, &object_key);
            tracing::debug!(object = %object_key, user = %requester.username, "stamping identity");
            Ok(Some(stamp_patch(
                object.metadata.annotations.as_ref(),
                stamp,
            )))
        }
        admission::Operation::Update => {
            let (Some(object), Some(old)) = (&request.object, &request.old_object) else {
                return Err(Denial::bad_request(format!(
                    "UPDATE of a {kind} without object and oldObject"
                )));
            };
            let patch = restore_patch(
                old.metadata.annotations.as_ref(),
                object.metadata.annotations.as_ref(),
            );
            Ok((!patch.0.is_empty()).then_some(patch))
        }
        admission::Operation::Delete | admission::Operation::Connect => Ok(None),
    }
}

fn is_stamped(kind: &GroupVersionKind) -> bool {
    kind.group == api::GROUP && STAMPED_KINDS.contains(&kind.kind.as_str())
}

/// What a policy is given, or `None` when no policy applies (another API group, CONNECT).
fn admission_input(
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Option<AdmissionInput>, Denial> {
    if request.kind.group != api::GROUP {
        return Ok(None);
    }
    let operation = match request.operation {
        admission::Operation::Create => Operation::Create,
        admission::Operation::Update => Operation::Update,
        admission::Operation::Delete => Operation::Delete,
        admission::Operation::Connect => return Ok(None),
    };
    let to_json = |object: &Option<DynamicObject>| {
        object
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Denial::internal(format!("cannot read the admitted object: {e}")))
    };
    let name = non_empty(Some(&request.name))
        .or_else(|| non_empty(request.object.as_ref()?.metadata.name.as_deref()))
        .or_else(|| non_empty(request.old_object.as_ref()?.metadata.name.as_deref()))
        .unwrap_or_default()
        .to_string();
    Ok(Some(AdmissionInput {
        kind: request.kind.kind.clone(),
        operation,
        namespace: non_empty(request.namespace.as_deref()).map(str::to_string),
        name,
        sub_resource: request.sub_resource.clone(),
        dry_run: request.dry_run,
        identity: identity_of(&request.user_info),
        object: to_json(&request.object)?,
        old_object: to_json(&request.old_object)?,
    }))
}

fn identity_of(user: &UserInfo) -> Identity {
    Identity {
        username: user.username.clone().unwrap_or_default(),
        uid: user.uid.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    ObjectKey {
        kind,
        namespace,
        name,
    }
    .to_string()
}

fn annotations_pointer() -> PointerBuf {
    PointerBuf::from_tokens(["metadata", "annotations"])
}

/// `/metadata/annotations/<name>`, with `/` escaped as `~1`.
fn annotation_pointer(name: &str) -> PointerBuf {
    PointerBuf::from_tokens(["metadata", "annotations", name])
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

/// Sets exactly the stamp's annotations, replacing any the user wrote (JSON Patch `add`
/// replaces an existing member) and keeping every other annotation.
fn stamp_patch(
    existing: Option<&BTreeMap<String, String>>,
    stamp: BTreeMap<String, String>,
) -> Patch {
    match existing {
        None => Patch(vec![add(annotations_pointer(), serde_json::json!(stamp))]),
        Some(_) => Patch(
            stamp
                .into_iter()
                .map(|(name, value)| add(annotation_pointer(&name), Value::String(value)))
                .collect(),
        ),
    }
}

/// Puts the old object's identity annotations back on the new one: values the user changed
/// or removed are restored, ones the user added to an unstamped object are removed.
fn restore_patch(
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> Patch {
    let old: BTreeMap<&str, &str> = api::identity::ALL
        .into_iter()
        .filter_map(|name| Some((name, old?.get(name)?.as_str())))
        .collect();
    let Some(new) = new else {
        return Patch(if old.is_empty() {
            Vec::new()
        } else {
            vec![add(annotations_pointer(), serde_json::json!(old))]
        });
    };
    Patch(
        api::identity::ALL
            .into_iter()
            .filter_map(|name| match (old.get(name), new.get(name)) {
                (Some(was), Some(is)) if was == is => None,
                (Some(was), _) => Some(add(annotation_pointer(name), Value::from(*was))),
                (None, Some(_)) => Some(PatchOperation::Remove(RemoveOperation {
                    path: annotation_pointer(name),
                })),
                (None, None) => None,
            })
            .collect(),
    )
}

fn denied<T: kube::Resource>(request: &AdmissionRequest<T>, denial: Denial) -> AdmissionResponse {
    // A code outside 4xx/5xx would read as success to some clients; the API server's own
    // default for a webhook denial is 403.
    let code = if (400..600).contains(&denial.code) {
        denial.code
    } else {
        403
    };
    tracing::info!(
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or(""),
        name = %request.name,
        user = request.user_info.username.as_deref().unwrap_or(""),
        code,
        reason = %denial.reason,
        message = %denial.message,
        "admission denied"
    );
    let mut response = AdmissionResponse::from(request).deny(&denial.message);
    response.result = Status::failure(&denial.message, &denial.reason).with_code(code);
    response
}

/// The AdmissionReview answer. kube serializes the patch bytes as an array of numbers;
/// Kubernetes' `[]byte` is a base64 string on the wire, so it is sent as one.
fn reply(mut response: AdmissionResponse) -> Response {
    let patch = response.patch.take();
    let mut review = match serde_json::to_value(response.into_review()) {
        Ok(review) => review,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an AdmissionReview");
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    if let Some(patch) = patch {
        review["response"]["patch"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    Json(review).into_response()
}

/// The rustls server configuration from PEM files: the certificate chain (leaf first) and
/// its private key (PKCS#8, PKCS#1 or SEC1). HTTP/2 and HTTP/1.1 are offered.
pub fn tls_config(cert_pem: &Path, key_pem: &Path) -> Result<rustls::ServerConfig, WebhookError> {
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| WebhookError::Certificate {
            path: cert_pem.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(WebhookError::NoCertificate {
            path: cert_pem.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|source| WebhookError::PrivateKey {
        path: key_pem.to_path_buf(),
        source,
    })?;
    let tls_error = |source| WebhookError::Tls {
        cert: cert_pem.to_path_buf(),
        key: key_pem.to_path_buf(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(tls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A bound TLS listener: [`TlsListener::bind`] reads the certificate and key first, so a
/// bad file is reported before the port is taken.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub async fn bind(
        addr: SocketAddr,
        cert_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
    ) -> Result<Self, WebhookError> {
        let config = tls_config(cert_pem.as_ref(), key_pem.as_ref())?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| WebhookError::Bind { addr, source })?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` completes, then lets open connections finish
    /// their requests (for a bounded time).
    pub async fn run(self, router: Router, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "admission webhook listening (TLS)");
        }
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let acceptor = self.acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "webhook TLS handshake timed out");
                        return;
                    }
                };
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::warn!("webhook connections still open after {DRAIN_TIMEOUT:?}; stopping");
            }
        }
    }
}

/// Serves `router` over TLS on `addr` until `shutdown` completes. The certificate and key
/// are PEM files (e.g. a mounted `kubernetes.io/tls` Secret).
pub async fn serve(
    addr: SocketAddr,
    cert_pem: impl AsRef<Path>,
    key_pem: impl AsRef<Path>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    TlsListener::bind(addr, cert_pem, key_pem)
        .await?
        .run(router, shutdown)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn apply(object: Value, patch: &Patch) -> Value {
        let mut object = object;
        json_patch::patch(&mut object, patch).expect("patch applies");
        object
    }

    #[test]
    fn stamped_kinds_are_the_api_kinds() {
        assert_eq!(
            STAMPED_KINDS,
            [
                api::System::kind(&()),
                api::Service::kind(&()),
                api::VmRequest::kind(&()),
                api::VmOperation::kind(&()),
                api::Approval::kind(&()),
            ]
        );
    }

    #[test]
    fn annotation_names_are_escaped_in_pointers() {
        assert_eq!(
            annotation_pointer(api::identity::USERNAME).as_str(),
            "/metadata/annotations/shepherd.kv-shepherd.io~1requested-by"
        );
    }

    #[test]
    fn stamping_creates_the_annotations_map_when_absent() {
        let stamp = map(&[(api::identity::USERNAME, "alice")]);
        let patched = apply(
            json!({"metadata": {"name": "x"}}),
            &stamp_patch(None, stamp),
        );
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({api::identity::USERNAME: "alice"})
        );
    }

    #[test]
    fn stamping_replaces_user_written_identity_and_keeps_other_annotations() {
        let existing = map(&[
            (api::identity::USERNAME, "admin"),
            ("team.example.com/cost-centre", "42"),
        ]);
        let object = json!({"metadata": {"annotations": existing}});
        let stamp = map(&[
            (api::identity::USERNAME, "alice"),
            (api::identity::UID, "u-1"),
        ]);
        let patched = apply(object, &stamp_patch(Some(&existing), stamp));
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({
                api::identity::USERNAME: "alice",
                api::identity::UID: "u-1",
                "team.example.com/cost-centre": "42",
            })
        );
    }

    #[test]
    fn restoring_puts_back_changed_and_removed_values_and_drops_added_ones() {
        let old = map(&[
            (api::identity::USERNAME, "alice"),
            (api::identity::UID, "u-1"),
            (api::identity::SIGNATURE, "abc"),
            ("keep", "old"),
        ]);
        let new = map(&[
            (api::identity::USERNAME, "mallory"),
            (api::identity::GROUPS, r#"["platform-admins"]"#),
            (api::identity::SIGNATURE, "abc"),
            ("keep", "new"),
        ]);
        let patch = restore_patch(Some(&old), Some(&new));
        let patched = apply(json!({"metadata": {"annotations": new}}), &patch);
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({
                api::identity::USERNAME: "alice",
                api::identity::UID: "u-1",
                api::identity::SIGNATURE: "abc",
                "keep": "new",
            })
        );
    }

    #[test]
    fn restoring_recreates_a_dropped_annotations_map() {
        let old = map(&[(api::identity::USERNAME, "alice"), ("other", "x")]);
        let patched = apply(json!({"metadata": {}}), &restore_patch(Some(&old), None));
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({api::identity::USERNAME: "alice"})
        );
    }

    #[test]
    fn restoring_an_unchanged_stamp_is_no_patch() {
        let old = map(&[(api::identity::USERNAME, "alice"), ("a", "1")]);
        let new = map(&[(api::identity::USERNAME, "alice"), ("a", "2")]);
        assert!(restore_patch(Some(&old), Some(&new)).0.is_empty());
        assert!(restore_patch(None, None).0.is_empty());
        assert!(restore_patch(None, Some(&map(&[("a", "1")]))).0.is_empty());
    }

    #[test]
    fn denials_from_use_case_errors_keep_their_meaning() {
        let cases = [
            (
                AppError::NotFound {
                    what: "System",
                    id: "billing".into(),
                },
                404,
                "NotFound",
            ),
            (AppError::Conflict("dup".into()), 409, "Conflict"),
            (
                AppError::Invalid {
                    field: "spec.diskGi".into(),
                    rule: "too big".into(),
                },
                422,
                "Invalid",
            ),
            (AppError::Forbidden("no".into()), 403, "Forbidden"),
            (
                AppError::Database(sqlx::Error::PoolTimedOut),
                500,
                "InternalError",
            ),
        ];
        for (err, code, reason) in cases {
            let denial = Denial::from(err);
            assert_eq!((denial.code, denial.reason.as_str()), (code, reason));
        }
    }

    #[test]
    fn a_short_key_is_refused() {
        struct Never;
        impl AdmissionPolicy for Never {
            fn check<'a>(
                &'a self,
                _: &'a AdmissionInput,
            ) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
                Box::pin(async { Err(Denial::forbidden("never")) })
            }
        }
        let err = WebhookState::new(vec![0u8; 31], Arc::new(Never)).unwrap_err();
        assert!(matches!(err, WebhookError::WeakKey { len: 31, min: 32 }));
        assert!(WebhookState::new(vec![0u8; 32], Arc::new(Never)).is_ok());
    }
}
