//! The real kubectl against the simulator's built-in kinds: `kubectl create` (which sends
//! protobuf bodies), apply and get of the workload kinds by their short names, client-side
//! apply of a custom resource without OpenAPI warnings, and unserved kinds reported as
//! the real server's "no matches for kind".

#[path = "common/tools.rs"]
mod tools;

use serde_json::Value;
use tools::Cli;

async fn cluster() -> shepherd_sim::SimCluster {
    shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig::new("kubectl-builtins"))
        .await
        .unwrap()
}

fn json(k: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&a, None)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_the_simulator_decodes() {
    let sim = cluster().await;
    let k = Cli::kubectl(&sim);
    tokio::task::spawn_blocking(move || {
        // kubectl create speaks protobuf; -v=8 shows it did here too.
        let (ok, out, err) = k.run(&["create", "namespace", "team-a", "-v=8"], None);
        assert!(ok, "{out}\n{err}");
        assert!(
            err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
            "kubectl did not send protobuf:\n{err}"
        );
        assert!(out.contains("namespace/team-a created"), "{out}");
        let ns = json(&k, &["get", "namespace", "team-a"]);
        assert_eq!(ns["status"]["phase"], "Active");

        let file = k.dir().join("kubeconfig.yaml");
        std::fs::write(&file, "apiVersion: v1\nkind: Config\n").unwrap();
        let from = format!("--from-file=kubeconfig={}", file.display());
        let out = k.ok(&["create", "secret", "generic", "target-1", &from], None);
        assert!(out.contains("secret/target-1 created"), "{out}");
        let out = k.ok(
            &[
                "create",
                "secret",
                "generic",
                "target-2",
                &from,
                "--from-literal=token=abc",
                "-n",
                "team-a",
            ],
            None,
        );
        assert!(out.contains("secret/target-2 created"), "{out}");
        let s = json(&k, &["get", "secret", "target-2", "-n", "team-a"]);
        // base64 of the file's bytes, as the real server stores them.
        assert_eq!(
            s["data"]["kubeconfig"],
            "YXBpVmVyc2lvbjogdjEKa2luZDogQ29uZmlnCg=="
        );
        assert_eq!(s["data"]["token"], "YWJj");
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["metadata"]["namespace"], "team-a");
        assert!(s["metadata"]["uid"].is_string());

        let out = k.ok(
            &[
                "create",
                "configmap",
                "settings",
                "--from-literal=mode=fast",
                "-n",
                "team-a",
            ],
            None,
        );
        assert!(out.contains("configmap/settings created"), "{out}");
        let cm = json(&k, &["get", "cm", "settings", "-n", "team-a"]);
        assert_eq!(cm["data"]["mode"], "fast");

        let out = k.ok(&["create", "serviceaccount", "robot", "-n", "team-a"], None);
        assert!(out.contains("serviceaccount/robot created"), "{out}");
        // Deleting through a typed client sends DeleteOptions as protobuf too.
        let out = k.ok(&["delete", "secret", "target-2", "-n", "team-a"], None);
        assert!(out.contains("deleted"), "{out}");
        let (ok, _, err) = k.run(&["get", "secret", "target-2", "-n", "team-a"], None);
        assert!(!ok && err.contains("NotFound"), "{err}");
        // `auth can-i` sends a SelfSubjectAccessReview in protobuf.
        let out = k.ok(
            &["auth", "can-i", "create", "secrets", "-n", "team-a"],
            None,
        );
        assert_eq!(out.trim(), "yes");
        // Kinds the simulator cannot decode are refused by name, not stored wrongly.
        let (ok, _, err) = k.run(
            &[
                "create",
                "deployment",
                "web",
                "--image=nginx",
                "-n",
                "team-a",
            ],
            None,
        );
        assert!(!ok && err.contains("Kind=Deployment"), "{err}");
    })
    .await
    .unwrap();
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
spec:
  podSelector:
    matchLabels: {app: web}
  ingress: [{ports: [{port: 8080, protocol: TCP}]}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: busybox, command: ["true"]}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_and_get_the_workload_kinds() {
    let sim = cluster().await;
    let k = Cli::kubectl(&sim);
    tokio::task::spawn_blocking(move || {
        let out = k.ok(&["apply", "-f", "-"], Some(WORKLOADS));
        for line in [
            "deployment.apps/web created",
            "service/web created",
            "poddisruptionbudget.policy/web created",
            "networkpolicy.networking.k8s.io/web created",
            "job.batch/migrate created",
        ] {
            assert!(out.contains(line), "{line} missing in {out}");
        }
        // Short names from discovery, and the defaults the real server fills in.
        let d = json(&k, &["get", "deploy", "web"]);
        assert_eq!(
            (
                d["spec"]["replicas"].clone(),
                d["metadata"]["generation"].clone()
            ),
            (1.into(), 1.into())
        );
        let s = json(&k, &["get", "svc", "web"]);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert!(s["spec"]["clusterIP"].as_str().unwrap().starts_with("10."));
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        let p = json(&k, &["get", "pdb", "web"]);
        assert_eq!(p["spec"]["minAvailable"], 1);
        let n = json(&k, &["get", "netpol", "web"]);
        assert_eq!(n["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
        let j = json(&k, &["get", "job", "migrate"]);
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "migrate"
        );
        // Re-applying a change goes through the compiled-in strategic merge, silently.
        let (ok, out, err) = k.run(
            &["apply", "-f", "-"],
            Some(&WORKLOADS.replace("image: nginx:1.27", "image: nginx:1.28")),
        );
        assert!(
            ok && out.contains("deployment.apps/web configured"),
            "{out}\n{err}"
        );
        assert!(!err.contains("warning"), "{err}");
        let d = json(&k, &["get", "deployment", "web"]);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.28"
        );
        assert_eq!(d["metadata"]["generation"], 2);
        // Job status is a subresource: patched there, ignored on the main resource.
        k.ok(
            &[
                "patch",
                "job",
                "migrate",
                "--type=merge",
                "-p",
                r#"{"status":{"succeeded":1}}"#,
            ],
            None,
        );
        assert!(json(&k, &["get", "job", "migrate"])["status"]["succeeded"].is_null());
        k.ok(
            &[
                "patch",
                "job",
                "migrate",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}"#,
            ],
            None,
        );
        let out = k.ok(
            &[
                "wait",
                "--for=condition=Complete",
                "job/migrate",
                "--timeout=20s",
            ],
            None,
        );
        assert!(out.contains("condition met"), "{out}");
        let out = k.ok(&["get", "all", "-o", "name"], None);
        for name in ["deployment.apps/web", "service/web", "job.batch/migrate"] {
            assert!(out.contains(name), "{name} missing in `get all`: {out}");
        }
        let out = k.ok(&["delete", "-f", "-"], Some(WORKLOADS));
        assert_eq!(out.matches("deleted").count(), 5, "{out}");
    })
    .await
    .unwrap();
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Gizmo, plural: gizmos, singular: gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"#;

