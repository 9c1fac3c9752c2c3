//! Shared test helpers: a test CRD, cluster start-up, and the dual sim/real-cluster
//! scenario runner (`SHEPHERD_TEST_KUBECONFIG`).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use shepherd_sim::{ClusterConfig, SimCluster};

pub const CRD_YAML: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.bars.example.com
spec:
  group: bars.example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Phase
      type: string
      jsonPath: .status.phase
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.size <= 5 || self.color == 'red'"
              message: big widgets must be red
            properties:
              size:
                type: integer
                minimum: 1
                maximum: 10
              color:
                type: string
                enum: [red, blue]
                default: red
              label:
                type: string
                pattern: '^[a-z]+$'
                maxLength: 10
              owner:
                type: string
                x-kubernetes-validations:
                - rule: "self == oldSelf"
                  message: owner is immutable
              tags:
                type: array
                x-kubernetes-list-type: set
                items:
                  type: string
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            properties:
              phase:
                type: string
              conditions:
                type: array
                items:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
"#;

pub fn widget_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("bars.example.com", "v1", "Widget")
}

pub fn widget_ar() -> ApiResource {
    ApiResource::from_gvk_with_plural(&widget_gvk(), "widgets")
}

pub fn widgets(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &widget_ar())
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "bars.example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("valid widget")
}

pub async fn start() -> SimCluster {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    SimCluster::start(
        ClusterConfig::new("test")
            .with_yaml(CRD_YAML)
            .expect("CRD parses"),
    )
    .await
    .expect("cluster starts")
}

pub async fn start_target() -> SimCluster {
    let mut cfg = ClusterConfig::target("target");
    if let Some(kv) = cfg.kubevirt.as_mut() {
        kv.step_delay_ms = 10;
    }
    SimCluster::start(cfg).await.expect("cluster starts")
}

/// Installs the test CRD (for real clusters) and a fresh namespace; returns its name.
pub async fn prepare(client: &Client) -> String {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: Value = serde_saphyr::from_str(CRD_YAML).expect("CRD parses");
    crds.patch(
        "widgets.bars.example.com",
        &PatchParams::apply("shepherd-sim-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("CRD applies");
    eventually("CRD established", || async {
        let c = crds.get("widgets.bars.example.com").await.ok()?;
        let est = c.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        est.then_some(())
    })
    .await;
    let ns = format!("t-{}", &uuid_like()[..10]);
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut n = k8s_openapi::api::core::v1::Namespace::default();
    n.metadata.name = Some(ns.clone());
    nss.create(&PostParams::default(), &n)
        .await
        .expect("namespace created");
    ns
}

pub fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    format!("{:016x}{:016x}", h.finish(), h.finish().rotate_left(17))
}

/// Polls `f` until it returns Some, failing the test after 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a scenario against the simulator, and against a real cluster when
/// `SHEPHERD_TEST_KUBECONFIG` names a kubeconfig (skipped with a message otherwise).
pub async fn on_sim<F, Fut>(scenario: F)
where
    F: Fn(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let sim = start().await;
    let client = sim.kube_client("admin").expect("client");
    let ns = prepare(&client).await;
    scenario(client, ns).await;
}

pub async fn on_real_cluster<F, Fut>(name: &str, scenario: F)
where
    F: Fn(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(path) = std::env::var("SHEPHERD_TEST_KUBECONFIG") else {
        eprintln!("{name}: SHEPHERD_TEST_KUBECONFIG is not set, skipping the real-cluster variant");
        return;
    };
    let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig readable");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig valid");
    let client = Client::try_from(cfg).expect("client");
    let ns = prepare(&client).await;
    scenario(client.clone(), ns.clone()).await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let _ = nss.delete(&ns, &Default::default()).await;
}

/// Declares `<name>_on_sim` and `<name>_on_real_cluster` tests for one scenario.
#[macro_export]
macro_rules! dual {
    ($name:ident, $scenario:path) => {
        mod $name {
            #[tokio::test]
            async fn on_sim() {
                $crate::common::on_sim($scenario).await;
            }
            #[tokio::test]
            async fn on_real_cluster() {
                $crate::common::on_real_cluster(stringify!($name), $scenario).await;
            }
        }
    };
}

pub fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn name_of(o: &DynamicObject) -> String {
    o.name_any()
}
