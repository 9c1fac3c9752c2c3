//! Webhooks behind `clientConfig.service`: reached through `SimCluster::route_service`
//! with the certificate checked for `<name>.<namespace>.svc`, refused like a Service
//! without endpoints when unrouted, and skipped for namespaces a `namespaceSelector`
//! excludes (namespaces carry `kubernetes.io/metadata.name`).

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::json;
use shepherd_sim::tls::CertAuthority;

/// (host header, path and query, object name) of each call.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn validate(State(seen): State<Seen>, req: Request) -> Json<AdmissionReview<DynamicObject>> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = req.uri().to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(&body).unwrap();
    let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    seen.lock().unwrap().push((host, path, req.name.clone()));
    Json(AdmissionResponse::from(&req).into_review())
}

async fn serve(names: &[&str], ca: &CertAuthority, seen: Seen) -> std::net::SocketAddr {
    let cert = ca.issue(names).unwrap();
    let app = Router::new()
        .route("/validate", post(validate))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    // The sender must outlive the server.
    std::mem::forget(stop);
    tokio::spawn(shepherd_sim::server::serve_https(
        listener,
        cert.server_config().unwrap(),
        app,
        rx,
        None,
    ));
    addr
}

#[tokio::test]
async fn service_webhooks_are_routed_verified_and_selected_by_namespace() {
    let sim = start().await;
    let admin = sim.kube_client("admin").unwrap();
    let nss: Api<Namespace> = Api::all(admin.clone());
    for ns in ["hooks", "apps"] {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.into());
        let created = nss.create(&PostParams::default(), &n).await.unwrap();
        assert_eq!(
            created.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
            ns,
            "the real server labels namespaces with their name"
        );
    }
    let ca = CertAuthority::new("webhook-ca").unwrap();
    let seen: Seen = Arc::default();
    // The certificate names only the Service's DNS name, not the address it is served on.
    let good = serve(&["shepherd-webhook.hooks.svc"], &ca, seen.clone()).await;
    let wrong_name = serve(&["127.0.0.1", "other.hooks.svc"], &ca, seen.clone()).await;
    let configs: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingWebhookConfiguration",
            ),
            "validatingwebhookconfigurations",
        ),
    );
    let cfg: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "svc"},
        "webhooks": [{
            "name": "widgets.shepherd.example.com",
            "clientConfig": {
                "service": {"namespace": "hooks", "name": "shepherd-webhook", "port": 8443, "path": "/validate"},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca.ca_pem()),
            },
            "rules": [{"apiGroups": ["bars.example.com"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["widgets"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["hooks"]}]},
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
        }],
    }))
    .unwrap();
    configs.create(&PostParams::default(), &cfg).await.unwrap();

    // Unrouted: no endpoints, and failurePolicy Fail refuses the request.
    let e = status_of(
        widgets(&admin, "apps")
            .create(&PostParams::default(), &widget("w0", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"widgets.shepherd.example.com\": failed to call webhook: Post \"https://shepherd-webhook.hooks.svc:8443/validate?timeout=5s\": no endpoints available for service \"shepherd-webhook\""
    );
    // The webhook's own namespace is excluded by the namespaceSelector: no call at all.
    widgets(&admin, "hooks")
        .create(&PostParams::default(), &widget("own", json!({"size": 1})))
        .await
        .unwrap();

    // Routed to a server whose certificate does not name the Service: TLS fails.
    sim.route_service("hooks", "shepherd-webhook", 8443, wrong_name);
    let e = status_of(
        widgets(&admin, "apps")
            .create(&PostParams::default(), &widget("w1", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 500);
    assert!(e.message.contains("tls:"), "{}", e.message);

    // Routed to the right server: called with the Service's host name and path.
    sim.route_service("hooks", "shepherd-webhook", 8443, good);
    widgets(&admin, "apps")
        .create(&PostParams::default(), &widget("w2", json!({"size": 1})))
        .await
        .unwrap();
    let calls: Vec<(String, String, String)> = seen.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![(
            "shepherd-webhook.hooks.svc:8443".to_string(),
            "/validate?timeout=5s".to_string(),
            "w2".to_string()
        )]
    );
    // Another port of the same Service is not routed.
    sim.unroute_service("hooks", "shepherd-webhook", 8443);
    sim.route_service("hooks", "shepherd-webhook", 443, good);
    let e = status_of(
        widgets(&admin, "apps")
            .create(&PostParams::default(), &widget("w3", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message.contains("no endpoints available"),
        "{}",
        e.message
    );
}
