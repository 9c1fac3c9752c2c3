//! ServiceAccount tokens: `TokenRequest` (`POST .../serviceaccounts/<name>/token`, what
//! `kubectl create token` does) issues bound tokens at run time. They authenticate as
//! `system:serviceaccount:<ns>:<name>` while the ServiceAccount (same uid) exists and the
//! token has not expired, for the API server's audience only unless asked otherwise;
//! `TokenReview` answers for them and for the cluster's static user tokens.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::auth::{self, User};
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::objects::Core;
use crate::resources::ResKey;
use crate::store::meta_str;

/// The API server's own audience (`--api-audiences`), as on kind clusters.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
const DEFAULT_EXPIRATION: i64 = 3600;

#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    audiences: Vec<String>,
    expires: DateTime<Utc>,
}

/// Tokens issued at run time.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: RwLock<HashMap<String, Issued>>,
}

fn sa_key() -> ResKey {
    ResKey {
        group: String::new(),
        plural: "serviceaccounts".into(),
    }
}

/// The user a ServiceAccount authenticates as.
pub fn service_account_user(namespace: &str, name: &str) -> User {
    User {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
        token: String::new(),
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(v).unwrap_or_default())
}

impl Tokens {
    /// Issues a token for an existing ServiceAccount; returns it and its expiry.
    pub fn issue(
        &self,
        core: &Core,
        namespace: &str,
        name: &str,
        audiences: Vec<String>,
        expiration_seconds: i64,
    ) -> ApiResult<(String, DateTime<Utc>)> {
        let sa = core
            .store
            .get(&sa_key(), namespace, name)
            .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
        let uid = meta_str(&sa, "uid").to_string();
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(expiration_seconds);
        // Shaped like a projected token (a JWT), though only this server can check it.
        let claims = json!({
            "aud": audiences, "exp": expires.timestamp(), "iat": now.timestamp(),
            "nbf": now.timestamp(), "iss": API_AUDIENCE, "jti": uuid::Uuid::new_v4().to_string(),
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        });
        let token = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "RS256", "kid": "shepherd-sim"})),
            b64(&claims),
            uuid::Uuid::new_v4().simple()
        );
        self.issued
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                token.clone(),
                Issued {
                    namespace: namespace.into(),
                    name: name.into(),
                    uid,
                    audiences,
                    expires,
                },
            );
        Ok((token, expires))
    }

    /// The user of a valid issued token and the audiences (of `wanted`) it is valid for.
    fn check(
        &self,
        core: &Core,
        token: &str,
        wanted: &[String],
    ) -> Option<Result<(User, Vec<String>), String>> {
        let issued = self
            .issued
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()?;
        if issued.expires < Utc::now() {
            return Some(Err("service account token has expired".into()));
        }
        let live = core
            .store
            .get(&sa_key(), &issued.namespace, &issued.name)
            .is_some_and(|sa| meta_str(&sa, "uid") == issued.uid);
        if !live {
            return Some(Err(format!(
                "service account {}/{} has been deleted",
                issued.namespace, issued.name
            )));
        }
        let auds: Vec<String> = issued
            .audiences
            .iter()
            .filter(|a| wanted.contains(a))
            .cloned()
            .collect();
        if auds.is_empty() {
            return Some(Err("token audiences is invalid".into()));
        }
        Some(Ok((
            service_account_user(&issued.namespace, &issued.name),
            auds,
        )))
    }
}

/// Finds the user for an `Authorization: Bearer` header: a static user token, or an
/// issued ServiceAccount token valid for the API server's audience.
pub fn authenticate(core: &Core, header: Option<&str>) -> Option<User> {
    if let Some(u) = auth::authenticate(&core.users, header) {
        return Some(u.clone());
    }
    let token = header?.strip_prefix("Bearer ")?.trim();
    match core
        .tokens
        .check(core, token, &[API_AUDIENCE.to_string()])?
    {
        Ok((mut user, _)) => {
            user.token = token.to_string();
            Some(user)
        }
        Err(_) => None,
    }
}

/// Answers a `TokenReview` for static and issued tokens.
pub fn token_review(core: &Core, review: &Value) -> Value {
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let wanted: Vec<String> = review["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![API_AUDIENCE.to_string()]);
    match core.tokens.check(core, token, &wanted) {
        None => auth::token_review(&core.users, review),
        Some(result) => {
            let status = match result {
                Ok((u, auds)) => {
                    json!({"authenticated": true, "user": u.user_info(), "audiences": auds})
                }
                Err(e) => json!({"authenticated": false, "error": e}),
            };
            let mut out = review.clone();
            out["apiVersion"] = json!("authentication.k8s.io/v1");
            out["kind"] = json!("TokenReview");
            if !out["metadata"].is_object() {
                out["metadata"] = json!({});
            }
            out["metadata"]["creationTimestamp"] = Value::Null;
            out["status"] = status;
            out
        }
    }
}

/// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` with a `TokenRequest`.
pub fn token_request(core: &Core, namespace: &str, name: &str, body: &Value) -> ApiResult<Value> {
    let spec = &body["spec"];
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if audiences.is_empty() {
        audiences = vec![API_AUDIENCE.to_string()];
    }
    let secs = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    let invalid = |detail: &str| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![FieldError::new(
                K::Invalid,
                "spec.expirationSeconds",
                Some(secs.to_string()),
                detail,
            )],
        )
    };
    if secs < 600 {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if secs > 1 << 32 {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let (token, expires) = core
        .tokens
        .issue(core, namespace, name, audiences.clone(), secs)?;
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": secs, "boundObjectRef": spec["boundObjectRef"].clone()},
        "status": {"token": token, "expirationTimestamp": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
    }))
}
