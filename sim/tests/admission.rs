//! Admission webhooks: a tiny axum HTTPS webhook, registered through webhook
//! configurations, mutates (JSON patch) and validates requests with real userInfo,
//! including DELETE; failurePolicy, timeoutSeconds and caBundle are honoured.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::*;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::{Value, json};
use shepherd_sim::tls::CertAuthority;

type Seen = Arc<Mutex<Vec<(String, String, bool, bool)>>>;

async fn mutate(
    State(seen): State<Seen>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    seen.lock().unwrap().push((
        format!("mutate:{:?}", req.operation),
        req.user_info.username.clone().unwrap_or_default(),
        req.object.is_some(),
        req.old_object.is_some(),
    ));
    let patch: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "true"}}]),
    )
    .unwrap();
    Json(
        AdmissionResponse::from(&req)
            .with_patch(patch)
            .unwrap()
            .into_review(),
    )
}

async fn validate(
    State(seen): State<Seen>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    seen.lock().unwrap().push((
        format!("validate:{:?}", req.operation),
        req.user_info.username.clone().unwrap_or_default(),
        req.object.is_some(),
        req.old_object.is_some(),
    ));
    let resp = AdmissionResponse::from(&req);
    let size = req
        .object
        .as_ref()
        .map(|o| o.data["spec"]["size"].clone())
        .unwrap_or(Value::Null);
    let labelled = req.object.as_ref().is_some_and(|o| {
        o.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("mutated").is_some_and(|v| v == "true"))
    });
    let resp = if size == 9 {
        resp.deny("size 9 is forbidden")
    } else if req.object.is_some() && !labelled {
        resp.deny("mutation did not run first")
    } else {
        resp
    };
    Json(resp.into_review())
}

async fn slow() -> Json<Value> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Json(json!({}))
}

fn hook_config(
    kind: &str,
    name: &str,
    url: &str,
    ca: &str,
    ops: &[&str],
    policy: &str,
    timeout: u64,
) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.example.com"),
            "clientConfig": {"url": url, "caBundle": base64::engine::general_purpose::STANDARD.encode(ca)},
            "rules": [{"apiGroups": ["bars.example.com"], "apiVersions": ["v1"], "operations": ops, "resources": ["widgets"], "scope": "Namespaced"}],
            "failurePolicy": policy, "timeoutSeconds": timeout, "sideEffects": "None", "admissionReviewVersions": ["v1"],
        }],
    })
}

fn configs(client: &kube::Client, plural: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(
        client.clone(),
        &kube::core::ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

#[tokio::test]
async fn webhooks_mutate_then_validate_with_real_user_info() {
    let sim = shepherd_sim::SimCluster::start(
        shepherd_sim::ClusterConfig::new("adm")
            .with_yaml(CRD_YAML)
            .unwrap()
            .with_user(shepherd_sim::User::new("alice", &["dev"])),
    )
    .await
    .unwrap();
    let ca = CertAuthority::new("webhook-ca").unwrap();
    let cert = ca.issue(&["127.0.0.1"]).unwrap();
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/slow", post(slow))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(shepherd_sim::server::serve_https(
        listener,
        cert.server_config().unwrap(),
        app,
        rx,
        None,
    ));

    let admin = sim.kube_client("admin").unwrap();
    let base = format!("https://127.0.0.1:{}", addr.port());
    let m = hook_config(
        "MutatingWebhookConfiguration",
        "mut",
        &format!("{base}/mutate"),
        ca.ca_pem(),
        &["CREATE", "UPDATE"],
        "Fail",
        5,
    );
    let v = hook_config(
        "ValidatingWebhookConfiguration",
        "val",
        &format!("{base}/validate"),
        ca.ca_pem(),
        &["CREATE", "UPDATE", "DELETE"],
        "Fail",
        5,
    );
    let mapi = configs(
        &admin,
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
    );
    let vapi = configs(
        &admin,
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
    );
    mapi.create(&PostParams::default(), &serde_json::from_value(m).unwrap())
        .await
        .unwrap();
    vapi.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();

    let alice = sim.kube_client("alice").unwrap();
    let api = widgets(&alice, "default");
    let w = api
        .create(
            &PostParams::default(),
            &widget("hooked", json!({"size": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.labels.unwrap()["mutated"],
        "true",
        "mutating patch applied"
    );
    let e = status_of(
        api.create(&PostParams::default(), &widget("nine", json!({"size": 9})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "admission webhook \"val.example.com\" denied the request: size 9 is forbidden"
    );
    api.patch(
        "hooked",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    api.delete("hooked", &DeleteParams::default())
        .await
        .unwrap();
    let seen_now = seen.lock().unwrap().clone();
    assert!(
        seen_now.iter().all(|(_, user, _, _)| user == "alice"),
        "{seen_now:?}"
    );
    let ops: Vec<&str> = seen_now.iter().map(|(o, ..)| o.as_str()).collect();
    assert!(
        ops.starts_with(&["mutate:Create", "validate:Create"]),
        "{ops:?}"
    );
    assert!(ops.contains(&"validate:Update"), "{ops:?}");
    let del = seen_now
        .iter()
        .find(|(o, ..)| o == "validate:Delete")
        .expect("DELETE reviewed");
    assert!(!del.2 && del.3, "DELETE carries oldObject and no object");

    // failurePolicy: an unreachable webhook fails closed (Fail) or is skipped (Ignore).
    let dead = "https://127.0.0.1:1/validate".to_string();
    vapi.delete("val", &DeleteParams::default()).await.unwrap();
    vapi.create(
        &PostParams::default(),
        &serde_json::from_value(hook_config(
            "ValidatingWebhookConfiguration",
            "dead",
            &dead,
            ca.ca_pem(),
            &["CREATE"],
            "Fail",
            1,
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let e = status_of(
        api.create(&PostParams::default(), &widget("f1", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 500);
    assert!(
        e.message
            .contains("failed calling webhook \"dead.example.com\""),
        "{}",
        e.message
    );
    vapi.patch(
        "dead",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(
                json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]),
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &widget("f2", json!({"size": 1})))
        .await
        .unwrap();
    vapi.delete("dead", &DeleteParams::default()).await.unwrap();

    // timeoutSeconds: a webhook slower than its timeout fails the request.
    vapi.create(
        &PostParams::default(),
        &serde_json::from_value(hook_config(
            "ValidatingWebhookConfiguration",
            "slow",
            &format!("{base}/slow"),
            ca.ca_pem(),
            &["CREATE"],
            "Fail",
            1,
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let e = status_of(
        api.create(&PostParams::default(), &widget("f3", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("deadline exceeded"), "{}", e.message);
    vapi.delete("slow", &DeleteParams::default()).await.unwrap();

    // caBundle: a webhook whose certificate is not signed by the bundle is not trusted.
    let other = CertAuthority::new("other-ca").unwrap();
    mapi.delete("mut", &DeleteParams::default()).await.unwrap();
    mapi.create(
        &PostParams::default(),
        &serde_json::from_value(hook_config(
            "MutatingWebhookConfiguration",
            "untrusted",
            &format!("{base}/mutate"),
            other.ca_pem(),
            &["CREATE"],
            "Fail",
            2,
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let e = status_of(
        api.create(&PostParams::default(), &widget("f4", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("tls"), "{}", e.message);
}
