//! The workload kinds (Deployment, Service, PodDisruptionBudget, NetworkPolicy, Job) over
//! the API: discovery, status subresources and watches, protobuf request bodies, and the
//! OpenAPI documents clients read.

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use prost::Message;
use serde_json::{Value, json};

async fn start() -> (shepherd_sim::SimCluster, kube::Client) {
    let sim = shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig::new("kinds"))
        .await
        .unwrap();
    let client = sim.kube_client("admin").unwrap();
    (sim, client)
}

async fn get(client: &kube::Client, path: &str) -> Value {
    let req = http::Request::get(path).body(vec![]).unwrap();
    serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap()
}

fn resource<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[tokio::test]
async fn discovery_lists_the_workload_kinds_like_the_real_server() {
    let (_sim, client) = start().await;
    let apps = get(&client, "/apis/apps/v1").await;
    let d = resource(&apps, "deployments");
    assert_eq!(
        (
            &d["kind"],
            &d["namespaced"],
            &d["shortNames"],
            &d["categories"]
        ),
        (
            &json!("Deployment"),
            &json!(true),
            &json!(["deploy"]),
            &json!(["all"])
        )
    );
    assert!(d["verbs"].as_array().unwrap().contains(&json!("watch")));
    resource(&apps, "deployments/status");
    let core = get(&client, "/api/v1").await;
    assert_eq!(resource(&core, "services")["shortNames"], json!(["svc"]));
    resource(&core, "services/status");
    let policy = get(&client, "/apis/policy/v1").await;
    assert_eq!(
        resource(&policy, "poddisruptionbudgets")["shortNames"],
        json!(["pdb"])
    );
    let net = get(&client, "/apis/networking.k8s.io/v1").await;
    assert_eq!(
        resource(&net, "networkpolicies")["shortNames"],
        json!(["netpol"])
    );
    assert!(
        !net["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "networkpolicies/status")
    );
    let batch = get(&client, "/apis/batch/v1").await;
    assert_eq!(resource(&batch, "jobs")["kind"], "Job");
    resource(&batch, "jobs/status");
}

#[tokio::test]
async fn job_status_is_a_subresource_and_watches_deliver_it() {
    let (_sim, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "busybox"}]}}},
        "status": {"succeeded": 1},
    }))
    .unwrap();
    let created = jobs.create(&PostParams::default(), &job).await.unwrap();
    // Status sent with the object is dropped, as by the real server.
    assert_eq!(created.status.clone().unwrap_or_default().succeeded, None);
    let rv = created.metadata.resource_version.clone().unwrap();
    let mut events = jobs
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    // Status on the main resource is ignored...
    let main = jobs
        .patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"succeeded": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.unwrap_or_default().succeeded, None);
    // ...and written through /status.
    let done =
        json!({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
    jobs.patch_status("migrate", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(ev) = events.next().await {
            if let WatchEvent::Modified(j) = ev.unwrap()
                && let Some(s) = j.status
                && s.succeeded == Some(1)
            {
                return s;
            }
        }
        panic!("watch ended without the status")
    })
    .await
    .expect("the watch delivers the status write");
    assert_eq!(seen.conditions.unwrap()[0].type_, "Complete");
}

fn protobuf_body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let u = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(u.encode_to_vec());
    body
}

#[tokio::test]
async fn protobuf_bodies_create_and_update_secrets() {
    use k8s_pb::api::core::v1::Secret;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let (_sim, client) = start().await;
    let mut secret = Secret {
        metadata: Some(ObjectMeta {
            name: Some("sh.helm.release.v1.demo.v1".into()),
            labels: [("owner".to_string(), "helm".to_string())].into(),
            ..Default::default()
        }),
        data: [("release".to_string(), b"\x00\xffgz".to_vec())].into(),
        r#type: Some("helm.sh/release.v1".into()),
        ..Default::default()
    };
    let post = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header("accept", "application/vnd.kubernetes.protobuf, */*")
        .body(protobuf_body("v1", "Secret", secret.encode_to_vec()))
        .unwrap();
    let created: Value = serde_json::from_str(&client.request_text(post).await.unwrap()).unwrap();
    assert_eq!(created["data"]["release"], "AP9neg==");
    assert_eq!(created["type"], "helm.sh/release.v1");
    assert_eq!(created["metadata"]["labels"]["owner"], "helm");
    // An update (PUT) in protobuf, carrying the resourceVersion it read.
    let meta = secret.metadata.as_mut().unwrap();
    meta.resource_version = created["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    meta.labels.insert("status".into(), "superseded".into());
    let put = http::Request::put("/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(protobuf_body("v1", "Secret", secret.encode_to_vec()))
        .unwrap();
    let updated: Value = serde_json::from_str(&client.request_text(put).await.unwrap()).unwrap();
    assert_eq!(updated["metadata"]["labels"]["status"], "superseded");
    assert_eq!(updated["data"]["release"], "AP9neg==");
    // A kind without a protobuf conversion is refused, by name.
    let post = http::Request::post("/apis/apps/v1/namespaces/default/deployments")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(protobuf_body("apps/v1", "Deployment", vec![]))
        .unwrap();
    match client.request_text(post).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 415);
            assert!(
                s.message.contains("apps/v1, Kind=Deployment"),
                "{}",
                s.message
            );
        }
        e => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn openapi_documents_describe_object_meta_and_v2_is_protobuf() {
    let (_sim, client) = start().await;
    let index = get(&client, "/openapi/v3").await;
    let url = index["paths"]["apis/batch/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = get(&client, &url).await;
    let patch = &doc["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Job");
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    let meta = &doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
    for field in [
        "name",
        "namespace",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "managedFields",
    ] {
        assert!(meta["properties"][field].is_object(), "{field} missing");
    }
    let job = &doc["components"]["schemas"]["io.k8s.api.batch.v1.Job"];
    assert_eq!(
        job["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    // v2 is what client-go falls back to for kinds missing from v3: protobuf, swagger 2.0.
    let req = http::Request::get("/openapi/v2").body(vec![]).unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(body.starts_with(b"\x0a\x032.0"), "{body:?}");
}
