//! Static bearer-token authentication (like `--token-auth-file`) and `TokenReview`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A user of a simulated cluster and the token that authenticates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Generated when empty.
    #[serde(default)]
    pub token: String,
}

impl User {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token: String::new(),
        }
    }

    /// The cluster administrator every simulated cluster has.
    pub fn admin() -> Self {
        Self::new("admin", &["system:masters"])
    }

    /// `userInfo` as sent in `AdmissionReview` and `TokenReview`.
    pub fn user_info(&self) -> Value {
        let mut groups = self.groups.clone();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        json!({"username": self.name, "uid": format!("uid-{}", self.name), "groups": groups})
    }

    /// Internal controllers of the simulator (garbage collector, KubeVirt).
    pub fn system(name: &str) -> Self {
        User {
            name: name.into(),
            groups: vec!["system:masters".into()],
            token: String::new(),
        }
    }
}

pub fn random_token() -> String {
    format!("sim-{}", uuid::Uuid::new_v4().simple())
}

/// Finds the user for an `Authorization: Bearer` header value.
pub fn authenticate<'a>(users: &'a [User], header: Option<&str>) -> Option<&'a User> {
    let token = header?.strip_prefix("Bearer ")?.trim();
    users.iter().find(|u| !token.is_empty() && u.token == token)
}

/// Answers a `TokenReview` (authentication.k8s.io/v1) for the cluster's tokens.
pub fn token_review(users: &[User], review: &Value) -> Value {
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let status = match users.iter().find(|u| !token.is_empty() && u.token == token) {
        Some(u) => {
            json!({"authenticated": true, "user": u.user_info(), "audiences": review["spec"]["audiences"].clone()})
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    let mut out = review.clone();
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenReview");
    if out["metadata"].is_null() {
        out["metadata"] = json!({});
    }
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = status;
    out
}
