//! `/metrics` on the health address of an in-process `shepherd run` (REST API and health
//! over plain HTTP, a simulated management cluster for TokenReview, a fresh database):
//! every family of ours is there with its type, labels and conventional name, routes are
//! templates, the database gauges follow the database, and a database that cannot be read
//! still leaves a scrape with `shepherd_database_up 0`.

use crate::common::setup;
use crate::common::world::pending;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use shepherd::app::admission::{
    AdmissionInput, AdmissionOperation as Operation, AdmissionPolicy, BoxFuture, Denial,
};
use shepherd::controller::lease::LeaseConfig;
use shepherd::http::api::ApiConfig;
use shepherd::http::webhook::{self, WebhookState};
use shepherd::run::{ApiOptions, RunOptions};
use shepherd_sim::{ClusterConfig, SimCluster, User};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed text exposition.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                out.types.insert(name.into(), kind.into());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                out.helps.insert(name.into(), help.into());
            } else if !line.starts_with('#') {
                out.samples.push(parse_sample(line));
            }
        }
        out
    }

    /// Samples of `name` whose labels include every pair of `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        let found = self.find(name, with);
        assert_eq!(found.len(), 1, "one {name}{with:?}, found {found:?}");
        found[0].value
    }

    fn assert_type(&self, name: &str, kind: &str) {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}"
        );
        assert!(self.helps.contains_key(name), "# HELP of {name}");
    }

    /// The label names of every sample of a counter or gauge `name` (of a histogram's
    /// `_count`), which must be the same on all of them.
    fn label_names(&self, name: &str) -> Vec<String> {
        let sample_name = match self.types.get(name).map(String::as_str) {
            Some("histogram") => format!("{name}_count"),
            _ => name.to_string(),
        };
        let samples = self.find(&sample_name, &[]);
        assert!(!samples.is_empty(), "no sample of {name}");
        let names: Vec<String> = samples[0].labels.keys().cloned().collect();
        for s in &samples {
            assert_eq!(s.labels.keys().cloned().collect::<Vec<_>>(), names, "{s:?}");
        }
        names
    }
}

/// `name{k="v",...} value`, with escapes and braces inside quoted values.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap();
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().expect("labels end with }");
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().expect("closing quote").1 {
                            '\\' => value.push(chars.next().unwrap().1),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.trim().split(' ').next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

/// One HTTP/1.1 request to `addr`; (status, body).
async fn http(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn scrape(addr: SocketAddr) -> (String, Exposition) {
    let (status, text) = http(addr, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let parsed = Exposition::parse(&text);
    (text, parsed)
}

/// Allows everything but deletions.
struct NoDeletes;

impl AdmissionPolicy for NoDeletes {
    fn check<'a>(
        &'a self,
        input: &'a AdmissionInput,
    ) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        let outcome = match input.operation {
            Operation::Delete => Err(Denial::forbidden("no deletions in this test")),
            _ => Ok(Vec::new()),
        };
        Box::pin(async move { outcome })
    }
}

fn system_review(operation: &str) -> Value {
    let object = json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1", "kind": "System",
        "metadata": {"name": "shop"}, "spec": {"description": "the shop"},
    });
    let gvk = json!({"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "kind": "System"});
    let gvr =
        json!({"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "resource": "systems"});
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": Uuid::new_v4().to_string(),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": "shop", "operation": operation,
            "userInfo": {"username": "alice", "uid": "u-1", "groups": ["dev"]},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": if operation == "CREATE" { Value::Null } else { object },
            "dryRun": false,
        },
    })
}

