//! What a probe of a target cluster means (docs/architecture.md#vms): its health with the
//! reason, KubeVirt's version and the capabilities placement needs, from the facts the
//! probe read (the `KubeVirt` resource, the nodes' allocatable resources, the storage
//! classes). Pure: the probe itself lives in `clusters::probe`.

use super::parse::impl_str_enum;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A cluster's health as the last probe saw it. `Unknown` until the first probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterHealth {
    Unknown,
    Healthy,
    /// Reachable, but KubeVirt is missing or not deployed.
    Degraded,
    /// Not reachable: refused credentials, timeouts, connection failures.
    Unreachable,
}

impl ClusterHealth {
    pub const ALL: [ClusterHealth; 4] = [
        ClusterHealth::Unknown,
        ClusterHealth::Healthy,
        ClusterHealth::Degraded,
        ClusterHealth::Unreachable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ClusterHealth::Unknown => "Unknown",
            ClusterHealth::Healthy => "Healthy",
            ClusterHealth::Degraded => "Degraded",
            ClusterHealth::Unreachable => "Unreachable",
        }
    }
}

impl_str_enum!(ClusterHealth, "cluster health");

/// The `KubeVirt` resource as the probe found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeVirtFacts {
    /// `status.phase`, e.g. `Deployed`.
    pub phase: Option<String>,
    /// `status.observedKubeVirtVersion`.
    pub version: Option<String>,
    /// `spec.configuration.developerConfiguration.featureGates`.
    pub feature_gates: Vec<String>,
}

/// What a reachable cluster showed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeFacts {
    /// None when the cluster has no `KubeVirt` resource (or not even its CRD).
    pub kubevirt: Option<KubeVirtFacts>,
    /// Each node's `status.allocatable`.
    pub nodes: Vec<BTreeMap<String, String>>,
    /// Storage class names with whether each is the default class.
    pub storage_classes: Vec<(String, bool)>,
}

/// Why a probe got no facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No client could be built from the Cluster's kubeconfig Secret; `reason` is the
    /// `CredentialsReady` reason (e.g. `SecretMissing`).
    NoCredentials {
        reason: &'static str,
        message: String,
    },
    /// 401 or 403: the kubeconfig's credentials are refused.
    CredentialsRefused(String),
    /// The cluster did not answer in time.
    Timeout(String),
    /// Any other failure to talk to the cluster (connection refused, TLS, 5xx).
    Unreachable(String),
}

/// What placement and the Cluster's status show of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// GPU device names (extended resources offered by some node), e.g.
    /// `nvidia.com/GA102GL_A10`.
    pub gpus: Vec<String>,
    /// Hugepage sizes some node offers, e.g. `2Mi`.
    pub hugepages: Vec<String>,
    pub storage_classes: Vec<String>,
    pub default_storage_class: Option<String>,
    pub feature_gates: Vec<String>,
    /// KubeVirt can take VM snapshots (feature gate `Snapshot`).
    pub snapshot: bool,
    /// KubeVirt can live-migrate VMs (feature gate `LiveMigration`).
    pub live_migration: bool,
    pub nodes: i64,
    /// Allocatable CPU over all nodes, in millicores.
    pub cpu_millis: i64,
    /// Allocatable memory over all nodes, in bytes.
    pub memory_bytes: i64,
}

impl Capabilities {
    /// One line per capability, for `kubectl get cluster -o yaml` readers.
    pub fn summary(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.gpus.iter().map(|g| format!("gpu:{g}")).collect();
        lines.extend(self.hugepages.iter().map(|h| format!("hugepages:{h}")));
        if self.snapshot {
            lines.push("snapshot".into());
        }
        if self.live_migration {
            lines.push("live-migration".into());
        }
        lines
    }
}

/// A probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub health: ClusterHealth,
    /// CamelCase, e.g. `KubeVirtDeployed`, `KubeVirtNotInstalled`, `CredentialsRefused`.
    pub reason: &'static str,
    pub message: String,
    pub kubevirt_version: Option<String>,
    /// None when the cluster could not be read (the last known capabilities stay).
    pub capabilities: Option<Capabilities>,
}