const GIZMO: &str = r#"
apiVersion: example.com/v1
kind: Gizmo
metadata:
  name: g1
  labels: {tier: "one"}
  annotations: {note: first}
spec:
  size: 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_custom_resources_and_config_maps_does_not_warn() {
    let sim = cluster().await;
    let k = Cli::kubectl(&sim);
    tokio::task::spawn_blocking(move || {
        k.ok(&["apply", "-f", "-"], Some(CRD));
        k.ok(&["apply", "-f", "-"], Some(GIZMO));
        // A second client-side apply computes a patch from the OpenAPI documents.
        let (ok, out, err) = k.run(
            &["apply", "-f", "-"],
            Some(&GIZMO.replace("note: first", "note: second")),
        );
        assert!(ok && out.contains("gizmo.example.com/g1 configured"), "{out}\n{err}");
        assert!(!err.contains("warning"), "{err}");
        let g = json(&k, &["get", "gizmo", "g1"]);
        assert_eq!(g["metadata"]["annotations"]["note"], "second");
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations: {a: b}\ndata: {k: v}\n";
        k.ok(&["apply", "-f", "-"], Some(cm));
        let (ok, out, err) = k.run(&["apply", "-f", "-"], Some(&cm.replace("k: v", "k: w")));
        assert!(ok && out.contains("configmap/c configured"), "{out}\n{err}");
        assert!(!err.contains("warning"), "{err}");
        // explain reads the v3 documents, metadata included.
        let out = k.ok(&["explain", "gizmos.metadata.annotations"], None);
        assert!(out.contains("map[string]string"), "{out}");
        // A kind the simulator does not serve fails as on a real server.
        let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 2, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}\n";
        let (ok, _, err) = k.run(&["apply", "-f", "-"], Some(hpa));
        assert!(
            !ok && err.contains("no matches for kind \"HorizontalPodAutoscaler\""),
            "{err}"
        );
    })
    .await
    .unwrap();
}
