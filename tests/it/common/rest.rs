//! The REST API (and the web console beside it) in process, with bearer tokens of a simulated management cluster (checked
//! by its TokenReview): users alice, bob (approver), mallory (no bindings), root
//! (platform-admins group) and sam (bound by each test that uses him).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shepherd::http::api::{ApiConfig, ApiState, router};
use shepherd_sim::{ClusterConfig, SimCluster, User};
use sqlx::PgPool;
use tower::ServiceExt;

pub struct Api {
    pub sim: SimCluster,
    pub router: Router,
}

pub async fn api(pool: &PgPool, config: ApiConfig) -> Api {
    let sim = SimCluster::start(
        ClusterConfig::new("mgmt")
            .with_user(User::new("alice", &["dev"]))
            .with_user(User::new("bob", &["approvers"]))
            .with_user(User::new("mallory", &[]))
            .with_user(User::new("root", &["platform-admins"]))
            .with_user(User::new("sam", &[])),
    )
    .await
    .unwrap();
    let client = sim.kube_client("admin").unwrap();
    let state = ApiState::new(pool.clone(), crate::common::river(pool), client, config);
    // As `shepherd run` serves them: the REST API and the web console on one listener.
    let router = router(state.clone()).merge(shepherd::http::console::router(state));
    Api { sim, router }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The `x-request-id` the answer carries.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .get("x-request-id")
            .map(|v| v.to_str().unwrap())
    }
}

impl Api {
    pub async fn call(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Answer {
        self.call_with_id(user, method, path, None, body).await
    }

    /// `call`, sending `x-request-id` when given.
    pub async fn call_with_id(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let token = user.map(|user| self.sim.token(user).unwrap().to_string());
        self.send(token.as_deref(), method, path, request_id, body)
            .await
    }

    /// A call with `token` as the bearer token, whoever it belongs to (if anybody).
    pub async fn call_with_token(&self, token: &str, method: Method, path: &str) -> Answer {
        self.send(Some(token), method, path, None, None).await
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    pub async fn get(&self, user: &str, path: &str) -> Answer {
        self.call(Some(user), Method::GET, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> Answer {
        self.call(Some(user), Method::POST, path, Some(&body.to_string()))
            .await
    }
}