/// The verdict of one probe: the facts a reachable cluster showed, or why it was not.
pub fn assess(probe: Result<ProbeFacts, ProbeFailure>) -> Assessment {
    let facts = match probe {
        Ok(facts) => facts,
        Err(failure) => {
            let (reason, message) = match failure {
                ProbeFailure::NoCredentials { reason, message } => (reason, message),
                ProbeFailure::CredentialsRefused(m) => ("CredentialsRefused", m),
                ProbeFailure::Timeout(m) => ("Timeout", m),
                ProbeFailure::Unreachable(m) => ("Unreachable", m),
            };
            return Assessment {
                health: ClusterHealth::Unreachable,
                reason,
                message,
                kubevirt_version: None,
                capabilities: None,
            };
        }
    };
    let capabilities = capabilities(&facts);
    let Some(kubevirt) = facts.kubevirt else {
        return Assessment {
            health: ClusterHealth::Degraded,
            reason: "KubeVirtNotInstalled",
            message: "the cluster has no KubeVirt resource: install KubeVirt".into(),
            kubevirt_version: None,
            capabilities: Some(capabilities),
        };
    };
    let phase = kubevirt.phase.as_deref().unwrap_or("");
    let (health, reason, message) = if phase == "Deployed" {
        let version = kubevirt.version.as_deref().unwrap_or("unknown");
        (
            ClusterHealth::Healthy,
            "KubeVirtDeployed",
            format!(
                "KubeVirt {version} is deployed on {} nodes",
                capabilities.nodes
            ),
        )
    } else {
        (
            ClusterHealth::Degraded,
            "KubeVirtNotDeployed",
            format!("KubeVirt's phase is {phase:?}, not \"Deployed\""),
        )
    };
    Assessment {
        health,
        reason,
        message,
        kubevirt_version: kubevirt.version,
        capabilities: Some(capabilities),
    }
}

/// Allocatable resources that are not devices: the standard ones and KubeVirt's own.
fn is_device(resource: &str) -> bool {
    resource.contains('/')
        && !resource.starts_with("devices.kubevirt.io/")
        && !resource.starts_with("kubernetes.io/")
}

fn capabilities(facts: &ProbeFacts) -> Capabilities {
    let mut gpus = std::collections::BTreeSet::new();
    let mut hugepages = std::collections::BTreeSet::new();
    let (mut cpu_millis, mut memory_bytes) = (0i64, 0i64);
    for node in &facts.nodes {
        for (resource, amount) in node {
            let offered = quantity(amount).unwrap_or(0) > 0;
            if let Some(size) = resource.strip_prefix("hugepages-") {
                if offered {
                    hugepages.insert(size.to_string());
                }
            } else if is_device(resource) {
                if offered {
                    gpus.insert(resource.clone());
                }
            } else if resource == "cpu" {
                cpu_millis += cpu_millis_of(amount).unwrap_or(0);
            } else if resource == "memory" {
                memory_bytes += quantity(amount).unwrap_or(0);
            }
        }
    }
    let feature_gates = facts
        .kubevirt
        .as_ref()
        .map(|k| k.feature_gates.clone())
        .unwrap_or_default();
    let gate = |name: &str| feature_gates.iter().any(|g| g == name);
    let mut storage_classes: Vec<String> = facts
        .storage_classes
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    storage_classes.sort();
    Capabilities {
        gpus: gpus.into_iter().collect(),
        hugepages: hugepages.into_iter().collect(),
        default_storage_class: facts
            .storage_classes
            .iter()
            .find(|(_, default)| *default)
            .map(|(n, _)| n.clone()),
        storage_classes,
        snapshot: gate("Snapshot"),
        live_migration: gate("LiveMigration"),
        feature_gates,
        nodes: facts.nodes.len() as i64,
        cpu_millis,
        memory_bytes,
    }
}

/// A CPU quantity in millicores: `2`, `500m`, `1.5`.
fn cpu_millis_of(q: &str) -> Option<i64> {
    match q.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => q
            .parse::<f64>()
            .ok()
            .map(|cores| (cores * 1000.0).round() as i64),
    }
}

