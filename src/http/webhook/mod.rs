//! The admission webhook (docs/architecture.md#identity-and-permissions,
//! docs/architecture.md#processes-and-interfaces).
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
//! [`crate::http::tls::Listener`] serves the router over TLS.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::{self, AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, GroupVersionKind, Status};
use serde_json::Value;

use crate::app::admission::{
    AdmissionInput, AdmissionOperation, AdmissionPolicy, Denial, StampRequest,
};
use crate::crd;
use crate::domain::identity::{self, Identity, KeyRing, ObjectKey, Stamp};
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

/// What the webhook's handlers share.
#[derive(Clone)]
pub struct WebhookState {
    keys: KeyRing,
    policy: Arc<dyn AdmissionPolicy>,
    policy_timeout: Duration,
}

impl WebhookState {
    /// `keys` sign identity stamps (from a Kubernetes Secret or files).
    pub fn new(keys: KeyRing, policy: Arc<dyn AdmissionPolicy>) -> Self {
        Self {
            keys,
            policy,
            policy_timeout: DEFAULT_POLICY_TIMEOUT,
        }
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
            .field("keys", &self.keys)
            .field("policy_timeout", &self.policy_timeout)
            .finish_non_exhaustive()
    }
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
        match mutation(&state, &request).await {
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
    guarded(state, what, async move { policy.check(&input).await }).await
}

/// `work` on its own task: a panic or an overrun of the policy timeout becomes a denial.
async fn guarded<T: Send + 'static>(
    state: &WebhookState,
    what: String,
    work: impl Future<Output = Result<T, Denial>> + Send + 'static,
) -> Result<T, Denial> {
    let task = tokio::spawn(work);
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

/// The identity patch for `request`, if any. On create the policy first records the
/// stamp's nonce (single-use) and, for an Approval, resolves its target.
async fn mutation(
    state: &WebhookState,
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
            let prepare = StampRequest {
                kind: kind.to_string(),
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
                username: requester.username.clone(),
                nonce: identity::new_nonce(),
                dry_run: request.dry_run,
                object: serde_json::to_value(object)
                    .map_err(|e| Denial::internal(format!("cannot read the object: {e}")))?,
            };
            let policy = Arc::clone(&state.policy);
            let what = describe(kind, namespace, name);
            let (prepare, approval_target) = guarded(state, what, async move {
                let target = policy.prepare_stamp(&prepare).await?;
                Ok((prepare, target))
            })
            .await?;
            let object_key = ObjectKey {
                kind,
                namespace,
                name,
            };
            let stamp = Stamp {
                identity: requester,
                nonce: prepare.nonce,
                approval_target,
            };
            tracing::debug!(object = %object_key, user = %stamp.identity.username, "stamping identity");
            Ok(Some(stamp_patch(
                object.metadata.annotations.as_ref(),
                identity::stamp(&state.keys, &stamp, &object_key),
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
    kind.group == crd::GROUP && STAMPED_KINDS.contains(&kind.kind.as_str())
}

/// What a policy is given, or `None` when no policy applies (another API group, CONNECT).
fn admission_input(
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Option<AdmissionInput>, Denial> {
    if request.kind.group != crd::GROUP {
        return Ok(None);
    }
    let operation = match request.operation {
        admission::Operation::Create => AdmissionOperation::Create,
        admission::Operation::Update => AdmissionOperation::Update,
        admission::Operation::Delete => AdmissionOperation::Delete,
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
    let old: BTreeMap<&str, &str> = crd::identity::PRESERVED
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
        crd::identity::PRESERVED
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

#[cfg(test)]
mod tests;
