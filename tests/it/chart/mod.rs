//! The Helm chart (`charts/kubevirt-shepherd`) with the real Helm 4: lint, render and validate
//! every built-in object against Kubernetes 1.37's schemas (`render`); install, upgrade and
//! uninstall into the simulated management cluster, then run the rendered Deployment's
//! process as the chart's ServiceAccount under RBAC (`install`), and show that every RBAC
//! rule it grants is needed (`least_privilege`). `node` plays the kubelet for those tests.

mod install;
mod least_privilege;
mod node;
mod render;

use serde_json::Value;
use std::path::{Path, PathBuf};

pub const CHART: &str = "charts/kubevirt-shepherd";
/// The namespace the tests install into.
pub const NAMESPACE: &str = "kubevirt-shepherd";
/// The release name; objects are named `shepherd-kubevirt-shepherd...` unless overridden.
pub const RELEASE: &str = "shepherd";
/// The base name of every object of the release (`fullnameOverride` in the tests' values).
pub const FULLNAME: &str = "kubevirt-shepherd";

/// A pinned tool from the environment variable, else the project cache (`make test`
/// installs both).
fn tool(var: &str, cached: &str, make_target: &str) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return path.into();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(cached);
    assert!(
        path.exists(),
        "{} is missing: run `make {make_target}` (or `make test`), or set {var}",
        path.display()
    );
    path
}

pub fn helm_path() -> PathBuf {
    tool("SHEPHERD_HELM", ".cache/tools/helm/helm", "helm")
}

pub fn kubernetes_validate_path() -> PathBuf {
    tool(
        "SHEPHERD_KUBERNETES_VALIDATE",
        ".cache/tools/kubernetes-validate/run",
        "kubernetes-validate",
    )
}

