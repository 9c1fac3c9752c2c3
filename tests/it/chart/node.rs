//! Plays the kubelet (and the Job controller) for the chart tests: runs a rendered pod's
//! containers as local processes of the `shepherd` binary built by this workspace, with the
//! pod's exact arguments and environment. Only what a node provides is substituted:
//! - Secret and ConfigMap volumes are written under a directory, and mount paths in the
//!   arguments point there;
//! - listen addresses `0.0.0.0:PORT` become `127.0.0.1:0` (this machine's ports are shared;
//!   the process prints what it bound);
//! - the in-cluster API configuration is a kubeconfig holding a token of the pod's
//!   ServiceAccount, so every call is authorized as that ServiceAccount;
//! - `fieldRef` environment variables get the pod's name and namespace.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// What the pod's volumes hold, as mount path → directory on this machine.
struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    /// A path under a mount points into its directory here; a listen address on every
    /// interface becomes a free loopback port. `--flag=VALUE` is rewritten in its value.
    fn rewrite(&self, arg: &str) -> String {
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
            _ => (String::new(), arg),
        };
        for (mount, local) in &self.0 {
            if let Some(rest) = value.strip_prefix(mount.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{flag}{}{rest}", local.display());
            }
        }
        // The pod's own network namespace would give it every port; here they are shared.
        match value.strip_prefix("0.0.0.0:") {
            Some(port) if port.parse::<u16>().is_ok() => format!("{flag}127.0.0.1:0"),
            _ => arg.to_string(),
        }
    }
}

async fn secret(client: &kube::Client, namespace: &str, name: &str) -> BTreeMap<String, Vec<u8>> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {namespace}/{name} for the pod: {e}"));
    secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

async fn materialize(
    client: &kube::Client,
    namespace: &str,
    pod: &Value,
    container: &Value,
    root: &Path,
) -> Mounts {
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap();
        let path = mount["mountPath"].as_str().unwrap().to_string();
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("volume {name} of mount {path} is not in the pod"));
        let local = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&local).unwrap();
        let files: BTreeMap<String, Vec<u8>> =
            if let Some(secret_name) = volume["secret"]["secretName"].as_str() {
                secret(client, namespace, secret_name).await
            } else if let Some(map) = volume["configMap"]["name"].as_str() {
                let map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                    .get(map)
                    .await
                    .unwrap_or_else(|e| panic!("ConfigMap {map} for the pod: {e}"));
                map.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect()
            } else {
                assert!(
                    volume["emptyDir"].is_object(),
                    "unsupported volume {volume}"
                );
                BTreeMap::new()
            };
        for (file, bytes) in files {
            std::fs::write(local.join(file), bytes).unwrap();
        }
        mounts.push((path, local));
    }
    // Longest first, so /a/b is rewritten before /a.
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Mounts(mounts)
}

async fn environment(
    client: &kube::Client,
    namespace: &str,
    pod_name: &str,
    container: &Value,
    mounts: &Mounts,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = if let Some(value) = var["value"].as_str() {
            mounts.rewrite(value)
        } else if let Some(reference) = var["valueFrom"]["secretKeyRef"].as_object() {
            let data = secret(client, namespace, reference["name"].as_str().unwrap()).await;
            let key = reference["key"].as_str().unwrap();
            String::from_utf8(
                data.get(key)
                    .cloned()
                    .unwrap_or_else(|| panic!("Secret {} has no key {key}", reference["name"])),
            )
            .unwrap()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod_name.to_string(),
                Some("metadata.namespace") => namespace.to_string(),
                other => panic!("unsupported env source {other:?} of {name}"),
            }
        };
        env.push((name, value));
    }
    env
}

/// One container of a pod, ready to start as `shepherd ARGS`.
pub struct Container {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Container {
    async fn of(
        client: &kube::Client,
        namespace: &str,
        pod_name: &str,
        pod: &Value,
        container: &Value,
        root: &Path,
    ) -> Container {
        assert!(
            container["command"].is_null(),
            "the image's entrypoint is `shepherd`; the chart sets args only"
        );
        let mounts = materialize(client, namespace, pod, container, root).await;
        let args = container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| mounts.rewrite(a.as_str().unwrap()))
            .collect();
        let env = environment(client, namespace, pod_name, container, &mounts).await;
        Container { args, env }
    }

