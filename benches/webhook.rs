//! The admission webhook under load: p50 and p99 latency of `/validate` for a VmRequest
//! CREATE with Shepherd's policy over PostgreSQL (catalog, RBAC, duplicate check) by
//! `WEBHOOK_BENCH_CLIENTS` (200) concurrent clients, each on its own TLS connection, against
//! a no-op handler served by the same listener (same TLS, same connection limits) in the
//! same run. Goal: p99 under 10 ms.
//!
//! `make bench-webhook` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench
//! webhook`; `WEBHOOK_BENCH_CALLS` (50) calls per client). Writes the section "Webhook under
//! load" of BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use shepherd::app::admission::ShepherdPolicy;
use shepherd::db::{PoolSizes, Pools};
use shepherd::http::tls::Listener;
use shepherd::http::webhook::{WebhookState, router};
use shepherd::jobs::WorkerOptions;

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

fn vm_request() -> Value {
    json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1",
        "kind": "VmRequest",
        "metadata": {"name": "web-01", "namespace": "apps", "uid": "0b5e2f61-3c1c-4a4e-9d55-8a3f0c0f4a11"},
        "spec": {
            "system": "shop", "service": "web0", "targetNamespace": "team-a", "template": "fedora",
            "instanceSize": "small", "count": 2, "diskGib": 40, "reason": "capacity for the launch"
        }
    })
}

