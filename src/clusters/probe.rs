//! Reading what a target cluster is: its `KubeVirt` resource, its nodes' allocatable
//! resources and its storage classes. `domain::cluster_probe::assess` says what that means.

use super::{CallError, TargetCluster, kubevirt};
use crate::domain::cluster_probe::{KubeVirtFacts, ProbeFacts, ProbeFailure};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

/// Annotation that marks the default storage class.
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

fn failure(err: CallError) -> ProbeFailure {
    match err.status() {
        Some(401 | 403) => ProbeFailure::CredentialsRefused(err.to_string()),
        _ if matches!(err, CallError::Timeout { .. }) => ProbeFailure::Timeout(err.to_string()),
        _ => ProbeFailure::Unreachable(err.to_string()),
    }
}

/// The facts of a reachable cluster, or why it could not be read. Nodes are read first: a
/// cluster that cannot list them is not usable for VMs whatever else it answers.
pub async fn gather(target: &TargetCluster) -> Result<ProbeFacts, ProbeFailure> {
    let client = target.client.clone();
    let nodes = target
        .call(
            "list nodes",
            Api::<Node>::all(client.clone()).list(&ListParams::default()),
        )
        .await
        .map_err(failure)?;
    let classes = target
        .call(
            "list storage classes",
            Api::<StorageClass>::all(client.clone()).list(&ListParams::default()),
        )
        .await
        .map_err(failure)?;
    let kubevirts = Api::<DynamicObject>::all_with(client, &kubevirt::kubevirt());
    let kubevirt = match target
        .call("list KubeVirt", kubevirts.list(&ListParams::default()))
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .next()
            .map(|kv| kubevirt_facts(&kv.data)),
        // No KubeVirt CRD: KubeVirt is not installed.
        Err(err) if err.status() == Some(404) => None,
        Err(err) => return Err(failure(err)),
    };
    Ok(ProbeFacts {
        kubevirt,
        nodes: nodes
            .items
            .into_iter()
            .map(|n| {
                n.status
                    .and_then(|s| s.allocatable)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect()
            })
            .collect(),
        storage_classes: classes
            .items
            .into_iter()
            .map(|c| {
                let default = c
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true");
                (c.metadata.name.unwrap_or_default(), default)
            })
            .collect(),
    })
}

fn kubevirt_facts(kv: &Value) -> KubeVirtFacts {
    let text = |v: &Value| v.as_str().map(String::from);
    KubeVirtFacts {
        phase: text(&kv["status"]["phase"]),
        version: text(&kv["status"]["observedKubeVirtVersion"]),
        feature_gates: kv["spec"]["configuration"]["developerConfiguration"]["featureGates"]
            .as_array()
            .map(|gates| gates.iter().filter_map(text).collect())
            .unwrap_or_default(),
    }
}