/// A Kubernetes quantity as a whole number: `4Gi`, `512Mi`, `1G`, `110`, `1k`.
fn quantity(q: &str) -> Option<i64> {
    const SUFFIXES: [(&str, i64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(factor));
        }
    }
    q.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kubevirt(phase: &str, gates: &[&str]) -> Option<KubeVirtFacts> {
        Some(KubeVirtFacts {
            phase: Some(phase.into()),
            version: Some("v1.5.2".into()),
            feature_gates: gates.iter().map(|g| g.to_string()).collect(),
        })
    }

    #[test]
    fn a_deployed_kubevirt_is_healthy_with_its_version_and_capabilities() {
        let facts = ProbeFacts {
            kubevirt: kubevirt("Deployed", &["Snapshot", "LiveMigration"]),
            nodes: vec![
                node(&[
                    ("cpu", "32"),
                    ("memory", "128Gi"),
                    ("nvidia.com/GA102GL_A10", "2"),
                    ("hugepages-2Mi", "4Gi"),
                    ("hugepages-1Gi", "0"),
                    ("devices.kubevirt.io/kvm", "1k"),
                    ("pods", "110"),
                ]),
                node(&[("cpu", "500m"), ("memory", "1Gi")]),
            ],
            storage_classes: vec![("standard".into(), true), ("fast".into(), false)],
        };
        let a = assess(Ok(facts));
        assert_eq!(a.health, ClusterHealth::Healthy);
        assert_eq!(a.reason, "KubeVirtDeployed");
        assert_eq!(a.kubevirt_version.as_deref(), Some("v1.5.2"));
        let c = a.capabilities.unwrap();
        assert_eq!(c.gpus, vec!["nvidia.com/GA102GL_A10"]);
        assert_eq!(
            c.hugepages,
            vec!["2Mi"],
            "a size with 0 allocatable is not offered"
        );
        assert_eq!(c.storage_classes, vec!["fast", "standard"]);
        assert_eq!(c.default_storage_class.as_deref(), Some("standard"));
        assert!(c.snapshot && c.live_migration);
        assert_eq!((c.nodes, c.cpu_millis), (2, 32_500));
        assert_eq!(c.memory_bytes, 129 << 30);
        assert_eq!(
            c.summary(),
            vec![
                "gpu:nvidia.com/GA102GL_A10",
                "hugepages:2Mi",
                "snapshot",
                "live-migration"
            ]
        );
    }

    #[test]
    fn missing_or_undeployed_kubevirt_is_degraded() {
        let a = assess(Ok(ProbeFacts::default()));
        assert_eq!(
            (a.health, a.reason),
            (ClusterHealth::Degraded, "KubeVirtNotInstalled")
        );
        assert!(a.capabilities.is_some());
        let a = assess(Ok(ProbeFacts {
            kubevirt: kubevirt("Deploying", &[]),
            ..Default::default()
        }));
        assert_eq!(
            (a.health, a.reason),
            (ClusterHealth::Degraded, "KubeVirtNotDeployed")
        );
        assert!(a.message.contains("Deploying"), "{}", a.message);
        let c = a.capabilities.unwrap();
        assert!(!c.snapshot && !c.live_migration);
    }

    #[test]
    fn failures_are_unreachable_with_their_reason_and_keep_no_capabilities() {
        let no_secret = ProbeFailure::NoCredentials {
            reason: "SecretMissing",
            message: "Secret x/y does not exist".into(),
        };
        for (failure, reason) in [
            (no_secret, "SecretMissing"),
            (
                ProbeFailure::CredentialsRefused("401".into()),
                "CredentialsRefused",
            ),
            (ProbeFailure::Timeout("30s".into()), "Timeout"),
            (ProbeFailure::Unreachable("refused".into()), "Unreachable"),
        ] {
            let a = assess(Err(failure));
            assert_eq!((a.health, a.reason), (ClusterHealth::Unreachable, reason));
            assert_eq!(a.capabilities, None);
            assert_eq!(a.kubevirt_version, None);
        }
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(quantity("4Gi"), Some(4 << 30));
        assert_eq!(quantity("1k"), Some(1000));
        assert_eq!(quantity("110"), Some(110));
        assert_eq!(quantity("x"), None);
        assert_eq!(cpu_millis_of("1.5"), Some(1500));
        assert_eq!(cpu_millis_of("250m"), Some(250));
    }

    #[test]
    fn health_spellings_round_trip() {
        for h in ClusterHealth::ALL {
            assert_eq!(h.as_str().parse::<ClusterHealth>(), Ok(h));
        }
        assert!("Unhealthy".parse::<ClusterHealth>().is_err());
    }
}
