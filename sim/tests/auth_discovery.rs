//! Token authentication, TokenReview, discovery and OpenAPI.

mod common;

use common::*;
use kube::api::{Api, PostParams};
use kube::discovery::Discovery;
use serde_json::{Value, json};

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let sim = start().await;
    let mut cfg = sim.kube_config("admin").unwrap();
    cfg.auth_info.token = None;
    let anon = kube::Client::try_from(cfg.clone()).unwrap();
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(anon);
    let e = status_of(api.list(&Default::default()).await.unwrap_err());
    assert_eq!(e.code, 401);
    cfg.auth_info.token = Some("wrong".to_string().into());
    let bad = kube::Client::try_from(cfg).unwrap();
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(bad);
    assert_eq!(
        status_of(api.list(&Default::default()).await.unwrap_err()).code,
        401
    );
}

#[tokio::test]
async fn token_review_answers_for_configured_users() {
    let sim = shepherd_sim::SimCluster::start(
        shepherd_sim::ClusterConfig::new("auth")
            .with_user(shepherd_sim::User::new("alice", &["dev"])),
    )
    .await
    .unwrap();
    let client = sim.kube_client("admin").unwrap();
    let api: Api<k8s_openapi::api::authentication::v1::TokenReview> = Api::all(client);
    let tr: k8s_openapi::api::authentication::v1::TokenReview =
        serde_json::from_value(json!({"spec": {"token": sim.token("alice").unwrap()}})).unwrap();
    let out = api.create(&PostParams::default(), &tr).await.unwrap();
    let st = out.status.unwrap();
    assert_eq!(st.authenticated, Some(true));
    let user = st.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert!(user.groups.unwrap().contains(&"dev".to_string()));
    let tr: k8s_openapi::api::authentication::v1::TokenReview =
        serde_json::from_value(json!({"spec": {"token": "nope"}})).unwrap();
    assert_eq!(
        api.create(&PostParams::default(), &tr)
            .await
            .unwrap()
            .status
            .unwrap()
            .authenticated,
        Some(false)
    );
}

#[tokio::test]
async fn discovery_lists_builtins_and_crds_with_short_names_and_status() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let d = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = d.resolve_gvk(&widget_gvk()).expect("widgets discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
    for (g, k) in [
        ("", "Secret"),
        ("", "ConfigMap"),
        ("coordination.k8s.io", "Lease"),
        ("events.k8s.io", "Event"),
        ("storage.k8s.io", "StorageClass"),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
    ] {
        let gvk = kube::core::GroupVersionKind::gvk(g, "v1", k);
        assert!(d.resolve_gvk(&gvk).is_some(), "{k} served");
    }
    let list: Value = serde_json::from_str(
        &client
            .request_text(http_get("/apis/bars.example.com/v1"))
            .await
            .unwrap(),
    )
    .unwrap();
    let w = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap();
    assert_eq!(w["shortNames"], json!(["wd"]));
    assert_eq!(w["categories"], json!(["all"]));
    let v: Value =
        serde_json::from_str(&client.request_text(http_get("/version")).await.unwrap()).unwrap();
    assert_eq!(v["major"], "1");
}

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(vec![]).unwrap()
}

#[tokio::test]
async fn openapi_v3_carries_the_markers_kubectl_needs() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    let index: Value =
        serde_json::from_str(&client.request_text(http_get("/openapi/v3")).await.unwrap()).unwrap();
    let url = index["paths"]["apis/bars.example.com/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/bars.example.com/v1?hash="));
    assert!(index["paths"]["api/v1"].is_object());
    let doc: Value =
        serde_json::from_str(&client.request_text(http_get(&url)).await.unwrap()).unwrap();
    let post = &doc["paths"]["/apis/bars.example.com/v1/namespaces/{namespace}/widgets"]["post"];
    assert_eq!(post["x-kubernetes-group-version-kind"]["kind"], "Widget");
    assert!(
        post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    let patch =
        &doc["paths"]["/apis/bars.example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
}

#[tokio::test]
async fn table_responses_use_printer_columns() {
    let sim = start().await;
    let client = sim.kube_client("admin").unwrap();
    widgets(&client, "default")
        .create(&PostParams::default(), &widget("t1", json!({"size": 4})))
        .await
        .unwrap();
    let req = http::Request::get("/apis/bars.example.com/v1/namespaces/default/widgets?limit=500")
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(vec![])
        .unwrap();
    let t: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Phase", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "t1");
    assert_eq!(t["rows"][0]["cells"][1], 4);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}
