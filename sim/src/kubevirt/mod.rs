//! KubeVirt in a target cluster: its CRDs, nodes, storage classes and the KubeVirt CR,
//! plus simulated controllers and the `subresources.kubevirt.io` endpoints.

mod controller;
mod subresources;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::objects::{Core, Ctx};
use crate::resources::ResourceDef;

/// A node of a simulated target cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeConfig {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    /// Extended resources, e.g. `nvidia.com/GA102GL_A10: 2`.
    pub gpus: BTreeMap<String, u32>,
    /// Hugepage capacity by page size, e.g. `2Mi: 1Gi`.
    pub hugepages: BTreeMap<String, String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "node-1".into(),
            cpu: "32".into(),
            memory: "128Gi".into(),
            gpus: BTreeMap::new(),
            hugepages: BTreeMap::new(),
        }
    }
}

/// What a target cluster's KubeVirt looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KubeVirtConfig {
    /// Reported as the KubeVirt CR's `status.observedKubeVirtVersion`.
    pub version: String,
    pub feature_gates: Vec<String>,
    pub nodes: Vec<NodeConfig>,
    /// Storage class names; the first is the default class.
    pub storage_classes: Vec<String>,
    /// Delay between two steps of a simulated lifecycle (e.g. Pending -> Scheduling).
    pub step_delay_ms: u64,
}

impl Default for KubeVirtConfig {
    fn default() -> Self {
        KubeVirtConfig {
            version: "v1.5.2".into(),
            feature_gates: vec![
                "Snapshot".into(),
                "LiveMigration".into(),
                "HotplugVolumes".into(),
            ],
            nodes: vec![
                NodeConfig {
                    name: "node-1".into(),
                    gpus: BTreeMap::from([("nvidia.com/GA102GL_A10".into(), 2)]),
                    hugepages: BTreeMap::from([
                        ("2Mi".into(), "4Gi".into()),
                        ("1Gi".into(), "8Gi".into()),
                    ]),
                    ..NodeConfig::default()
                },
                NodeConfig {
                    name: "node-2".into(),
                    ..NodeConfig::default()
                },
            ],
            storage_classes: vec!["standard".into(), "fast".into()],
            step_delay_ms: 40,
        }
    }
}

/// Runtime state of the simulated KubeVirt controllers.
pub struct KubeVirt {
    pub config: KubeVirtConfig,
    /// Forced failures by (namespace, VM name), e.g. `ErrorUnschedulable`.
    failures: Mutex<HashMap<(String, String), String>>,
    /// VMs with `runStrategy: Manual` that were asked to run.
    manual_running: Mutex<HashSet<(String, String)>>,
    paused: Mutex<HashSet<(String, String)>>,
    /// Snapshot contents by snapshot uid: the VM as it was.
    snapshots: Mutex<HashMap<String, Value>>,
    defs: Mutex<HashMap<&'static str, Arc<ResourceDef>>>,
}

/// Label/annotation that makes a VM fail with the given printable status (for kubectl
/// and the binary; tests can also call `KubeVirtHandle::fail_vm`).
pub const FAIL_ANNOTATION: &str = "sim.kubevirt-shepherd.io/fail";

struct CrdSpec {
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    columns: &'static [(&'static str, &'static str, &'static str)],
}

const AGE: (&str, &str, &str) = ("Age", "date", ".metadata.creationTimestamp");

