//! The storage-side controllers: DataVolume imports (CDI), VirtualMachineSnapshots,
//! VirtualMachineRestores and VirtualMachineClones.

use serde_json::{Value, json};

use super::{condition, key, set_status};
use crate::kubevirt::{KubeVirt, lock};
use crate::objects::{Core, Ctx, now};
use crate::store::meta_str;

impl KubeVirt {
    pub(super) fn reconcile_snapshot(&self, core: &Core, s: &Value) {
        let (ns, name) = key(s);
        let def = self.def("snapshot");
        let phase = s["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return;
        }
        let src = s["spec"]["source"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let vm = core.store.get(&self.def("vm").key(), &ns, &src);
        let uid = meta_str(s, "uid").to_string();
        let gate_on = self.config.feature_gates.iter().any(|g| g == "Snapshot");
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            let fields = match (phase.as_str(), &vm) {
                // KubeVirt does not take snapshots with its Snapshot feature gate off.
                _ if !gate_on => json!({"phase": "Failed", "readyToUse": false, "error": {"message": "Snapshot feature gate is not enabled", "time": now()},
                    "conditions": [condition("Ready", false, "Failed", "Snapshot feature gate is not enabled")]}),
                (_, None) => json!({"phase": "Failed", "readyToUse": false, "error": {"message": format!("VirtualMachine \"{src}\" does not exist"), "time": now()},
                    "conditions": [condition("Ready", false, "Failed", "Source does not exist"), condition("Progressing", false, "Failed", "Source does not exist")]}),
                ("", Some(vm)) => json!({"phase": "InProgress", "readyToUse": false, "sourceUID": vm["metadata"]["uid"],
                    "conditions": [condition("Ready", false, "Operation in progress", "Operation in progress"), condition("Progressing", true, "Operation in progress", "Operation in progress")]}),
                (_, Some(vm)) => {
                    lock(&self.snapshots).insert(uid.clone(), (**vm).clone());
                    json!({"phase": "Succeeded", "readyToUse": true, "creationTime": now(), "sourceUID": vm["metadata"]["uid"],
                        "virtualMachineSnapshotContentName": format!("vmsnapshot-content-{uid}"), "indications": ["Online"],
                        "conditions": [condition("Ready", true, "Operation complete", "Operation complete"), condition("Progressing", false, "Operation complete", "Operation complete")]})
                }
            };
            set_status(o, fields)
        });
    }

    pub(super) fn reconcile_restore(&self, core: &Core, r: &Value) {
        let (ns, name) = key(r);
        if r["status"]["complete"] == true {
            return;
        }
        let def = self.def("restore");
        let target = r["spec"]["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let snap_name = r["spec"]["virtualMachineSnapshotName"]
            .as_str()
            .unwrap_or_default();
        let snap = core.store.get(&self.def("snapshot").key(), &ns, snap_name);
        let content = snap
            .as_ref()
            .and_then(|s| lock(&self.snapshots).get(meta_str(s, "uid")).cloned());
        let vm_running = self.vmi_of(core, &ns, &target).is_some();
        let fields = match (&content, vm_running) {
            (None, _) => {
                json!({"complete": false, "conditions": [condition("Ready", false, "Snapshot not ready", format!("VirtualMachineSnapshot \"{snap_name}\" is not ready to use").as_str())]})
            }
            (Some(_), true) => json!({"complete": false, "conditions": [
                condition("Progressing", false, "VM not stopped", "restore target VirtualMachine must be stopped"),
                condition("Ready", false, "VM not stopped", "restore target VirtualMachine must be stopped"),
            ]}),
            (Some(snap_vm), false) => {
                let vm_def = self.def("vm");
                let spec = snap_vm["spec"].clone();
                core.internal_modify(&vm_def, &ns, &target, "virt-controller", "", |o| {
                    let strategy = o["spec"]["runStrategy"].clone();
                    o["spec"] = spec.clone();
                    if !strategy.is_null() {
                        o["spec"]["runStrategy"] = strategy;
                    }
                    o["metadata"]["annotations"]["restore.kubevirt.io/lastRestoreUID"] =
                        json!(format!("{name}-{}", meta_str(r, "uid")));
                    true
                });
                json!({"complete": true, "restoreTime": now(), "conditions": [
                    condition("Progressing", false, "Operation complete", "Operation complete"),
                    condition("Ready", true, "Operation complete", "Operation complete"),
                ]})
            }
        };
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            set_status(o, fields.clone())
        });
    }

    pub(super) async fn reconcile_clone(&self, core: &Core, c: &Value) {
        let (ns, name) = key(c);
        let def = self.def("clone");
        let phase = c["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return;
        }
        let src_kind = c["spec"]["source"]["kind"]
            .as_str()
            .unwrap_or("VirtualMachine");
        let src_name = c["spec"]["source"]["name"].as_str().unwrap_or_default();
        let source_vm: Option<Value> = if src_kind == "VirtualMachineSnapshot" {
            core.store
                .get(&self.def("snapshot").key(), &ns, src_name)
                .and_then(|s| lock(&self.snapshots).get(meta_str(&s, "uid")).cloned())
        } else {
            core.store
                .get(&self.def("vm").key(), &ns, src_name)
                .map(|v| (*v).clone())
        };
        let target = c["spec"]["target"]["name"]
            .as_str()
            .map(str::to_string)
            .or_else(|| c["status"]["targetName"].as_str().map(str::to_string));
        let target = target.unwrap_or_else(|| {
            format!("clone-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        });
        let next = match (phase.as_str(), &source_vm) {
            (_, None) => "Failed",
            ("", _) => "SnapshotInProgress",
            ("SnapshotInProgress", _) => "CreatingTargetVM",
            ("CreatingTargetVM", Some(vm)) => {
                let filters: Vec<String> = c["spec"]["labelFilters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect();
                let labels = filter_labels(&vm["metadata"]["labels"], &filters);
                let mut spec = vm["spec"].clone();
                let tfilters: Vec<String> = c["spec"]["template"]["labelFilters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect();
                spec["template"]["metadata"]["labels"] =
                    filter_labels(&vm["spec"]["template"]["metadata"]["labels"], &tfilters);
                let new_vm = json!({
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                    "metadata": {"name": target, "namespace": ns, "labels": labels},
                    "spec": spec,
                });
                let _ = core
                    .create(
                        &Ctx::internal("virt-controller"),
                        &self.def("vm"),
                        &ns,
                        new_vm,
                    )
                    .await;
                "RestoreInProgress"
            }
            ("RestoreInProgress", _) => "Succeeded",
            _ => "Failed",
        };
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            let ready = next == "Succeeded";
            set_status(
                o,
                json!({
                    "phase": next, "targetName": target,
                    "conditions": [
                        condition("Ready", ready, if ready { "Succeeded" } else { "InProgress" }, ""),
                        condition("Progressing", !ready && next != "Failed", if ready { "Succeeded" } else { "InProgress" }, ""),
                    ],
                }),
            )
        });
    }

    pub(super) fn reconcile_dv(&self, core: &Core, dv: &Value) {
        let (ns, name) = key(dv);
        let def = self.def("dv");
        let phase = dv["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (next, progress) = match phase.as_str() {
            "" => ("Pending", "N/A"),
            "Pending" => ("ImportScheduled", "N/A"),
            "ImportScheduled" => ("ImportInProgress", "50.00%"),
            "ImportInProgress" => ("Succeeded", "100.0%"),
            _ => return,
        };
        let done = next == "Succeeded";
        core.internal_modify(&def, &ns, &name, "cdi-controller", "status", |o| {
            set_status(
                o,
                json!({
                    "phase": next, "progress": progress, "claimName": name,
                    "conditions": [
                        condition("Bound", next != "Pending", if next != "Pending" { "Bound" } else { "Pending" }, ""),
                        condition("Ready", done, if done { "Completed" } else { "TransferRunning" }, ""),
                        condition("Running", !done && next == "ImportInProgress", if done { "Completed" } else { "Pending" }, ""),
                    ],
                }),
            )
        });
    }
}

/// KubeVirt clone label filters: `*` keeps all, `!key` or `!prefix/*` drops, a plain
/// pattern keeps only matching keys. No filters keeps everything.
fn filter_labels(labels: &Value, filters: &[String]) -> Value {
    let Some(m) = labels.as_object() else {
        return Value::Null;
    };
    if filters.is_empty() {
        return labels.clone();
    }
    let glob = |pat: &str, k: &str| match pat.strip_suffix('*') {
        Some(prefix) => k.starts_with(prefix),
        None => pat == k,
    };
    let out: serde_json::Map<String, Value> = m
        .iter()
        .filter(|(k, _)| {
            let mut keep = false;
            for f in filters {
                if let Some(neg) = f.strip_prefix('!') {
                    if glob(neg, k) {
                        keep = false;
                    }
                } else if glob(f, k) {
                    keep = true;
                }
            }
            keep
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(out)
}
