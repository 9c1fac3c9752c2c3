//! Admission webhook latency, in process (no TLS, no network): N calls through the router
//! for each case, printed next to a baseline measured in the same run (the same request
//! through a router whose handler does nothing), so the ratio holds across machines. A
//! second reference row shows what deserializing and answering the review costs alone.
//!
//! `cargo bench -p kubevirt-shepherd --bench webhook` (`WEBHOOK_BENCH_CALLS` sets N).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::{Value, json};
use shepherd::app::admission::{AdmissionInput, AdmissionPolicy, BoxFuture, Denial};
use shepherd::crd::identity as annotation;
use shepherd::http::webhook::{WebhookState, router};
use tower::ServiceExt;

struct AllowAll;

impl AdmissionPolicy for AllowAll {
    fn check<'a>(&'a self, _: &'a AdmissionInput) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn vm_request(annotations: Value) -> Value {
    json!({
        "apiVersion": "shepherd.kv-shepherd.io/v1alpha1",
        "kind": "VmRequest",
        "metadata": {
            "name": "web-01",
            "namespace": "team-a",
            "annotations": annotations,
            "labels": {"app": "web"}
        },
        "spec": {
            "system": "billing",
            "service": "web",
            "targetNamespace": "billing-prod",
            "template": "ubuntu-24.04",
            "instanceSize": "m.large",
            "count": 2,
            "diskGib": 40,
            "reason": "capacity for the Q3 launch"
        }
    })
}

fn review(operation: &str, object: Value, old_object: Value) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "kind": "VmRequest"},
            "resource": {"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "resource": "vmrequests"},
            "requestKind": {"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "kind": "VmRequest"},
            "requestResource": {"group": "shepherd.kv-shepherd.io", "version": "v1alpha1", "resource": "vmrequests"},
            "name": "web-01",
            "namespace": "team-a",
            "operation": operation,
            "userInfo": {
                "username": "alice@example.com",
                "uid": "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f",
                "groups": ["system:authenticated", "team-a", "billing-devs"]
            },
            "object": object,
            "oldObject": old_object,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
    .to_string()
}

async fn time(router: &Router, path: &str, body: &str, calls: usize) -> Duration {
    let call = || async {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request builds");
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body reads");
        std::hint::black_box(bytes);
    };
    for _ in 0..calls / 10 + 1 {
        call().await;
    }
    let start = Instant::now();
    for _ in 0..calls {
        call().await;
    }
    start.elapsed() / calls as u32
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: usize = std::env::var("WEBHOOK_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let key = vec![7u8; 32];
    let keys =
        shepherd::domain::identity::KeyRing::new(key, Vec::new()).expect("key is long enough");
    let webhook = router(WebhookState::new(keys, Arc::new(AllowAll)));
    let allowed = Bytes::from(
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true}
        })
        .to_string(),
    );
    let noop = Router::new().route(
        "/noop",
        post(move |_body: Bytes| {
            let allowed = allowed.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], allowed) }
        }),
    );

    // What deserializing and answering an AdmissionReview costs by itself.
    let parse_only = Router::new().route(
        "/parse",
        post(
            |Json(review): Json<AdmissionReview<DynamicObject>>| async move {
                let request: AdmissionRequest<DynamicObject> =
                    review.try_into().expect("the review has a request");
                Json(AdmissionResponse::from(&request).into_review())
            },
        ),
    );

    let forged = json!({
        annotation::USERNAME: "platform-admin",
        annotation::SIGNATURE: "00"
    });
    let create = review("CREATE", vm_request(forged.clone()), Value::Null);
    let stamped = json!({
        annotation::USERNAME: "alice@example.com",
        annotation::UID: "5f1c7a42-0d1e-4d55-9f6a-1d2b3c4d5e6f",
        annotation::GROUPS: r#"["billing-devs","system:authenticated","team-a"]"#,
        annotation::SIGNATURE: "ab".repeat(32),
    });
    let update = review("UPDATE", vm_request(forged), vm_request(stamped));

    let baseline = time(&noop, "/noop", &create, calls).await;
    let cases = [
        ("mutate CREATE (stamp + sign)", "/mutate", &create),
        ("mutate UPDATE (restore stamp)", "/mutate", &update),
        ("validate CREATE (allow-all policy)", "/validate", &create),
    ];
    println!("admission webhook latency, {calls} in-process calls each");
    println!(
        "  {:<38} {:>9.1} µs/call",
        "baseline (no-op handler)",
        baseline.as_secs_f64() * 1e6
    );
    let parsed = time(&parse_only, "/parse", &create, calls).await;
    println!(
        "  {:<38} {:>9.1} µs/call  {:>5.1}x baseline",
        "parse + allow (kube types, no logic)",
        parsed.as_secs_f64() * 1e6,
        parsed.as_secs_f64() / baseline.as_secs_f64()
    );
    for (name, path, body) in cases {
        let per_call = time(&webhook, path, body, calls).await;
        println!(
            "  {name:<38} {:>9.1} µs/call  {:>5.1}x baseline",
            per_call.as_secs_f64() * 1e6,
            per_call.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
