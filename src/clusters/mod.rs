//! Target-cluster access (docs/architecture.md#vms, docs/architecture.md#jobs). A kube Client per
//! Cluster, built from the kubeconfig Secret the Cluster names (read from the management cluster)
//! and rebuilt when that Secret or the reference changes. Writes per cluster are bounded by a
//! semaphore and every call has a timeout. Kubeconfig contents never leave this module: errors name
//! the Secret and the rule, never its data.

pub mod drift;
pub mod probe;
pub mod watch;

/// KubeVirt's kinds, addressed dynamically (typed models only where a mapper needs them).
pub mod kubevirt {
    use kube::api::{ApiResource, GroupVersionKind};

    pub fn virtual_machine() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
            "virtualmachines",
        )
    }

    pub fn kubevirt() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "KubeVirt"),
            "kubevirts",
        )
    }

    pub fn virtual_machine_instance() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance"),
            "virtualmachineinstances",
        )
    }

    pub fn migration() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstanceMigration"),
            "virtualmachineinstancemigrations",
        )
    }

    pub fn snapshot() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("snapshot.kubevirt.io", "v1beta1", "VirtualMachineSnapshot"),
            "virtualmachinesnapshots",
        )
    }

    pub fn restore() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("snapshot.kubevirt.io", "v1beta1", "VirtualMachineRestore"),
            "virtualmachinerestores",
        )
    }

    pub fn clone() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("clone.kubevirt.io", "v1beta1", "VirtualMachineClone"),
            "virtualmachineclones",
        )
    }

    /// The path of a VM subresource of KubeVirt's aggregated API (`start`, `stop`,
    /// `restart`).
    pub fn vm_subresource_path(namespace: &str, name: &str, verb: &str) -> String {
        format!(
            "/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}/{verb}"
        )
    }
}

use crate::db::catalog::ClusterAccess;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Concurrent writes to one target cluster from this process, unless configured.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 5;
/// How long one call to a target cluster may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster's credentials cannot be used. Messages name the Secret and the rule only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} named by the Cluster does not exist")]
    SecretMissing { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no data key {key:?}")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("the kubeconfig in Secret {namespace}/{name} (key {key:?}) is not usable: {rule}")]
    Unusable {
        namespace: String,
        name: String,
        key: String,
        rule: &'static str,
    },
    #[error("reading Secret {namespace}/{name} from the management cluster failed: {message}")]
    Unreadable {
        namespace: String,
        name: String,
        message: String,
    },
}

impl CredentialsError {
    /// The reason shown in the Cluster's `CredentialsReady` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::SecretMissing { .. } => "SecretMissing",
            CredentialsError::KeyMissing { .. } => "KeyMissing",
            CredentialsError::Unusable { .. } => "KubeconfigInvalid",
            CredentialsError::Unreadable { .. } => "SecretUnreadable",
        }
    }
}

/// A failed call to a target cluster.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cluster {cluster}: {what} timed out after {after:?}")]
    Timeout {
        cluster: String,
        what: &'static str,
        after: Duration,
    },
    #[error("cluster {cluster}: {what}: {source}")]
    Kube {
        cluster: String,
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl CallError {
    /// The HTTP status the cluster answered, when it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Kube {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }
}

/// A usable client for one target cluster.
#[derive(Clone)]
pub struct TargetCluster {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    pub client: Client,
    /// Grows each time a client is (re)built, so users of a client can tell it was replaced.
    pub generation: u64,
    writes: Arc<Semaphore>,
}

impl TargetCluster {
    /// Waits for one of the cluster's write slots.
    pub async fn write_permit(&self) -> OwnedSemaphorePermit {
        self.writes
            .clone()
            .acquire_owned()
            .await
            .expect("the write semaphore is never closed")
    }

    /// Runs one call with the timeout, naming the cluster and the call in any error.
    pub async fn call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(CallError::Kube {
                cluster: self.name.clone(),
                what,
                source,
            }),
            Err(_) => Err(CallError::Timeout {
                cluster: self.name.clone(),
                what,
                after: CALL_TIMEOUT,
            }),
        }
    }
}

/// What a cached client was built from; a change means a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    namespace: String,
    name: String,
    key: String,
    resource_version: Option<String>,
}

struct Entry {
    source: Source,
    target: TargetCluster,
}

/// The clients of every target cluster this process talks to.
pub struct ClusterClients {
    management: Client,
    write_concurrency: usize,
    entries: Mutex<HashMap<Uuid, Entry>>,
    builds: AtomicU64,
}

impl ClusterClients {
    pub fn new(management: Client, write_concurrency: usize) -> Self {
        Self {
            management,
            write_concurrency: write_concurrency.max(1),
            entries: Mutex::new(HashMap::new()),
            builds: AtomicU64::new(0),
        }
    }

