//! The REST API's error answer `{code, message, details}` and extractors whose rejections
//! use it, so a malformed body, query or path gets the same shape as every other error.

use crate::app::{AppError, ErrorKind};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, extract};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shepherd_types::api::ErrorBody;
use std::time::Duration;

/// An error answer with its HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, details: Value) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code_for(status).into(),
                message: message.into(),
                details,
            },
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, Value::Null)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message, Value::Null)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message, Value::Null)
    }

    /// 422 naming the field and the rule it breaks.
    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        let rule = rule.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid {field}: {rule}"),
            json!({"field": field, "rule": rule}),
        )
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this user; retry later",
            json!({"retryAfterSeconds": retry_after.as_secs().max(1)}),
        );
        e.retry_after = Some(retry_after);
        e
    }
}

/// The stable code of each status the API answers with.
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "invalid",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "internal",
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match (err.kind(), &err) {
            (_, AppError::NotFound { what, id }) => Self::new(
                StatusCode::NOT_FOUND,
                err.to_string(),
                json!({"kind": what, "name": id}),
            ),
            (_, AppError::Invalid { field, rule }) => Self::invalid(field, rule.clone()),
            (ErrorKind::Invalid, _) => Self::invalid(
                "request",
                "holds a value the database cannot store: text with a NUL character (U+0000) \
                 or a date outside the years 4713 BC to 294276 AD",
            ),
            (ErrorKind::Conflict, _) => {
                Self::new(StatusCode::CONFLICT, message_of(&err), Value::Null)
            }
            (ErrorKind::Forbidden, _) => {
                Self::new(StatusCode::FORBIDDEN, message_of(&err), Value::Null)
            }
            (ErrorKind::Unavailable, _) => {
                tracing::warn!(error = %err, "database unavailable");
                Self::unavailable("the database is unavailable; retry later")
            }
            _ => {
                // The details stay in the log: SQL and queue errors are not for callers.
                tracing::error!(error = %err, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log",
                    Value::Null,
                )
            }
        }
    }
}

/// The caller-facing message of a conflict or refusal: the text without its prefix.
fn message_of(err: &AppError) -> String {
    match err {
        AppError::Conflict(message) | AppError::Forbidden(message) => message.clone(),
        other => other.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(after) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A JSON body; syntax errors answer 400, well-formed JSON of the wrong shape 422.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |rule: String| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid body: {rule}"),
                json!({"field": "body", "rule": rule}),
            )
        };
        let value = match Json::<Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(JsonRejection::JsonDataError(e)) => return Err(invalid(e.body_text())),
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "malformed body: {}",
                    e.body_text()
                )));
            }
        };
        if let Some(path) = nul_in(&value, "") {
            return Err(ApiError::invalid(
                if path.is_empty() { "body" } else { &path[1..] },
                "must not contain a NUL character (U+0000)",
            ));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// Query parameters; unparsable values answer 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.query().unwrap_or_default()) {
            return Err(ApiError::bad_request(
                "malformed query: a value contains a NUL character (%00)",
            ));
        }
        extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("malformed query: {}", e.body_text()))
            })
    }
}

/// Path parameters; an id that does not parse answers 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(ApiError::bad_request(
                "malformed path: a segment contains a NUL character (%00)",
            ));
        }
        extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                ApiError::bad_request(format!("malformed path: {}", e.body_text()))
            })
    }
}

/// Whether a raw path or query carries a percent-encoded NUL, which PostgreSQL cannot store.
fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// The JSON pointer of the first string (or key) holding a NUL character, if any.
fn nul_in(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| at.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{at}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{at}/{k}");
            if k.contains('\0') {
                Some(here)
            } else {
                nul_in(v, &here)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_found_where_they_are() {
        assert!(has_encoded_nul("actor=a%00b"));
        assert!(!has_encoded_nul("actor=a%100"));
        assert_eq!(nul_in(&json!({"reason": "ok"}), ""), None);
        assert_eq!(
            nul_in(&json!({"subject": {"name": "a\u{0}b"}}), "").as_deref(),
            Some("/subject/name")
        );
        assert_eq!(nul_in(&json!(["x", "\u{0}"]), "").as_deref(), Some("/1"));
    }
}
