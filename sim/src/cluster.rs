//! `SimCluster`: one simulated cluster (API server + optional KubeVirt) and `Sim`, a
//! management cluster plus target clusters sharing one CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::{User, random_token};
use crate::error::SimError;
use crate::faults::Faults;
use crate::kubevirt::{KubeVirt, KubeVirtConfig};
use crate::objects::{Core, Ctx};
use crate::rbac::Authorization;
use crate::resources::Registry;
use crate::server::{App, router, serve_https};
use crate::store::Store;
use crate::tls::CertAuthority;

/// Configuration of one simulated cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterConfig {
    pub name: String,
    /// Free-form environment tag (e.g. `test`, `prod`), written as a label on the
    /// `kube-system` namespace so tools can read it back.
    pub environment: Option<String>,
    /// Users and their groups; an `admin` in `system:masters` is always added.
    pub users: Vec<User>,
    /// Number of change events retained for watches; older versions answer 410 Gone.
    pub watch_window: usize,
    /// How often watches that allow bookmarks receive one.
    pub bookmark_interval_ms: u64,
    /// Simulate KubeVirt (target clusters).
    pub kubevirt: Option<KubeVirtConfig>,
    /// `AlwaysAllow` (default: every authenticated user may do everything) or `RBAC`.
    pub authorization: Authorization,
    /// Objects (e.g. CRDs from `crds/`) created at start, in order.
    #[serde(skip)]
    pub objects: Vec<Value>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            name: "sim".into(),
            environment: None,
            users: vec![],
            watch_window: 10_000,
            bookmark_interval_ms: 1_000,
            kubevirt: None,
            authorization: Authorization::AlwaysAllow,
            objects: vec![],
        }
    }
}

impl ClusterConfig {
    pub fn new(name: &str) -> Self {
        ClusterConfig {
            name: name.into(),
            ..Default::default()
        }
    }

    /// A target cluster with the default simulated KubeVirt.
    pub fn target(name: &str) -> Self {
        ClusterConfig {
            name: name.into(),
            kubevirt: Some(KubeVirtConfig::default()),
            ..Default::default()
        }
    }

    pub fn with_user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    pub fn with_object(mut self, obj: Value) -> Self {
        self.objects.push(obj);
        self
    }

    /// Adds every document of a YAML stream (e.g. a CRD file) as a startup object.
    pub fn with_yaml(mut self, yaml: &str) -> Result<Self, SimError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| SimError::Config(e.to_string()))?;
        self.objects
            .extend(docs.into_iter().filter(|d| !d.is_null()));
        Ok(self)
    }

    pub fn with_watch_window(mut self, events: usize) -> Self {
        self.watch_window = events;
        self
    }

    pub fn with_kubevirt(mut self, kv: KubeVirtConfig) -> Self {
        self.kubevirt = Some(kv);
        self
    }

    /// Enforces RBAC (`Authorization::Rbac`) or lets every user do everything.
    pub fn with_authorization(mut self, authorization: Authorization) -> Self {
        self.authorization = authorization;
        self
    }

    /// Shorthand for `with_authorization(Authorization::Rbac)`.
    pub fn with_rbac(self) -> Self {
        self.with_authorization(Authorization::Rbac)
    }
}

/// A running simulated cluster. Dropping it does not stop the server; call `shutdown`.
pub struct SimCluster {
    name: String,
    addr: SocketAddr,
    ca_pem: String,
    users: Vec<User>,
    core: Arc<Core>,
    kubevirt: Option<Arc<KubeVirt>>,
    shutdown: watch::Sender<bool>,
}

impl SimCluster {
    /// Starts a cluster with its own CA.
    pub async fn start(config: ClusterConfig) -> Result<SimCluster, SimError> {
        let ca = CertAuthority::new("shepherd-sim-ca")?;
        Self::start_with_ca(config, &ca).await
    }