    /// A client for the cluster, reusing the cached one while its Secret is unchanged. The
    /// Secret is read on every call (one GET), so a rotated or removed kubeconfig is noticed
    /// by the next job.
    pub async fn get(&self, access: &ClusterAccess) -> Result<TargetCluster, CredentialsError> {
        let secret = self.read_secret(access).await?;
        let source = Source {
            namespace: access.secret_namespace.clone(),
            name: access.secret_name.clone(),
            key: access.secret_key.clone(),
            resource_version: secret.metadata.resource_version.clone(),
        };
        if let Some(entry) = self.entries().get(&access.id)
            && entry.source == source
        {
            return Ok(entry.target.clone());
        }
        let client = build_client(access, &secret).await?;
        let target = TargetCluster {
            id: access.id,
            name: access.name.clone(),
            environment: access.environment.clone(),
            client,
            generation: self.builds.fetch_add(1, Ordering::Relaxed) + 1,
            // A rebuilt client keeps the cluster's write slots: the bound is per cluster.
            writes: self
                .entries()
                .get(&access.id)
                .map(|e| e.target.writes.clone())
                .unwrap_or_else(|| Arc::new(Semaphore::new(self.write_concurrency))),
        };
        self.entries().insert(
            access.id,
            Entry {
                source,
                target: target.clone(),
            },
        );
        Ok(target)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn read_secret(&self, access: &ClusterAccess) -> Result<Secret, CredentialsError> {
        let api: Api<Secret> = Api::namespaced(self.management.clone(), &access.secret_namespace);
        match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(&access.secret_name)).await {
            Ok(Ok(Some(secret))) => Ok(secret),
            Ok(Ok(None)) => Err(CredentialsError::SecretMissing {
                namespace: access.secret_namespace.clone(),
                name: access.secret_name.clone(),
            }),
            Ok(Err(err)) => Err(CredentialsError::Unreadable {
                namespace: access.secret_namespace.clone(),
                name: access.secret_name.clone(),
                message: match err {
                    kube::Error::Api(status) => status.message,
                    _ => "the management cluster did not answer".into(),
                },
            }),
            Err(_) => Err(CredentialsError::Unreadable {
                namespace: access.secret_namespace.clone(),
                name: access.secret_name.clone(),
                message: format!("timed out after {CALL_TIMEOUT:?}"),
            }),
        }
    }
}

/// Builds a client from the kubeconfig in `secret`. Only inline credentials are accepted:
/// exec and auth-provider plugins would run commands inside this process, and file paths
/// would read this pod's own files (its service account token among them).
async fn build_client(access: &ClusterAccess, secret: &Secret) -> Result<Client, CredentialsError> {
    let unusable = |rule: &'static str| CredentialsError::Unusable {
        namespace: access.secret_namespace.clone(),
        name: access.secret_name.clone(),
        key: access.secret_key.clone(),
        rule,
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&access.secret_key))
        .ok_or_else(|| CredentialsError::KeyMissing {
            namespace: access.secret_namespace.clone(),
            name: access.secret_name.clone(),
            key: access.secret_key.clone(),
        })?;
    let text = std::str::from_utf8(&bytes.0).map_err(|_| unusable("it is not UTF-8 text"))?;
    let kubeconfig =
        Kubeconfig::from_yaml(text).map_err(|_| unusable("it does not parse as a kubeconfig"))?;
    check_inline_only(&kubeconfig).map_err(unusable)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|_| unusable("its current context names no usable cluster and user"))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    Client::try_from(config).map_err(|_| unusable("no client can be built from it"))
}

/// The rule a kubeconfig breaks when it asks for anything but inline credentials.
fn check_inline_only(kubeconfig: &Kubeconfig) -> Result<(), &'static str> {
    for user in kubeconfig
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref())
    {
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err("exec and auth-provider credential plugins are not allowed");
        }
        if user.token_file.is_some()
            || user.client_certificate.is_some()
            || user.client_key.is_some()
        {
            return Err("credentials must be inline (token or *-data), not file paths");
        }
    }
    for cluster in kubeconfig
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref())
    {
        if cluster.certificate_authority.is_some() {
            return Err("the CA must be inline (certificate-authority-data), not a file path");
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err("insecure-skip-tls-verify is not allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str, cluster: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n\
             clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:1', {cluster}}}}}]\n\
             users: [{{name: u, user: {{{user}}}}}]\n"
        ))
        .unwrap()
    }

    #[test]
    fn inline_credentials_are_accepted() {
        let ok = kubeconfig("token: abc", "certificate-authority-data: Zm9v");
        assert_eq!(check_inline_only(&ok), Ok(()));
    }

    #[test]
    fn plugins_files_and_insecure_tls_are_refused() {
        for (user, cluster) in [
            (
                "exec: {apiVersion: client.authentication.k8s.io/v1, command: sh}",
                "",
            ),
            (
                "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
                "",
            ),
            ("client-certificate: /tmp/c, client-key: /tmp/k", ""),
            ("token: abc", "certificate-authority: /etc/ca.crt"),
            ("token: abc", "insecure-skip-tls-verify: true"),
        ] {
            assert!(
                check_inline_only(&kubeconfig(user, cluster)).is_err(),
                "{user} {cluster} was accepted"
            );
        }
    }
}