/// Runs helm with a private HOME (no user configuration, no repositories); (ok, stdout, stderr).
pub fn helm(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(helm_path())
        .args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The YAML documents of a rendered manifest, empty ones left out.
pub fn documents(manifest: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in manifest.lines().chain(std::iter::once("---")) {
        if line.starts_with("---") {
            if !current.trim().is_empty() {
                let doc: Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{current}"));
                if !doc.is_null() {
                    docs.push(doc);
                }
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// The one rendered object of `kind` named `name`.
pub fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The simulated management cluster (RBAC enforced) with a KubeVirt target cluster, a scratch
/// database, and kubectl and helm run as its users, for installing the chart for real.
pub struct Installation {
    pub sim: shepherd_sim::SimCluster,
    pub target: shepherd_sim::SimCluster,
    pub db: crate::common::TestDb,
    /// URL of the database's owner (migrations); the service uses `runner_url`.
    pub owner_url: String,
    pub runner_url: String,
    pub dir: tempfile::TempDir,
    pub admin: kube::Client,
}

/// The values the tests install with: the database Secrets, a bootstrap admin, fast
/// intervals, text logs.
pub const VALUES: &[&str] = &[
    "--set",
    "fullnameOverride=kubevirt-shepherd",
    "--set",
    "database.existingSecret=shepherd-db",
    "--set",
    "database.migrationSecret=shepherd-db-owner",
    "--set",
    "bootstrapAdmins={user:admin}",
    "--set",
    "auditAnchorIntervalSeconds=1",
    "--set",
    "probeIntervalSeconds=5",
    "--set",
    "logging.format=text",
    // The tests reach the REST API on loopback by this name.
    "--set",
    "tls.extraDnsNames={localhost}",
];

impl Installation {
    /// A management cluster with RBAC, users admin (system:masters), alice and bob (no
    /// Kubernetes permissions until bound), the namespaces `kubevirt-shepherd` and `apps`,
    /// the database Secrets and the target cluster's kubeconfig Secret, all created with
    /// the real kubectl as an admin would; nothing of the chart yet.
    pub async fn prepare(db: crate::common::TestDb) -> Installation {
        use shepherd_sim::{ClusterConfig, SimCluster, User};
        let sim = SimCluster::start(
            ClusterConfig::new("mgmt")
                .with_rbac()
                .with_user(User::new("alice", &["dev"]))
                .with_user(User::new("bob", &["approvers"])),
        )
        .await
        .unwrap();
        let target = SimCluster::start(ClusterConfig::target("target-1"))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for user in ["admin", "alice", "bob"] {
            sim.write_kubeconfig(dir.path(), user).unwrap();
        }
        let target_kubeconfig = target
            .write_kubeconfig(&dir.path().join("target"), "admin")
            .unwrap();
        let owner_url = db.url.clone();
        let (scheme_user, rest) = owner_url.split_once('@').unwrap();
        let (scheme, _) = scheme_user.split_once("//").unwrap();
        let runner_url = format!("{scheme}//shepherd_runner_chart@{rest}");
        let admin = sim.kube_client("admin").unwrap();
        let installation = Installation {
            sim,
            target,
            db,
            owner_url,
            runner_url,
            dir,
            admin,
        };
        let i = &installation;
        for namespace in [NAMESPACE, "apps"] {
            i.kubectl_ok("admin", &["create", "namespace", namespace], None)
                .await;
        }
        for (secret, url) in [
            ("shepherd-db", &i.runner_url),
            ("shepherd-db-owner", &i.owner_url),
        ] {
            i.kubectl_ok(
                "admin",
                &[
                    "-n",
                    NAMESPACE,
                    "create",
                    "secret",
                    "generic",
                    secret,
                    &format!("--from-literal=url={url}"),
                ],
                None,
            )
            .await;
        }
        i.kubectl_ok(
            "admin",
            &[
                "-n",
                NAMESPACE,
                "create",
                "secret",
                "generic",
                "target-1-kubeconfig",
                &format!("--from-file=kubeconfig={}", target_kubeconfig.display()),
            ],
            None,
        )
        .await;
        installation
    }

    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.kubeconfig"))
    }

    /// Runs the real kubectl as `user`; (ok, stdout, stderr). Async: the simulator answers
    /// on this test's runtime.
    pub async fn kubectl(
        &self,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        crate::common::e2e::run_kubectl(
            &self.kubeconfig(user),
            self.dir.path(),
            &format!("kube-cache-{user}"),
            args,
            stdin,
        )
        .await
    }

    pub async fn kubectl_ok(&self, user: &str, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(user, args, stdin).await;
        assert!(ok, "kubectl {args:?} as {user} failed: {err}{out}");
        out
    }

    /// `helm ARGS` against the management cluster as admin, while this test plays the node
    /// for the migration hook Job (when `hook`). (ok, stdout, stderr).
    pub async fn helm_with_hook(&self, args: &[&str], hook: bool) -> (bool, String, String) {
        let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        full.extend([
            "--kubeconfig".into(),
            self.kubeconfig("admin").display().to_string(),
            "--namespace".into(),
            NAMESPACE.into(),
        ]);
        let home = self.dir.path().join("helm-home");
        let helm = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = full.iter().map(String::as_str).collect();
            helm(&home, &args)
        });
        if hook {
            node::complete_job(&self.admin, NAMESPACE, &format!("{FULLNAME}-migrate")).await;
        }
        helm.await.unwrap()
    }

    /// `helm install` of the chart with `VALUES` and `extra`, completing the migration Job;
    /// returns what helm printed (the chart's notes).
    pub async fn install(&self, extra: &[&str]) -> String {
        let mut args = vec!["install", RELEASE, CHART, "--timeout", "3m"];
        args.extend_from_slice(VALUES);
        args.extend_from_slice(extra);
        let (ok, out, err) = self.helm_with_hook(&args, true).await;
        assert!(ok, "helm install failed: {err}{out}");
        // The login role of the service, a member of shepherd_app (which migrate created).
        sqlx::raw_sql(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shepherd_runner_chart') THEN
                 CREATE ROLE shepherd_runner_chart LOGIN IN ROLE shepherd_app;
               END IF;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .execute(&self.db.pool)
        .await
        .unwrap();
        out
    }

    /// Starts a replica of the installed Deployment as the chart's ServiceAccount and routes
    /// the webhook Service to it.
    pub async fn start_replica(&self, pod_name: &str) -> Result<node::Replica, String> {
        let kubeconfig = self
            .sim
            .write_service_account_kubeconfig(self.dir.path(), NAMESPACE, FULLNAME)
            .unwrap();
        let replica =
            node::start_replica(&self.admin, NAMESPACE, FULLNAME, pod_name, &kubeconfig).await?;
        self.sim.route_service(
            NAMESPACE,
            &format!("{FULLNAME}-webhook"),
            443,
            replica.webhook,
        );
        Ok(replica)
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

    /// Waits (up to `seconds`, a liveness bound) until `done` holds for the object.
    pub async fn wait_for(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        seconds: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        crate::common::eventually(
            &format!("{kind} {name}"),
            seconds,
            || self.get(kind, namespace, name),
            |o| o.as_ref().is_some_and(&done),
        )
        .await
        .unwrap()
    }

    /// `kubectl shepherd ARGS` as `user` against a replica's REST API; (exit code, stdout, stderr).
    pub async fn plugin(
        &self,
        replica: &node::Replica,
        user: &str,
        args: &[&str],
    ) -> (i32, String, String) {
        // Built on first use: off this runtime, which serves the simulator.
        let plugin = tokio::task::spawn_blocking(crate::common::plugin_binary)
            .await
            .unwrap();
        let ca = self.dir.path().join("api-ca.crt");
        let tls = self
            .get("secret", Some(NAMESPACE), &format!("{FULLNAME}-tls"))
            .await
            .unwrap();
        use base64::Engine;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(tls["data"]["ca.crt"].as_str().unwrap())
            .unwrap();
        std::fs::write(&ca, pem).unwrap();
        let out = tokio::process::Command::new(crate::common::e2e::kubectl_path())
            .arg("shepherd")
            .args(args)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    plugin.parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", self.kubeconfig(user))
            // The certificate names the Services; the test reaches the replica on loopback.
            .env(
                "SHEPHERD_API_URL",
                format!("https://localhost:{}", replica.api.port()),
            )
            .env("SHEPHERD_API_CA", &ca)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Binds `users` to the chart's ClusterRole for people (`FULLNAME-user`).
    pub async fn bind_users(&self, users: &[&str]) {
        let subjects: Vec<Value> = users
            .iter()
            .map(|u| serde_json::json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u}))
            .collect();
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "shepherd-users"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{FULLNAME}-user")},
            "subjects": subjects,
        });
        self.kubectl_ok("admin", &["apply", "-f", "-"], Some(&binding.to_string()))
            .await;
    }
}
