//! End-to-end fixture: a simulated management cluster with Shepherd's CRDs, the webhook and
//! the reconcilers running in-process against a fresh PostgreSQL database, and the real
//! kubectl with one kubeconfig per user.

use super::TestDb;
use base64::Engine;
use serde_json::{Value, json};
use shepherd::app::seed::{SeedConfig, run as seed};
use shepherd::controller::lease::LeaseConfig;
use shepherd::db::rbac::NewRoleBinding;
use shepherd::db::{PoolSizes, Pools};
use shepherd::domain::Subject;
use shepherd::domain::identity::KeyRing;
use shepherd::http::api::ApiConfig;
use shepherd::jobs::WorkerOptions;
use shepherd::run::{ApiOptions, RunOptions, Running, WebhookOptions};
use shepherd_sim::{ClusterConfig, SimCluster, User};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

pub const KEY: &[u8] = b"an-identity-key-for-tests-only-32bytes!!";

/// A started shepherd's database pools, one per component, on the test's database.
pub fn pools(url: &str) -> Pools {
    Pools::connect_lazy(url, &PoolSizes::for_workers(4)).unwrap()
}

/// The identity keys a started shepherd uses: [`KEY`] alone.
pub fn keys() -> KeyRing {
    KeyRing::new(KEY.to_vec(), Vec::new()).unwrap()
}

/// alice's System `shop` and its Service `web`.
pub const SHOP: &str = r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: System
metadata: {name: shop}
spec: {description: "the web shop"}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: Service
metadata: {name: shop.web}
spec: {system: shop}
"#;

/// The catalog every end-to-end world starts with: namespaces team-a (test) and shop-prod
/// (prod), template fedora, size small.
pub const CATALOG: &str = r#"
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmNamespace
metadata: {name: team-a}
spec: {environment: test}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmNamespace
metadata: {name: shop-prod}
spec: {environment: prod}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: VmTemplate
metadata: {name: fedora}
spec: {image: {containerDisk: "quay.io/containerdisks/fedora:40"}}
---
apiVersion: shepherd.kv-shepherd.io/v1alpha1
kind: InstanceSize
metadata: {name: small}
spec: {cpu: {cores: 2}, memory: {mib: 2048}, disk: {minGiB: 10, maxGiB: 100}}
"#;

pub struct Env {
    pub db: TestDb,
    pub sim: SimCluster,
    /// Target clusters with simulated KubeVirt, registered by `add_target`.
    pub targets: Vec<SimCluster>,
    /// Whether the in-process shepherd works River jobs (set before `start_shepherd`).
    pub workers: bool,
    /// How often the workers probe every cluster (set before `start_shepherd`).
    pub probe_interval: Duration,
    /// How often the workers scan every cluster for drift (set before `start_shepherd`).
    pub drift_interval: Duration,
    /// The rest of the workers' settings ([`worker_options`]; set before `start_shepherd`).
    pub worker_options: WorkerOptions,
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    /// The pools of the running shepherd (shared with it: a test may exhaust one).
    pub pools: Option<Pools>,
    /// The identity keys the next `start_shepherd` uses ([`keys`] unless a test rotates them).
    pub identity_keys: KeyRing,
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

/// Workers as in production, but fewer, with fewer writes per cluster, and a dead process's
/// jobs are rescued within seconds.
pub fn worker_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        cluster_write_concurrency: 5,
        job_timeout: Duration::from_secs(20),
        rescue_after: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerOptions::default()
    }
}