const CRDS: &[CrdSpec] = &[
    CrdSpec {
        group: "kubevirt.io",
        versions: &["v1"],
        kind: "VirtualMachine",
        plural: "virtualmachines",
        short: &["vm", "vms"],
        namespaced: true,
        columns: &[
            AGE,
            ("Status", "string", ".status.printableStatus"),
            (
                "Ready",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
            ),
        ],
    },
    CrdSpec {
        group: "kubevirt.io",
        versions: &["v1"],
        kind: "VirtualMachineInstance",
        plural: "virtualmachineinstances",
        short: &["vmi", "vmis"],
        namespaced: true,
        columns: &[
            AGE,
            ("Phase", "string", ".status.phase"),
            ("IP", "string", ".status.interfaces[0].ipAddress"),
            ("NodeName", "string", ".status.nodeName"),
            (
                "Ready",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
            ),
        ],
    },
    CrdSpec {
        group: "kubevirt.io",
        versions: &["v1"],
        kind: "VirtualMachineInstanceMigration",
        plural: "virtualmachineinstancemigrations",
        short: &["vmim", "vmims"],
        namespaced: true,
        columns: &[
            ("Phase", "string", ".status.phase"),
            ("VMI", "string", ".spec.vmiName"),
        ],
    },
    CrdSpec {
        group: "kubevirt.io",
        versions: &["v1"],
        kind: "KubeVirt",
        plural: "kubevirts",
        short: &["kv", "kvs"],
        namespaced: true,
        columns: &[AGE, ("Phase", "string", ".status.phase")],
    },
    CrdSpec {
        group: "snapshot.kubevirt.io",
        versions: &["v1beta1"],
        kind: "VirtualMachineSnapshot",
        plural: "virtualmachinesnapshots",
        short: &["vmsnapshot", "vmsnapshots"],
        namespaced: true,
        columns: &[
            ("SourceKind", "string", ".spec.source.kind"),
            ("SourceName", "string", ".spec.source.name"),
            ("Phase", "string", ".status.phase"),
            ("ReadyToUse", "boolean", ".status.readyToUse"),
            AGE,
        ],
    },
    CrdSpec {
        group: "snapshot.kubevirt.io",
        versions: &["v1beta1"],
        kind: "VirtualMachineRestore",
        plural: "virtualmachinerestores",
        short: &["vmrestore", "vmrestores"],
        namespaced: true,
        columns: &[
            ("TargetKind", "string", ".spec.target.kind"),
            ("TargetName", "string", ".spec.target.name"),
            ("Complete", "boolean", ".status.complete"),
            AGE,
        ],
    },
    CrdSpec {
        group: "clone.kubevirt.io",
        versions: &["v1beta1"],
        kind: "VirtualMachineClone",
        plural: "virtualmachineclones",
        short: &["vmclone", "vmclones"],
        namespaced: true,
        columns: &[
            ("Phase", "string", ".status.phase"),
            ("SourceVirtualMachine", "string", ".spec.source.name"),
            ("TargetVirtualMachine", "string", ".spec.target.name"),
        ],
    },
    CrdSpec {
        group: "cdi.kubevirt.io",
        versions: &["v1beta1"],
        kind: "DataVolume",
        plural: "datavolumes",
        short: &["dv", "dvs"],
        namespaced: true,
        columns: &[
            ("Phase", "string", ".status.phase"),
            ("Progress", "string", ".status.progress"),
            AGE,
        ],
    },
];

fn crd_object(c: &CrdSpec) -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let versions: Vec<Value> = c
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "name": v, "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": open, "status": open}}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": c.columns.iter().map(|(n, t, p)| json!({"name": n, "type": t, "jsonPath": p})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", c.plural, c.group), "labels": {"app.kubernetes.io/component": "kubevirt"}},
        "spec": {
            "group": c.group,
            "names": {"kind": c.kind, "plural": c.plural, "singular": c.kind.to_lowercase(), "shortNames": c.short, "categories": ["all", "kubevirt"], "listKind": format!("{}List", c.kind)},
            "scope": if c.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        },
    })
}

