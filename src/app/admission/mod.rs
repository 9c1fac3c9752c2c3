//! Admission: what a validating check sees ([`AdmissionInput`]), how it refuses
//! ([`Denial`]) and the checks themselves ([`ShepherdPolicy`]). The webhook (`http::webhook`)
//! only translates AdmissionReviews to and from these types.

mod policy;

pub use policy::ShepherdPolicy;

use super::{AppError, ErrorKind};
use crate::domain::identity::{ApprovalTarget, Identity};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A boxed future: what [`AdmissionPolicy::check`] returns, so the trait stays
/// dyn-compatible without `async-trait`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The admission operations a policy sees (`CONNECT` never reaches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionOperation {
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
    pub operation: AdmissionOperation,
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
        match err.kind() {
            ErrorKind::NotFound => Self::not_found(err.to_string()),
            ErrorKind::Conflict => Self::conflict(err.to_string()),
            ErrorKind::Invalid => Self::invalid(err.to_string()),
            ErrorKind::Forbidden => Self::forbidden(err.to_string()),
            ErrorKind::Unavailable | ErrorKind::Internal => {
                tracing::error!(error = %err, "admission check failed");
                Self::internal(
                    "Shepherd could not complete its admission checks (internal error); \
                     retry, and tell the platform team if it persists",
                )
            }
        }
    }
}

/// A create the mutating webhook is about to stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct StampRequest {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub username: String,
    /// The stamp's single-use nonce, to be recorded before it is signed.
    pub nonce: String,
    /// Nothing is persisted: record nothing.
    pub dry_run: bool,
    pub object: Value,
}

/// The validating checks. `Ok` carries warnings for the client (may be empty).
pub trait AdmissionPolicy: Send + Sync + 'static {
    fn check<'a>(&'a self, input: &'a AdmissionInput)
    -> BoxFuture<'a, Result<Vec<String>, Denial>>;

    /// Before a create is stamped: record the nonce and, for an Approval, resolve the
    /// target it decides on. By default nothing is recorded and no target is bound (the
    /// reconciler then refuses Approvals and reused nonces fail closed).
    fn prepare_stamp<'a>(
        &'a self,
        _request: &'a StampRequest,
    ) -> BoxFuture<'a, Result<Option<ApprovalTarget>, Denial>> {
        Box::pin(async { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