pub fn kubectl_path() -> PathBuf {
    if let Ok(path) = std::env::var("SHEPHERD_KUBECTL") {
        return path.into();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/tools/kubectl/bin/kubectl");
    assert!(
        path.exists(),
        "kubectl is missing: run `make kubectl` (or `make test`)"
    );
    path
}

fn all_crds_yaml() -> String {
    shepherd::crd::crdgen::all()
        .iter()
        .map(|(_, crd)| shepherd::crd::crdgen::to_yaml(crd))
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn bind(db: &TestDb, subject: Subject, role: &str, envs: &[&str]) {
    let envs: Vec<String> = envs.iter().map(|e| e.to_string()).collect();
    let mut conn = db.pool.acquire().await.unwrap();
    shepherd::db::rbac::insert_role_binding(
        &mut conn,
        &NewRoleBinding {
            subject: &subject,
            role,
            scope_system_id: None,
            allowed_environments: &envs,
            source: "api",
            created_by: "test",
        },
    )
    .await
    .unwrap();
}

/// Users: alice (requester, test), carol (requester, test and prod), bob (approver),
/// admin (platform admin, bootstrap).
pub async fn start(db: TestDb) -> Env {
    start_with(db, true).await
}

/// `start`, choosing whether the process works River jobs (provisioning, cluster probes).
/// Without workers nothing probes the clusters: tests that approve mark them probed
/// healthy (`common::probed_healthy`).
pub async fn start_with(db: TestDb, workers: bool) -> Env {
    // RUST_LOG=shepherd=debug shows what the controller and webhook do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    seed(
        &db.pool,
        &SeedConfig {
            bootstrap_admins: vec![Subject::user("admin")],
        },
    )
    .await
    .unwrap();
    bind(&db, Subject::user("alice"), "operator", &["test"]).await;
    bind(&db, Subject::user("carol"), "operator", &["test", "prod"]).await;
    bind(&db, Subject::user("bob"), "approver", &["test", "prod"]).await;

    let sim = SimCluster::start(
        ClusterConfig::new("mgmt")
            .with_yaml(&all_crds_yaml())
            .unwrap()
            .with_user(User::new("alice", &["dev"]))
            .with_user(User::new("carol", &["dev"]))
            .with_user(User::new("bob", &["approvers"]))
            .with_user(User::new("mallory", &[])),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for user in ["admin", "alice", "carol", "bob", "mallory"] {
        sim.write_kubeconfig(dir.path(), user).unwrap();
    }
    let ca = shepherd_sim::tls::CertAuthority::new("webhook-ca").unwrap();
    let serving = ca.issue(&["127.0.0.1"]).unwrap();
    let (cert, key) = (
        dir.path().join("webhook.crt"),
        dir.path().join("webhook.key"),
    );
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let mut env = Env {
        db,
        sim,
        targets: Vec::new(),
        workers,
        probe_interval: shepherd::jobs::DEFAULT_PROBE_INTERVAL,
        drift_interval: shepherd::jobs::drift::DEFAULT_DRIFT_INTERVAL,
        worker_options: worker_options(),
        dir,
        running: None,
        pools: None,
        identity_keys: keys(),
        ca_pem: ca.ca_pem().to_string(),
        cert,
        key,
    };
    let namespaces = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt-shepherd}\n---\n\
                      apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n";
    env.kubectl_ok("admin", &["apply", "-f", "-"], Some(namespaces))
        .await;
    env.start_shepherd("replica-1").await;
    env.register_webhooks().await;
    env.apply_catalog().await;
    env
}

impl Env {
    pub async fn start_shepherd(&mut self, identity: &str) {
        self.start_shepherd_with(identity, true).await;
    }

    /// Replaces the running process with one that serves the webhook and the REST API and,
    /// when `controllers`, runs the reconcilers.
    pub async fn start_shepherd_with(&mut self, identity: &str, controllers: bool) {
        let mut lease = LeaseConfig::new(
            "kubevirt-shepherd",
            "kubevirt-shepherd-controller",
            identity,
        );
        lease.duration = Duration::from_secs(3);
        lease.renew_every = Duration::from_millis(500);
        let opts = RunOptions {
            webhook: Some(WebhookOptions {
                addr: "127.0.0.1:0".parse().unwrap(),
                cert: self.cert.clone(),
                key: self.key.clone(),
                client_ca: None,
            }),
            api: Some(ApiOptions {
                addr: "127.0.0.1:0".parse().unwrap(),
                tls: Some((self.cert.clone(), self.key.clone())),
                config: ApiConfig::default(),
            }),
            health_addr: Some("127.0.0.1:0".parse().unwrap()),
            controllers,
            lease,
            workers: self.workers.then(|| WorkerOptions {
                probe_interval: self.probe_interval,
                drift_interval: self.drift_interval,
                ..self.worker_options.clone()
            }),
            cluster_write_concurrency: self.worker_options.cluster_write_concurrency,
            audit_anchor_interval: Duration::from_secs(1),
        };
        let client = self.sim.kube_client("admin").unwrap();
        let pools = pools(&self.db.url);
        self.pools = Some(pools.clone());
        let running = shepherd::run::start(opts, pools, client, self.identity_keys.clone())
            .await
            .unwrap();
        if let Some(previous) = self.running.replace(running) {
            previous.stop().await;
        }
        if self.webhook_configured().await {
            self.register_webhooks().await;
        }
    }

    /// Starts a target cluster with simulated KubeVirt, stores its admin kubeconfig in the
    /// Secret `kubevirt-shepherd/<name>-kubeconfig` of the management cluster (unless
    /// `with_secret` is false) and registers it as a `Cluster` of `environment`; returns once
    /// the Cluster is mirrored and, with workers, probed (Healthy, or Unreachable without
    /// its Secret). Without workers nothing probes: it is recorded as probed healthy.
    pub async fn add_target(&mut self, name: &str, environment: &str, with_secret: bool) {
        self.add_target_with(ClusterConfig::target(name), environment, with_secret)
            .await;
        if self.workers {
            // Placement takes only Healthy clusters.
            let health = if with_secret {
                "Healthy"
            } else {
                "Unreachable"
            };
            self.wait_for("clusters.shepherd.kv-shepherd.io", None, name, |o| {
                o.pointer("/status/health") == Some(&json!(health))
            })
            .await;
        } else {
            crate::common::probed_healthy(&self.db.pool, name).await;
        }
    }

    /// `add_target` for a cluster of any configuration (e.g. without KubeVirt); returns once
    /// the Cluster is mirrored, without waiting for a probe.
    pub async fn add_target_with(
        &mut self,
        config: ClusterConfig,
        environment: &str,
        with_secret: bool,
    ) {
        let target = SimCluster::start(config).await.unwrap();
        let name = target.name().to_string();
        if with_secret {
            self.put_kubeconfig_secret(&name, &target.kubeconfig_yaml("admin").unwrap())
                .await;
        }
        self.targets.push(target);
        let cluster = format!(
            "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\n\
             spec: {{environment: {environment}, kubeconfigSecretRef: {{namespace: kubevirt-shepherd, name: {name}-kubeconfig}}}}\n"
        );
        self.kubectl_ok("admin", &["apply", "-f", "-"], Some(&cluster))
            .await;
        self.wait_for("clusters.shepherd.kv-shepherd.io", None, &name, |o| {
            o.pointer("/status/phase") == Some(&json!("Ready"))
        })
        .await;
    }

    /// Writes (or replaces) the kubeconfig Secret of target `name` in the management cluster.
    pub async fn put_kubeconfig_secret(&self, name: &str, kubeconfig: &str) {
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(self.sim.kube_client("admin").unwrap(), "kubevirt-shepherd");
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-kubeconfig")},
            "data": {"kubeconfig": base64::engine::general_purpose::STANDARD.encode(kubeconfig)},
        }))
        .unwrap();
        secrets
            .patch(
                &format!("{name}-kubeconfig"),
                &kube::api::PatchParams::apply("e2e").force(),
                &kube::api::Patch::Apply(&secret),
            )
            .await
            .unwrap();
    }

    /// alice applies `SHOP`; returns once the System and the Service are Active.
    pub async fn apply_shop(&self) {
        self.kubectl_ok("alice", &["apply", "-f", "-"], Some(SHOP))
            .await;
        self.wait_for("systems", None, "shop", |o| {
            o.pointer("/status/phase") == Some(&json!("Active"))
        })
        .await;
        self.wait_for("services.shepherd.kv-shepherd.io", None, "shop.web", |o| {
            o.pointer("/status/phase") == Some(&json!("Active"))
        })
        .await;
    }

    /// alice applies Services `shop.<name>` for each of `names` at once; returns once the
    /// last is Active.
    pub async fn apply_shop_services(&self, names: &[String]) {
        let services: Vec<String> = names
            .iter()
            .map(|name| {
                format!(
                    "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Service\n\
                     metadata: {{name: shop.{name}}}\nspec: {{system: shop}}\n"
                )
            })
            .collect();
        self.kubectl_ok(
            "alice",
            &["apply", "-f", "-"],
            Some(&services.join("---\n")),
        )
        .await;
        let last = names.last().expect("at least one Service");
        self.wait_for(
            "services.shepherd.kv-shepherd.io",
            None,
            &format!("shop.{last}"),
            |o| o.pointer("/status/phase") == Some(&json!("Active")),
        )
        .await;
    }

    /// The body of this process's `/metrics`.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self
            .running
            .as_ref()
            .and_then(|r| r.health_addr)
            .expect("health endpoints running");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_string()
    }

    /// A `shepherd run` process working jobs only, against this test's database and
    /// clusters, logging to `<log_name>.log` in the test's directory; `fault` names a
    /// fault-injection variable to set (e.g. exit right after a cluster call).
    pub fn worker_process(&self, log_name: &str, fault: Option<&str>) -> tokio::process::Child {
        let key = self.dir.path().join("identity.key");
        std::fs::write(&key, KEY).unwrap();
        let log = std::fs::File::create(self.dir.path().join(format!("{log_name}.log"))).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_shepherd"));
        cmd.args([
            "run",
            "--no-controllers",
            "--health-addr",
            "127.0.0.1:0",
            "--instance",
            log_name,
            "--job-timeout-seconds",
            "5",
            "--job-rescue-after-seconds",
            "5",
        ])
        .arg("--identity-key-file")
        .arg(&key)
        // The test database belongs to the superuser that made it.
        .arg("--allow-privileged-database-user")
        .env("DATABASE_URL", &self.db.url)
        .env("KUBECONFIG", self.dir.path().join("admin.kubeconfig"))
        .env("RUST_LOG", "shepherd=info,riverqueue=info")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(log);
        if let Some(fault) = fault {
            cmd.env(fault, "1");
        }
        cmd.spawn().expect("start shepherd run")
    }

    pub fn target(&self, name: &str) -> &SimCluster {
        self.targets
            .iter()
            .find(|t| t.name() == name)
            .expect("a target started by add_target")
    }

    pub async fn stop_shepherd(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    async fn webhook_configured(&self) -> bool {
        self.kubectl(
            "admin",
            &[
                "get",
                "validatingwebhookconfigurations",
                "kubevirt-shepherd",
            ],
            None,
        )
        .await
        .0
    }

    /// Points the management cluster's admission at this process's webhook.
    pub async fn register_webhooks(&self) {
        let addr = self
            .running
            .as_ref()
            .and_then(|r| r.webhook_addr)
            .expect("webhook running");
        self.register_webhooks_at(addr).await;
    }

    /// The webhook's serving certificate and key (for a `shepherd run` process).
    pub fn webhook_tls(&self) -> (&Path, &Path) {
        (&self.cert, &self.key)
    }

    /// Points the management cluster's admission at a webhook serving `webhook_tls` at `addr`.
    pub async fn register_webhooks_at(&self, addr: std::net::SocketAddr) {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let hook = |path: &str, ops: Value, resources: Value| {
            json!({
                "name": format!("{}.shepherd.kv-shepherd.io", path.trim_start_matches('/')),
                "clientConfig": {"url": format!("https://{addr}{path}"), "caBundle": ca},
                "rules": [{"apiGroups": ["shepherd.kv-shepherd.io"], "apiVersions": ["v1alpha1"],
                           "operations": ops, "resources": resources, "scope": "*"}],
                "failurePolicy": "Fail", "sideEffects": "NoneOnDryRun", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            })
        };
        let mutating = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "kubevirt-shepherd"},
            "webhooks": [hook("/mutate", json!(["CREATE", "UPDATE"]),
                              json!(["systems", "services", "vmrequests", "vmoperations", "approvals"]))],
        });
        let validating = json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "kubevirt-shepherd"},
            "webhooks": [hook("/validate", json!(["CREATE", "UPDATE", "DELETE"]), json!(["*"]))],
        });
        for doc in [mutating, validating] {
            self.kubectl_ok("admin", &["apply", "-f", "-"], Some(&doc.to_string()))
                .await;
        }
    }

    pub async fn remove_webhooks(&self) {
        for kind in [
            "mutatingwebhookconfiguration",
            "validatingwebhookconfiguration",
        ] {
            self.kubectl_ok("admin", &["delete", kind, "kubevirt-shepherd"], None)
                .await;
        }
    }

    async fn apply_catalog(&self) {
        self.kubectl_ok("admin", &["apply", "-f", "-"], Some(CATALOG))
            .await;
        for (kind, name) in [
            ("vmnamespaces", "team-a"),
            ("vmnamespaces", "shop-prod"),
            ("vmtemplates", "fedora"),
            ("instancesizes", "small"),
        ] {
            self.wait_for(kind, None, name, |o| {
                o.pointer("/status/phase") == Some(&json!("Ready"))
            })
            .await;
        }
    }

    /// Runs kubectl as `user`; (success, stdout, stderr).
    /// Async, because the webhook and the reconcilers it talks to run on this runtime.
    pub async fn kubectl(
        &self,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        run_kubectl(
            &self.dir.path().join(format!("{user}.kubeconfig")),
            self.dir.path(),
            "kube-cache",
            args,
            stdin,
        )
        .await
    }

    /// Runs `kubectl shepherd ARGS` as `user`: the real kubectl finds the plugin binary on
    /// PATH, and the plugin calls this process's REST API with the user's kubeconfig token.
    /// (exit code, stdout, stderr).
    pub async fn plugin(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let plugin = crate::common::plugin_binary();
        let path = format!(
            "{}:{}",
            plugin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let api = self
            .running
            .as_ref()
            .and_then(|r| r.api_addr)
            .expect("REST API running");
        let ca = self.dir.path().join("api-ca.crt");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        let out = Command::new(kubectl_path())
            .arg("shepherd")
            .args(args)
            .env("PATH", path)
            .env("HOME", self.dir.path())
            .env(
                "KUBECONFIG",
                self.dir.path().join(format!("{user}.kubeconfig")),
            )
            .env("SHEPHERD_API_URL", format!("https://{api}"))
            .env("SHEPHERD_API_CA", &ca)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run kubectl shepherd");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn kubectl_ok(&self, user: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(user, args, stdin).await;
        assert!(ok, "kubectl {args:?} as {user} failed: {err}{out}");
        out
    }

    /// Reads an object as admin (JSON), None when absent.
    pub async fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let (ok, out, _) = self.kubectl("admin", &args, None).await;
        ok.then(|| serde_json::from_str(&out).unwrap())
    }

    /// Polls until `done` holds for the object (30 s at most: this is a liveness bound on a
    /// loaded 2-core machine, not a performance assertion).
    pub async fn wait_for(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_within(Duration::from_secs(30), kind, namespace, name, done)
            .await
    }

    /// `wait_for` with another bound, for work that takes longer (retries with backoff).
    pub async fn wait_for_within(
        &self,
        bound: Duration,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let obj = self.get(kind, namespace, name).await;
            if let Some(obj) = &obj
                && done(obj)
            {
                return obj.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind} {name} never got there; last seen: {obj:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_gone(&self, kind: &str, namespace: Option<&str>, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.get(kind, namespace, name).await.is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind} {name} was never deleted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs the pinned kubectl with `kubeconfig`, HOME `dir` and the discovery cache
/// `dir/cache`; (success, stdout, stderr). Async, because the simulator (and often the
/// webhook it calls) answer on the test's runtime.
pub async fn run_kubectl(
    kubeconfig: &Path,
    dir: &Path,
    cache: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .args(args)
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