fn review(object: &Value) -> String {
    let resource = json!({"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "resource": "vmrequests"});
    let kind =
        json!({"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "kind": "VmRequest"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
            "name": "web-01", "namespace": "apps", "operation": "CREATE",
            "userInfo": {"username": "alice", "uid": "alice-uid", "groups": ["system:authenticated"]},
            "object": object,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
    .to_string()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr, trusted: &CertificateDer<'static>) -> Sender {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// POSTs `body` to `path`; the answer's JSON.
async fn call(sender: &mut Sender, path: &str, body: &str) -> Value {
    sender.ready().await.unwrap();
    let request = hyper::Request::post(path)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// `clients` connections each making `calls` calls of `path` (after 3 unmeasured ones),
/// back to back or, with `pace`, one each `pace` (clients staggered over it; a call's latency
/// counts from when it was due, so a slow answer also delays the calls behind it); the
/// latency of every measured call, sorted.
async fn load(
    addr: std::net::SocketAddr,
    trusted: &CertificateDer<'static>,
    clients: usize,
    calls: usize,
    pace: Option<Duration>,
    path: &'static str,
    body: Arc<String>,
) -> Vec<Duration> {
    let mut senders = Vec::new();
    for _ in 0..clients {
        senders.push(connect(addr, trusted).await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = tokio::task::JoinSet::new();
    for (client, mut sender) in senders.into_iter().enumerate() {
        let (body, start) = (body.clone(), start.clone());
        tasks.spawn(async move {
            for _ in 0..3 {
                call(&mut sender, path, &body).await;
            }
            start.wait().await;
            let mut ticks = pace.map(|pace| {
                let first = tokio::time::Instant::now() + pace * client as u32 / clients as u32;
                let mut ticks = tokio::time::interval_at(first, pace);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                ticks
            });
            let mut latencies = Vec::with_capacity(calls);
            for _ in 0..calls {
                let began = match &mut ticks {
                    Some(ticks) => ticks.tick().await.into_std(),
                    None => Instant::now(),
                };
                let answer = call(&mut sender, path, &body).await;
                latencies.push(began.elapsed());
                assert_eq!(answer["response"]["allowed"], true, "{answer}");
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies.unwrap());
    }
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let clients = report::env_or("WEBHOOK_BENCH_CLIENTS", 200);
    let calls = report::env_or("WEBHOOK_BENCH_CALLS", 50);
    let scratch = report::ScratchDatabase::create("webhook").await;
    // The webhook's own pool, sized as in production.
    let mut sizes = PoolSizes::for_workers(WorkerOptions::default().concurrency as u32);
    if let Ok(n) = std::env::var("WEBHOOK_BENCH_POOL") {
        sizes.webhook.max_connections = n.parse().unwrap();
    }
    let pools = Pools::connect_lazy(&scratch.url, &sizes).unwrap();
    shepherd::app::migrate::run(&pools.controllers)
        .await
        .unwrap();
    common::world::shop_with_services(&pools.controllers, 1).await;

    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let trusted = generated.cert.der().clone();

    let keys = shepherd::domain::identity::KeyRing::new(vec![7u8; 32], Vec::new()).unwrap();
    let policy = ShepherdPolicy {
        pool: pools.webhook.clone(),
        client: None,
    };
    let allowed = Bytes::from(
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true}
        })
        .to_string(),
    );
    let app = router(WebhookState::new(keys, Arc::new(policy))).route(
        "/noop",
        post(move |_: Bytes| {
            let allowed = allowed.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], allowed) }
        }),
    );
    let listener = Listener::tls("127.0.0.1:0".parse().unwrap(), &cert, &key)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(listener.run("bench webhook", app, stop.clone().cancelled_owned()));

    // The object as the API server sends it to /validate: stamped by /mutate.
    let mut sender = connect(addr, &trusted).await;
    let object = vm_request();
    let mutated = call(&mut sender, "/mutate", &review(&object)).await;
    let patch = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        mutated["response"]["patch"]
            .as_str()
            .expect("mutate stamps"),
    )
    .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut stamped = object.clone();
    json_patch::patch(&mut stamped, &patch).unwrap();
    let body = Arc::new(review(&stamped));
    let checked = call(&mut sender, "/validate", &body).await;
    assert_eq!(checked["response"]["allowed"], true, "{checked}");
    drop(sender);

    let pace = Duration::from_millis(report::env_or("WEBHOOK_BENCH_PACE_MS", 200) as u64);
    let paced_noop = load(
        addr,
        &trusted,
        clients,
        calls,
        Some(pace),
        "/noop",
        body.clone(),
    )
    .await;
    let paced = load(
        addr,
        &trusted,
        clients,
        calls,
        Some(pace),
        "/validate",
        body.clone(),
    )
    .await;
    let noop = load(addr, &trusted, clients, calls, None, "/noop", body.clone()).await;
    let profile = report::StatementProfile::start(&pools.controllers).await;
    let started = Instant::now();
    let validate = load(addr, &trusted, clients, calls, None, "/validate", body).await;
    let wall = started.elapsed();
    println!(
        "validate: {}",
        report::describe_profile(
            &profile.finish(&pools.controllers).await,
            wall,
            validate.len(),
            10
        )
    );
    stop.cancel();
    let _ = server.await;
    pools.webhook.close().await;
    pools.controllers.close().await;
    scratch.drop().await;

    let under_10ms = |p99: Duration| {
        format!(
            "< 10 ms: {}",
            if p99 < Duration::from_millis(10) {
                "met"
            } else {
                "missed"
            }
        )
    };
    let row = |figure: String, value: Duration, baseline: Duration, what: &str, goal: String| {
        report::Row {
            figure,
            value: ms(value),
            baseline: format!("{} no-op {what}", ms(baseline)),
            ratio: value.as_secs_f64() / baseline.as_secs_f64(),
            goal,
        }
    };
    let offered = clients as f64 / pace.as_secs_f64();
    let saturated = validate.len() as f64 / wall.as_secs_f64();
    let mut rows = Vec::new();
    for (load, measured, baseline) in [
        (format!("{offered:.0}/s offered"), &paced, &paced_noop),
        (
            format!("back to back, {saturated:.0}/s served"),
            &validate,
            &noop,
        ),
    ] {
        let (p50, p99) = (percentile(measured, 0.50), percentile(measured, 0.99));
        let (base50, base99) = (percentile(baseline, 0.50), percentile(baseline, 0.99));
        rows.push(row(
            format!("`/validate` VmRequest p50, {load}"),
            p50,
            base50,
            "p50",
            "(none set)".into(),
        ));
        rows.push(row(
            format!("`/validate` VmRequest p99, {load}"),
            p99,
            base99,
            "p99",
            under_10ms(p99),
        ));
    }
    report::write_section(
        "Webhook under load",
        "make bench-webhook",
        &format!(
            "{clients} concurrent clients, each on its own TLS connection, {calls} measured \
             calls each per path after 3 unmeasured; first each client calls once per {} ms \
             (latency counted from when the call was due), then back to back. `/validate` of \
             a stamped VmRequest CREATE with the policy over PostgreSQL (catalog, RBAC, \
             duplicate check) and the webhook's production pool; baseline: a handler \
             answering `allowed` at once on the same listener. Ratios are latency ÷ baseline \
             latency (lower is better).",
            pace.as_millis()
        ),
        &rows,
    );
}