    fn command(&self, root: &Path, kubeconfig: Option<&Path>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_shepherd"));
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        match kubeconfig {
            Some(path) => cmd.env("KUBECONFIG", path),
            // automountServiceAccountToken: false — no API access at all.
            None => cmd.env("KUBECONFIG", root.join("no-api-access")),
        };
        cmd
    }
}

/// Waits for the Job (a Helm hook), runs its init containers then its containers to
/// completion as its pod would, and records the outcome in its status as the Job controller
/// does. Returns each container's output.
pub async fn complete_job(client: &kube::Client, namespace: &str, name: &str) -> Vec<String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let job = crate::common::eventually(
        "the hook Job",
        60,
        || async { jobs.get_opt(name).await.ok().flatten() },
        Option::is_some,
    )
    .await
    .expect("the Job was created");
    let job = serde_json::to_value(job).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], json!(false));
    let root = tempfile::tempdir().unwrap();
    let pod_name = format!("{name}-x7k2p");
    let mut outputs = Vec::new();
    let containers = pod["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["containers"].as_array().unwrap());
    let mut failed = None;
    for spec in containers {
        let container = Container::of(client, namespace, &pod_name, pod, spec, root.path()).await;
        let out = container
            .command(root.path(), None)
            .output()
            .await
            .expect("run a container of the Job");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            failed = Some(format!("container {} failed: {text}", spec["name"]));
            break;
        }
        outputs.push(text);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now});
    let status = match &failed {
        None => json!({
            "startTime": now, "completionTime": now, "succeeded": 1, "active": 0,
            "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
        }),
        Some(_) => json!({
            "startTime": now, "failed": 1, "active": 0,
            "conditions": [condition("FailureTarget"), condition("Failed")],
        }),
    };
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("record the Job's outcome");
    if let Some(why) = failed {
        panic!("the Job {name} failed: {why}");
    }
    outputs
}

/// A running replica of the chart's Deployment.
pub struct Replica {
    pub child: tokio::process::Child,
    pub webhook: SocketAddr,
    pub api: SocketAddr,
    pub log: PathBuf,
    /// The pod's volumes and HOME, removed with the replica.
    _root: tempfile::TempDir,
}

/// A failing test shows what each replica logged (the last 60 lines).
impl Drop for Replica {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("--- log of replica {} ---\n{tail}", self.log.display());
        }
    }
}

impl Replica {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the replica as the kubelet does: SIGTERM, then SIGKILL after the pod's grace
    /// period (45 s). A graceful stop releases the Lease.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(45), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// Reads the Deployment and starts one replica of its pod as `pod_name`, authenticated with
/// `kubeconfig` (a token of the pod's ServiceAccount). Returns once it printed `run: ready`,
/// or the reason it did not (its exit and log).
pub async fn start_replica(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    pod_name: &str,
    kubeconfig: &Path,
) -> Result<Replica, String> {
    let found: Value = serde_json::to_value(
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace)
            .get(deployment)
            .await
            .expect("the Deployment exists"),
    )
    .unwrap();
    let pod = &found["spec"]["template"]["spec"];
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1));
    let root = tempfile::tempdir().unwrap();
    let container = Container::of(
        client,
        namespace,
        pod_name,
        pod,
        &pod["containers"][0],
        root.path(),
    )
    .await;
    let log = root.path().join("shepherd.log");
    let mut child = container
        .command(root.path(), Some(kubeconfig))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start shepherd run");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut webhook, mut api) = (None, None);
    let addr = |text: &str| -> SocketAddr {
        text.trim_start_matches("https://")
            .trim_start_matches("http://")
            .parse()
            .unwrap()
    };
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("run: webhook listening on ") {
                webhook = Some(addr(rest));
            } else if let Some(rest) = line.strip_prefix("run: REST API listening on ") {
                api = Some(addr(rest));
            } else if line == "run: ready" {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !ready {
        let _ = child.start_kill();
        let status = child.wait().await.ok();
        return Err(format!(
            "shepherd run did not become ready ({status:?}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    // Keep reading stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Replica {
        child,
        webhook: webhook.expect("webhook address"),
        api: api.expect("REST API address"),
        log,
        _root: root,
    })
}