impl KubeVirt {
    /// Installs KubeVirt's CRDs and the cluster inventory, and returns the simulator.
    pub async fn install(core: &Core, config: KubeVirtConfig) -> ApiResult<Arc<KubeVirt>> {
        let ctx = Ctx::internal("virt-operator");
        let crd_def = core.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
        for c in CRDS {
            core.create(&ctx, &crd_def, "", crd_object(c)).await?;
        }
        let node_def = core.find("", "v1", "nodes")?;
        for n in &config.nodes {
            let mut capacity = json!({"cpu": n.cpu, "memory": n.memory, "pods": "110", "devices.kubevirt.io/kvm": "1k"});
            for (k, v) in &n.gpus {
                capacity[k] = json!(v.to_string());
            }
            for (size, amount) in &n.hugepages {
                capacity[format!("hugepages-{size}")] = json!(amount);
            }
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name, "kubevirt.io/schedulable": "true"}},
                "spec": {},
                "status": {
                    "capacity": capacity, "allocatable": capacity,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "nodeInfo": {"kubeletVersion": "v1.35.0", "architecture": "amd64", "operatingSystem": "linux"},
                },
            });
            core.create(&ctx, &node_def, "", node).await?;
        }
        let sc_def = core.find("storage.k8s.io", "v1", "storageclasses")?;
        for (i, sc) in config.storage_classes.iter().enumerate() {
            let mut o = json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": sc},
                "provisioner": "csi.sim.kubevirt-shepherd.io", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": true,
            });
            if i == 0 {
                o["metadata"]["annotations"] =
                    json!({"storageclass.kubernetes.io/is-default-class": "true"});
            }
            core.create(&ctx, &sc_def, "", o).await?;
        }
        let ns_def = core.find("", "v1", "namespaces")?;
        core.create(
            &ctx,
            &ns_def,
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubevirt"}}),
        )
        .await?;
        let kv_def = core.find("kubevirt.io", "v1", "kubevirts")?;
        let kv = json!({
            "apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": {"developerConfiguration": {"featureGates": config.feature_gates}}},
        });
        core.create(&ctx, &kv_def, "kubevirt", kv).await?;
        let version = config.version.clone();
        core.internal_modify(&kv_def, "kubevirt", "kubevirt", "virt-operator", "status", |o| {
            o["status"] = json!({
                "phase": "Deployed", "observedKubeVirtVersion": version, "targetKubeVirtVersion": version,
                "observedKubeVirtRegistry": "quay.io/kubevirt", "operatorVersion": version,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "AllResourcesCreated", "message": "All components are ready."},
                    {"type": "Progressing", "status": "False", "reason": "AllResourcesCreated", "message": "All components are ready."},
                    {"type": "Degraded", "status": "False", "reason": "AllResourcesCreated", "message": "All components are ready."},
                ],
            });
            true
        });
        core.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extra
            .push((
                "subresources.kubevirt.io".into(),
                "v1".into(),
                vec![
                    (
                        "virtualmachines/start".into(),
                        "VirtualMachine".into(),
                        true,
                    ),
                    ("virtualmachines/stop".into(), "VirtualMachine".into(), true),
                    (
                        "virtualmachines/restart".into(),
                        "VirtualMachine".into(),
                        true,
                    ),
                    (
                        "virtualmachines/migrate".into(),
                        "VirtualMachine".into(),
                        true,
                    ),
                    (
                        "virtualmachineinstances/pause".into(),
                        "VirtualMachineInstance".into(),
                        true,
                    ),
                    (
                        "virtualmachineinstances/unpause".into(),
                        "VirtualMachineInstance".into(),
                        true,
                    ),
                ],
            ));
        let kv = Arc::new(KubeVirt {
            config,
            failures: Mutex::default(),
            manual_running: Mutex::default(),
            paused: Mutex::default(),
            snapshots: Mutex::default(),
            defs: Mutex::default(),
        });
        let names: [(&'static str, &str, &str, &str); 8] = [
            ("vm", "kubevirt.io", "v1", "virtualmachines"),
            ("vmi", "kubevirt.io", "v1", "virtualmachineinstances"),
            (
                "vmim",
                "kubevirt.io",
                "v1",
                "virtualmachineinstancemigrations",
            ),
            (
                "snapshot",
                "snapshot.kubevirt.io",
                "v1beta1",
                "virtualmachinesnapshots",
            ),
            (
                "restore",
                "snapshot.kubevirt.io",
                "v1beta1",
                "virtualmachinerestores",
            ),
            (
                "clone",
                "clone.kubevirt.io",
                "v1beta1",
                "virtualmachineclones",
            ),
            ("dv", "cdi.kubevirt.io", "v1beta1", "datavolumes"),
            ("kubevirt", "kubevirt.io", "v1", "kubevirts"),
        ];
        for (short, g, v, p) in names {
            let d = core.find(g, v, p)?;
            lock(&kv.defs).insert(short, d);
        }
        Ok(kv)
    }

    fn def(&self, short: &str) -> Arc<ResourceDef> {
        lock(&self.defs)
            .get(short)
            .cloned()
            .expect("KubeVirt resources are registered at install")
    }

    pub fn step_delay(&self) -> Duration {
        Duration::from_millis(self.config.step_delay_ms.max(1))
    }

    /// Makes a VM fail with `printable_status` (e.g. `ErrorUnschedulable`) until cleared.
    pub fn fail_vm(&self, namespace: &str, name: &str, printable_status: &str) {
        lock(&self.failures).insert((namespace.into(), name.into()), printable_status.into());
    }

    pub fn clear_failure(&self, namespace: &str, name: &str) {
        lock(&self.failures).remove(&(namespace.to_string(), name.to_string()));
    }

    fn failure_of(&self, vm: &Value) -> Option<String> {
        let key = (
            crate::store::meta_str(vm, "namespace").to_string(),
            crate::store::meta_str(vm, "name").to_string(),
        );
        lock(&self.failures).get(&key).cloned().or_else(|| {
            vm["metadata"]["annotations"][FAIL_ANNOTATION]
                .as_str()
                .map(str::to_string)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A VM's `runStrategy`, or the one its deprecated `running` field stands for.
fn run_strategy(vm: &Value) -> String {
    vm["spec"]["runStrategy"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if vm["spec"]["running"].as_bool() == Some(true) {
                "Always".into()
            } else {
                "Halted".into()
            }
        })
}