    /// Starts a cluster whose serving certificate is signed by `ca`.
    pub async fn start_with_ca(
        config: ClusterConfig,
        ca: &CertAuthority,
    ) -> Result<SimCluster, SimError> {
        let mut users = config.users.clone();
        if !users.iter().any(|u| u.name == "admin") {
            users.insert(0, User::admin());
        }
        for u in users.iter_mut().filter(|u| u.token.is_empty()) {
            u.token = random_token();
        }
        let store = Arc::new(Store::new(config.watch_window));
        let faults = Arc::new(Faults::default());
        let _ = faults.store.set(store.clone());
        let core = Arc::new(Core {
            name: config.name.clone(),
            store,
            registry: RwLock::new(Registry::with_builtins()),
            users: users.clone(),
            faults: faults.clone(),
            bookmark_interval: Duration::from_millis(config.bookmark_interval_ms.max(10)),
            authorization: crate::rbac::Mode::new(config.authorization),
            tokens: Default::default(),
            service_routes: Default::default(),
        });
        let ctx = Ctx::internal("shepherd-sim");
        let ns_def = core.find("", "v1", "namespaces")?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut o = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}});
            if ns == "kube-system"
                && let Some(env) = &config.environment
            {
                o["metadata"]["labels"]["sim.kubevirt-shepherd.io/environment"] = json!(env);
            }
            core.create(&ctx, &ns_def, "", o).await?;
        }
        let kubevirt = match &config.kubevirt {
            Some(kv) => Some(KubeVirt::install(&core, kv.clone()).await?),
            None => None,
        };
        for obj in &config.objects {
            let def = core.def_for(
                obj["apiVersion"].as_str().unwrap_or_default(),
                obj["kind"].as_str().unwrap_or_default(),
            )?;
            let ns = if def.namespaced {
                obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string()
            } else {
                String::new()
            };
            core.create(&ctx, &def, &ns, obj.clone()).await?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let cert = ca.issue(&["127.0.0.1", "localhost"])?;
        let tls = cert.server_config()?;
        let app = Arc::new(App {
            core: core.clone(),
            kubevirt: kubevirt.clone(),
            addr: addr.to_string(),
        });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve_https(
            listener,
            tls,
            router(app),
            rx.clone(),
            Some(faults),
        ));
        if let Some(kv) = &kubevirt {
            tokio::spawn(kv.clone().run(core.clone(), rx));
        }
        tracing::info!(cluster = %config.name, %addr, "simulated cluster started");
        Ok(SimCluster {
            name: config.name,
            addr,
            ca_pem: ca.ca_pem().to_string(),
            users,
            core,
            kubevirt,
            shutdown: tx,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    pub fn token(&self, user: &str) -> Result<&str, SimError> {
        self.users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.token.as_str())
            .ok_or_else(|| SimError::UnknownUser(user.into(), self.name.clone()))
    }

    pub fn faults(&self) -> &Faults {
        &self.core.faults
    }

    /// The KubeVirt simulator, for target clusters.
    pub fn kubevirt(&self) -> Option<&KubeVirt> {
        self.kubevirt.as_deref()
    }

    /// The current authorization mode.
    pub fn authorization(&self) -> Authorization {
        self.core.authorization.get()
    }

    /// Switches the authorization mode at run time (e.g. turn RBAC on after setup).
    pub fn set_authorization(&self, authorization: Authorization) {
        self.core.authorization.set(authorization);
    }

    /// Issues a token for the existing ServiceAccount `namespace/name`, as a
    /// `TokenRequest` with default audience and an expiry of `expiration`. It authenticates
    /// as `system:serviceaccount:<namespace>:<name>` until the ServiceAccount is deleted.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        expiration: Duration,
    ) -> Result<String, SimError> {
        let secs = i64::try_from(expiration.as_secs()).unwrap_or(i64::MAX);
        let (token, _) = self.core.tokens.issue(
            &self.core,
            namespace,
            name,
            vec![crate::tokens::API_AUDIENCE.to_string()],
            secs,
        )?;
        Ok(token)
    }

    /// A kubeconfig for the ServiceAccount `namespace/name` with a freshly issued
    /// one-day token (user `<name>`, context `<name>@<cluster>`, namespace `namespace`).
    pub fn service_account_kubeconfig_yaml(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, SimError> {
        let token = self.service_account_token(namespace, name, Duration::from_secs(24 * 3600))?;
        Ok(self.kubeconfig_for(name, &token, namespace))
    }

    /// Writes `<dir>/<namespace>.<name>.kubeconfig` (see
    /// `service_account_kubeconfig_yaml`) and returns its path.
    pub fn write_service_account_kubeconfig(
        &self,
        dir: &Path,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, SimError> {
        let yaml = self.service_account_kubeconfig_yaml(namespace, name)?;
        write_file(dir, &format!("{namespace}.{name}.kubeconfig"), &yaml)
    }

    /// A kube client authenticated as the ServiceAccount `namespace/name`.
    pub fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, SimError> {
        let yaml = self.service_account_kubeconfig_yaml(namespace, name)?;
        client_from_yaml(&yaml)
    }

    /// Routes the Service `namespace/name` on `port` to `addr`, as kube-proxy would to a
    /// pod: admission webhooks with `clientConfig.service` then dial `addr`, verifying the
    /// certificate for `<name>.<namespace>.svc` against `caBundle`. Unrouted Services
    /// fail like one without endpoints.
    pub fn route_service(&self, namespace: &str, name: &str, port: u16, addr: SocketAddr) {
        self.core
            .service_routes
            .set(namespace, name, port, Some(addr));
    }

    /// Removes a route set by `route_service`.
    pub fn unroute_service(&self, namespace: &str, name: &str, port: u16) {
        self.core.service_routes.set(namespace, name, port, None);
    }

    fn kubeconfig_for(&self, user: &str, token: &str, namespace: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let (c, ctx) = (&self.name, format!("{user}@{}", self.name));
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {ctx}\n  context:\n    cluster: {c}\n    user: {user}\n    namespace: {namespace}\ncurrent-context: {ctx}\n",
            url = self.url()
        )
    }

    /// The kubeconfig for `user` as YAML (context `<user>@<cluster>`, namespace default).
    pub fn kubeconfig_yaml(&self, user: &str) -> Result<String, SimError> {
        let token = self.token(user)?;
        Ok(self.kubeconfig_for(user, token, "default"))
    }

    /// Writes `<dir>/<user>.kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, user: &str) -> Result<PathBuf, SimError> {
        let yaml = self.kubeconfig_yaml(user)?;
        write_file(dir, &format!("{user}.kubeconfig"), &yaml)
    }

    pub fn kube_config(&self, user: &str) -> Result<kube::Config, SimError> {
        config_from_yaml(&self.kubeconfig_yaml(user)?)
    }

    /// A kube client authenticated as `user`.
    pub fn kube_client(&self, user: &str) -> Result<kube::Client, SimError> {
        let cfg = self.kube_config(user)?;
        kube::Client::try_from(cfg).map_err(|e| SimError::Kube(e.to_string()))
    }

    /// Stops serving (open connections are closed) and the simulated controllers.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_file(dir: &Path, file: &str, text: &str) -> Result<PathBuf, SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Write {
        path: dir.into(),
        source,
    })?;
    let path = dir.join(file);
    std::fs::write(&path, text).map_err(|source| SimError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn config_from_yaml(yaml: &str) -> Result<kube::Config, SimError> {
    let kc =
        kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| SimError::Kube(e.to_string()))?;
    let opts = kube::config::KubeConfigOptions::default();
    // Config::from_custom_kubeconfig is async only to run exec plugins; none here.
    futures::executor::block_on(kube::Config::from_custom_kubeconfig(kc, &opts))
        .map_err(|e| SimError::Kube(e.to_string()))
}

