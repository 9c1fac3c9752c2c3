//! The real Helm 4 against the simulator: install, upgrade, list and uninstall a chart with
//! a ConfigMap, Deployment, Service, PodDisruptionBudget, NetworkPolicy and a pre-install /
//! pre-upgrade hook Job. Helm keeps its releases in Secrets sent as protobuf and waits for
//! hook Jobs to complete; the test acts as the node and completes each Job through its
//! status subresource, which Helm sees through its watch.

#[path = "common/tools.rs"]
mod tools;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tools::Cli;

const CHART: &[(&str, &str)] = &[
    (
        "Chart.yaml",
        "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    ),
    ("values.yaml", "replicas: 1\ngreeting: hello\n"),
    (
        "templates/app.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels: {app: demo}
data:
  greeting: {{ .Values.greeting | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: demo}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: web
        image: example.com/demo:1.0
        args: ["--greeting={{ .Values.greeting }}"]
        ports: [{containerPort: 8080, name: http}]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .Release.Name }}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: demo}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .Release.Name }}
spec:
  podSelector:
    matchLabels: {app: demo}
  ingress: [{ports: [{port: 8080, protocol: TCP}]}]
"#,
    ),
    (
        "templates/migrate.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: example.com/demo:1.0
        args: ["migrate"]
"#,
    ),
];

fn write_chart(dir: &Path) {
    for (path, text) in CHART {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Acts as the node: completes every Job (once per uid) as soon as it shows up.
fn complete_jobs(jobs: Api<Job>, completed: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut events = watcher(jobs.clone(), watcher::Config::default()).boxed();
        while let Some(Ok(ev)) = events.next().await {
            let job = match ev {
                watcher::Event::Apply(j) | watcher::Event::InitApply(j) => j,
                _ => continue,
            };
            let uid = job.metadata.uid.clone().unwrap_or_default();
            if !seen.insert(uid) {
                continue;
            }
            let name = job.metadata.name.clone().unwrap();
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let status = json!({"status": {
                "startTime": now, "completionTime": now, "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "lastTransitionTime": now},
                ],
            }});
            jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
            completed.lock().unwrap().push(name);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_list_uninstall() {
    let sim = shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig::new("helm"))
        .await
        .unwrap();
    let client = sim.kube_client("admin").unwrap();
    let completed = Arc::new(Mutex::new(vec![]));
    complete_jobs(
        Api::namespaced(client.clone(), "default"),
        completed.clone(),
    );
    let helm = Arc::new(Cli::helm(&sim));
    let chart = helm.dir().join("chart");
    write_chart(&chart);
    let chart = chart.display().to_string();
    let run = |args: Vec<String>| {
        let helm = helm.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                helm.ok(&a, None)
            })
            .await
            .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run(args(&["install", "demo", &chart, "--timeout", "60s"])).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert_eq!(*completed.lock().unwrap(), ["demo-migrate"]);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let d = deploys.get("demo").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    let cm = cms.get("demo-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = services.get("demo").await.unwrap().spec.unwrap();
    let cluster_ip = svc.cluster_ip.clone().expect("a clusterIP is allocated");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .get("demo")
        .await
        .unwrap();
    Api::<NetworkPolicy>::namespaced(client.clone(), "default")
        .get("demo")
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    // hook-succeeded: Helm deleted the Job once it saw it complete.
    assert!(jobs.get_opt("demo-migrate").await.unwrap().is_none());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let release = secrets.get("sh.helm.release.v1.demo.v1").await.unwrap();
    assert_eq!(release.type_.as_deref(), Some("helm.sh/release.v1"));

    let out = run(args(&[
        "upgrade",
        "demo",
        &chart,
        "--set",
        "replicas=3",
        "--set",
        "greeting=hi",
        "--timeout",
        "60s",
    ]))
    .await;
    assert!(out.contains("REVISION: 2"), "{out}");
    assert_eq!(
        *completed.lock().unwrap(),
        ["demo-migrate", "demo-migrate"],
        "the pre-upgrade hook ran again"
    );
    let d = deploys.get("demo").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(
        cms.get("demo-config").await.unwrap().data.unwrap()["greeting"],
        "hi"
    );
    // Server-side apply of the upgrade keeps what the server defaulted.
    let svc = services.get("demo").await.unwrap().spec.unwrap();
    assert_eq!(svc.cluster_ip.as_ref(), Some(&cluster_ip));
    assert_eq!(svc.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    let out = run(args(&["list", "-o", "json"])).await;
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(
        (&list[0]["name"], &list[0]["revision"], &list[0]["status"]),
        (&json!("demo"), &json!("2"), &json!("deployed")),
        "{out}"
    );
    let out = run(args(&["history", "demo"])).await;
    assert!(
        out.contains("superseded") && out.contains("Upgrade complete"),
        "{out}"
    );

    let out = run(args(&["uninstall", "demo", "--timeout", "60s"])).await;
    assert!(out.contains("release \"demo\" uninstalled"), "{out}");
    assert!(deploys.get_opt("demo").await.unwrap().is_none());
    assert!(cms.get_opt("demo-config").await.unwrap().is_none());
    assert!(services.get_opt("demo").await.unwrap().is_none());
    let left = secrets
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "release Secrets left: {left:?}");
    let out = run(args(&["list", "-o", "json"])).await;
    assert_eq!(out.trim(), "[]");
}