async fn admit(router: &axum::Router, path: &str, review: &Value) -> Value {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(review.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
}

#[sqlx::test(migrations = false)]
async fn metrics_cover_requests_admission_the_database_and_the_process(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let ticket = pending(&t.pool, 2).await;
    let sim =
        SimCluster::start(ClusterConfig::new("mgmt").with_user(User::new("bob", &["approvers"])))
            .await
            .unwrap();
    let opts = RunOptions {
        webhook: None,
        api: Some(ApiOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            config: ApiConfig::default(),
        }),
        health_addr: Some("127.0.0.1:0".parse().unwrap()),
        controllers: false,
        lease: LeaseConfig::new(
            "kubevirt-shepherd",
            "kubevirt-shepherd-controller",
            "metrics",
        ),
        workers: None,
        cluster_write_concurrency: 5,
        audit_anchor_interval: Duration::from_secs(1),
    };
    let running = shepherd::run::start(
        opts,
        crate::common::e2e::pools(&t.url),
        sim.kube_client("admin").unwrap(),
        crate::common::e2e::keys(),
    )
    .await
    .unwrap();
    let (api, health) = (running.api_addr.unwrap(), running.health_addr.unwrap());
    let bob = sim.token("bob").unwrap().to_string();

    // The REST API: a ticket (twice), one that does not exist, no token, no such route.
    let path = format!("/api/v1/tickets/{ticket}");
    for _ in 0..2 {
        let (status, text) = http(api, Method::GET, &path, Some(&bob), None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let missing = format!("/api/v1/tickets/{}", Uuid::new_v4());
    let (status, _) = http(api, Method::GET, &missing, Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = http(api, Method::GET, "/api/v1/whoami", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = http(api, Method::GET, "/api/v1/no/such/thing", Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The webhook (in process; the recorder is the process's): allowed, denied, invalid.
    let hook = webhook::router(WebhookState::new(
        crate::common::e2e::keys(),
        Arc::new(NoDeletes),
    ));
    assert_eq!(
        admit(&hook, "/mutate", &system_review("CREATE")).await["allowed"],
        true
    );
    assert_eq!(
        admit(&hook, "/validate", &system_review("CREATE")).await["allowed"],
        true
    );
    assert_eq!(
        admit(&hook, "/validate", &system_review("DELETE")).await["allowed"],
        false
    );
    let empty = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"});
    assert_eq!(admit(&hook, "/validate", &empty).await["allowed"], false);

    let (text, m) = scrape(health).await;

    // Names follow the conventions; every family of ours is described.
    for (name, kind) in &m.types {
        assert!(
            name.starts_with("shepherd_") || name.starts_with("process_"),
            "{name}"
        );
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "histogram {name}"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
            other => panic!("{name} is a {other}"),
        }
    }
    for (name, kind, labels) in [
        (
            "shepherd_api_requests_total",
            "counter",
            &["method", "route", "status"][..],
        ),
        (
            "shepherd_api_request_duration_seconds",
            "histogram",
            &["method", "route"],
        ),
        (
            "shepherd_webhook_requests_total",
            "counter",
            &["endpoint", "operation", "verdict"],
        ),
        (
            "shepherd_webhook_request_duration_seconds",
            "histogram",
            &["endpoint", "operation", "verdict"],
        ),
        ("shepherd_tickets_pending", "gauge", &["environment"]),
        ("shepherd_cluster_health", "gauge", &["cluster", "health"]),
        ("shepherd_audit_log_rows", "gauge", &[]),
        ("shepherd_database_up", "gauge", &[]),
    ] {
        m.assert_type(name, kind);
        assert_eq!(m.label_names(name), labels, "labels of {name}");
    }

    // Routes are templates, never concrete ids; what no route matched is `unmatched`.
    let ticket_route = [("route", "/api/v1/tickets/{id}"), ("method", "GET")];
    assert!(
        m.value(
            "shepherd_api_requests_total",
            &[ticket_route[0], ticket_route[1], ("status", "200")]
        ) >= 2.0
    );
    assert!(
        m.value(
            "shepherd_api_requests_total",
            &[ticket_route[0], ticket_route[1], ("status", "404")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "shepherd_api_requests_total",
            &[("route", "/api/v1/whoami"), ("status", "401")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "shepherd_api_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        !text.contains(&ticket.to_string()),
        "a concrete id leaked:\n{text}"
    );

    // Durations are real histograms: buckets up to +Inf, a sum and a count.
    let buckets = m.find(
        "shepherd_api_request_duration_seconds_bucket",
        &ticket_route,
    );
    assert!(buckets.len() > 5, "{buckets:?}");
    let inf = m.value(
        "shepherd_api_request_duration_seconds_bucket",
        &[ticket_route[0], ticket_route[1], ("le", "+Inf")],
    );
    assert_eq!(
        inf,
        m.value("shepherd_api_request_duration_seconds_count", &ticket_route)
    );
    assert!(inf >= 3.0);
    m.value("shepherd_api_request_duration_seconds_sum", &ticket_route);
    assert!(
        !m.find(
            "shepherd_webhook_request_duration_seconds_bucket",
            &[("le", "0.001")]
        )
        .is_empty()
    );

    // Admission by endpoint, operation and verdict.
    for (endpoint, operation, verdict) in [
        ("mutate", "CREATE", "allowed"),
        ("validate", "CREATE", "allowed"),
        ("validate", "DELETE", "denied"),
        ("validate", "unknown", "invalid"),
    ] {
        let with = [
            ("endpoint", endpoint),
            ("operation", operation),
            ("verdict", verdict),
        ];
        assert!(
            m.value("shepherd_webhook_requests_total", &with) >= 1.0,
            "{with:?}"
        );
        assert!(
            m.value("shepherd_webhook_request_duration_seconds_count", &with) >= 1.0,
            "{with:?}"
        );
    }

    // The database gauges: one pending test ticket, the clusters of `pending` (probed
    // healthy), the audit chain's size, no queued job yet.
    assert_eq!(m.value("shepherd_database_up", &[]), 1.0);
    assert_eq!(
        m.value("shepherd_tickets_pending", &[("environment", "test")]),
        1.0
    );
    assert_eq!(
        m.value("shepherd_tickets_pending", &[("environment", "prod")]),
        0.0
    );
    for cluster in ["test-1", "test-2", "prod-1"] {
        let c = ("cluster", cluster);
        for (health, value) in [
            ("Healthy", 1.0),
            ("Unknown", 0.0),
            ("Degraded", 0.0),
            ("Unreachable", 0.0),
        ] {
            assert_eq!(
                m.value("shepherd_cluster_health", &[c, ("health", health)]),
                value,
                "{cluster} {health}"
            );
        }
    }
    let audit_rows: i64 = sqlx::query_scalar("SELECT row_count FROM audit_chain_head")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert!(audit_rows > 0);
    assert_eq!(m.value("shepherd_audit_log_rows", &[]), audit_rows as f64);
    assert!(m.find("shepherd_job_queue_depth", &[]).is_empty(), "{text}");

    // Process metrics from metrics-process.
    m.assert_type("process_cpu_seconds_total", "counter");
    m.assert_type("process_resident_memory_bytes", "gauge");
    assert!(m.value("process_resident_memory_bytes", &[]) > 0.0);

    // bob approves (two provisioning jobs wait: no workers here), and a test-2 probe says
    // Healthy: the next scrape follows.
    let (status, text) = http(
        api,
        Method::POST,
        &format!("{path}/approve"),
        Some(&bob),
        Some(json!({"reason": "ok"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    sqlx::query("UPDATE clusters SET health = 'Healthy' WHERE name = 'test-2'")
        .execute(&t.pool)
        .await
        .unwrap();
    let (text, m) = scrape(health).await;
    assert_eq!(
        m.value("shepherd_tickets_pending", &[("environment", "test")]),
        0.0
    );
    m.assert_type("shepherd_job_queue_depth", "gauge");
    assert_eq!(
        m.label_names("shepherd_job_queue_depth"),
        ["kind", "queue", "state"]
    );
    let queued: f64 = m
        .find(
            "shepherd_job_queue_depth",
            &[("kind", "vm_provision"), ("state", "available")],
        )
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(queued, 2.0, "{text}");
    let test2 = ("cluster", "test-2");
    assert_eq!(
        m.value("shepherd_cluster_health", &[test2, ("health", "Healthy")]),
        1.0
    );
    assert_eq!(
        m.value("shepherd_cluster_health", &[test2, ("health", "Unknown")]),
        0.0
    );
    let audit_rows: i64 = sqlx::query_scalar("SELECT row_count FROM audit_chain_head")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(m.value("shepherd_audit_log_rows", &[]), audit_rows as f64);
    assert!(
        m.value(
            "shepherd_api_requests_total",
            &[
                ("route", "/api/v1/tickets/{id}/approve"),
                ("method", "POST"),
                ("status", "202")
            ]
        ) >= 1.0
    );

    // A database that cannot be reached: the scrape still answers, says so, and keeps
    // the rest (process and request metrics).
    let unreachable = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://shepherd@127.0.0.1:1/nowhere")
        .unwrap();
    let response = shepherd::run::health_router(unreachable)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let down = Exposition::parse(&String::from_utf8_lossy(&bytes));
    assert_eq!(down.value("shepherd_database_up", &[]), 0.0);
    assert!(down.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(!down.find("shepherd_api_requests_total", &[]).is_empty());

    running.stop().await;
}