fn client_from_yaml(yaml: &str) -> Result<kube::Client, SimError> {
    kube::Client::try_from(config_from_yaml(yaml)?).map_err(|e| SimError::Kube(e.to_string()))
}

/// Configuration of a whole simulation: a management cluster and target clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SimConfig {
    pub management: ClusterConfig,
    pub targets: Vec<ClusterConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            management: ClusterConfig::new("management"),
            targets: vec![ClusterConfig::target("target-1")],
        }
    }
}

/// A management cluster and N target clusters, all trusted through one CA.
pub struct Sim {
    pub management: SimCluster,
    pub targets: Vec<SimCluster>,
    ca_pem: String,
}

impl Sim {
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        let ca = CertAuthority::new("shepherd-sim-ca")?;
        let management = SimCluster::start_with_ca(config.management, &ca).await?;
        let mut targets = vec![];
        for t in config.targets {
            let mut t = t;
            if t.kubevirt.is_none() {
                t.kubevirt = Some(KubeVirtConfig::default());
            }
            targets.push(SimCluster::start_with_ca(t, &ca).await?);
        }
        Ok(Sim {
            management,
            targets,
            ca_pem: ca.ca_pem().to_string(),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn target(&self, name: &str) -> Option<&SimCluster> {
        self.targets.iter().find(|t| t.name() == name)
    }

    pub fn clusters(&self) -> impl Iterator<Item = &SimCluster> {
        std::iter::once(&self.management).chain(self.targets.iter())
    }

    /// Writes `<dir>/<cluster>/<user>.kubeconfig` for every cluster and user.
    pub fn write_kubeconfigs(&self, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
        let mut out = vec![];
        for c in self.clusters() {
            for u in c.users() {
                out.push(c.write_kubeconfig(&dir.join(c.name()), &u.name)?);
            }
        }
        Ok(out)
    }

    pub fn shutdown(&self) {
        for c in self.clusters() {
            c.shutdown();
        }
    }
}
