//! The simulated KubeVirt controllers. Each tick advances every object by at most one
//! lifecycle step, so states such as Starting or Stopping are observable in between.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::{KubeVirt, lock};
use crate::api::{Core, Ctx, now};
use crate::store::meta_str;

const VM_FINALIZER: &str = "kubevirt.io/virtualMachineControllerFinalize";
const VMI_FINALIZER: &str = "foregroundDeleteVirtualMachine";

fn key(o: &Value) -> (String, String) {
    (
        meta_str(o, "namespace").to_string(),
        meta_str(o, "name").to_string(),
    )
}

fn owner_ref(o: &Value, controller: bool) -> Value {
    json!({
        "apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"], "uid": o["metadata"]["uid"],
        "controller": controller, "blockOwnerDeletion": true,
    })
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": type_, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
        "lastProbeTime": Value::Null, "lastTransitionTime": now(),
    })
}

/// Replaces `status` fields, keeping `lastTransitionTime` of unchanged conditions so a
/// steady state writes nothing.
fn set_status(obj: &mut Value, fields: Value) -> bool {
    let before = obj["status"].clone();
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    for (k, v) in fields.as_object().into_iter().flatten() {
        let mut v = v.clone();
        if k == "conditions"
            && let Some(new) = v.as_array_mut()
        {
            for c in new.iter_mut() {
                if let Some(old) = before["conditions"]
                    .as_array()
                    .and_then(|a| a.iter().find(|o| o["type"] == c["type"]))
                    && old["status"] == c["status"]
                    && old["reason"] == c["reason"]
                {
                    c["lastTransitionTime"] = old["lastTransitionTime"].clone();
                }
            }
        }
        if v.is_null() {
            obj["status"].as_object_mut().map(|m| m.remove(k));
        } else {
            obj["status"][k] = v;
        }
    }
    obj["status"] != before
}

fn gpus_requested(spec: &Value) -> Vec<String> {
    spec["domain"]["devices"]["gpus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["deviceName"].as_str().map(str::to_string))
        .collect()
}

impl KubeVirt {
    pub(crate) async fn run(self: Arc<Self>, core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.step_delay());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.reconcile_all(&core).await,
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn reconcile_all(&self, core: &Core) {
        for dv in core.store.list(&self.def("dv").key(), None).0 {
            self.reconcile_dv(core, &dv);
        }
        for vm in core.store.list(&self.def("vm").key(), None).0 {
            self.reconcile_vm(core, &vm).await;
        }
        for vmi in core.store.list(&self.def("vmi").key(), None).0 {
            self.reconcile_vmi(core, &vmi);
        }
        for m in core.store.list(&self.def("vmim").key(), None).0 {
            self.reconcile_migration(core, &m);
        }
        for s in core.store.list(&self.def("snapshot").key(), None).0 {
            self.reconcile_snapshot(core, &s);
        }
        for r in core.store.list(&self.def("restore").key(), None).0 {
            self.reconcile_restore(core, &r);
        }
        for c in core.store.list(&self.def("clone").key(), None).0 {
            self.reconcile_clone(core, &c).await;
        }
    }

    pub(super) fn vmi_of(&self, core: &Core, ns: &str, name: &str) -> Option<Arc<Value>> {
        core.store.get(&self.def("vmi").key(), ns, name)
    }

    /// Whether the VM should have a running VMI, from `runStrategy` (or `running`).
    fn wants_running(&self, vm: &Value, vmi: Option<&Value>) -> bool {
        let strategy = vm["spec"]["runStrategy"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                if vm["spec"]["running"].as_bool() == Some(true) {
                    "Always".into()
                } else {
                    "Halted".into()
                }
            });
        match strategy.as_str() {
            "Always" | "RerunOnFailure" => true,
            "Once" => vmi.is_none_or(|v| v["status"]["phase"] != "Succeeded"),
            "Manual" => lock(&self.manual_running).contains(&key(vm)),
            _ => false,
        }
    }

    async fn reconcile_vm(&self, core: &Core, vm: &Value) {
        let (ns, name) = key(vm);
        let vm_def = self.def("vm");
        let vmi_def = self.def("vmi");
        let vmi = self.vmi_of(core, &ns, &name);
        if !vm["metadata"]["deletionTimestamp"].is_null() {
            match vmi {
                Some(_) => {
                    core.internal_delete(&vmi_def, &ns, &name);
                }
                None => {
                    core.internal_modify(&vm_def, &ns, &name, "virt-controller", "", |o| {
                        let before = o["metadata"]["finalizers"].clone();
                        if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                            f.retain(|x| x != VM_FINALIZER);
                        }
                        o["metadata"]["finalizers"] != before
                    });
                }
            }
            return;
        }
        if !vm["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == VM_FINALIZER))
        {
            core.internal_modify(&vm_def, &ns, &name, "virt-controller", "", |o| {
                match o["metadata"]["finalizers"].as_array_mut() {
                    Some(f) => f.push(json!(VM_FINALIZER)),
                    None => o["metadata"]["finalizers"] = json!([VM_FINALIZER]),
                }
                true
            });
        }
        // DataVolumes from dataVolumeTemplates, owned by the VM.
        let dv_def = self.def("dv");
        let mut provisioning = false;
        for t in vm["spec"]["dataVolumeTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let dv_name = t["metadata"]["name"].as_str().unwrap_or_default();
            match core.store.get(&dv_def.key(), &ns, dv_name) {
                Some(dv) => provisioning |= dv["status"]["phase"] != "Succeeded",
                None => {
                    let dv = json!({
                        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                        "metadata": {"name": dv_name, "namespace": ns, "labels": t["metadata"]["labels"], "ownerReferences": [owner_ref(vm, true)]},
                        "spec": t["spec"],
                    });
                    let _ = core
                        .create(&Ctx::internal("virt-controller"), &dv_def, &ns, dv)
                        .await;
                    provisioning = true;
                }
            }
        }
        let failure = self.failure_of(vm);
        let running = self.wants_running(vm, vmi.as_deref());
        if running && vmi.is_none() && !provisioning {
            let tmpl = &vm["spec"]["template"];
            let vmi_obj = json!({
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "metadata": {
                    "name": name, "namespace": ns, "labels": tmpl["metadata"]["labels"], "annotations": tmpl["metadata"]["annotations"],
                    "ownerReferences": [owner_ref(vm, true)], "finalizers": [VMI_FINALIZER],
                },
                "spec": tmpl["spec"],
            });
            let _ = core
                .create(&Ctx::internal("virt-controller"), &vmi_def, &ns, vmi_obj)
                .await;
        } else if !running
            && let Some(v) = &vmi
            && v["metadata"]["deletionTimestamp"].is_null()
        {
            core.internal_delete(&vmi_def, &ns, &name);
        }
        let vmi = self.vmi_of(core, &ns, &name);
        let paused = lock(&self.paused).contains(&(ns.clone(), name.clone()));
        let phase = vmi.as_ref().map(|v| {
            v["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let unschedulable = vmi.as_ref().is_some_and(|v| {
            v["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            })
        });
        let migrating = vmi.as_ref().is_some_and(|v| {
            v["status"]["migrationState"].is_object()
                && v["status"]["migrationState"]["completed"] != true
        });
        let printable = if let Some(f) = &failure {
            f.clone()
        } else if provisioning {
            "Provisioning".into()
        } else {
            match (&vmi, phase.as_deref()) {
                (None, _) if running => "Starting".into(),
                (None, _) => "Stopped".into(),
                (Some(v), _) if !v["metadata"]["deletionTimestamp"].is_null() => "Stopping".into(),
                (Some(_), _) if unschedulable => "ErrorUnschedulable".into(),
                (Some(_), Some("Running")) if paused => "Paused".into(),
                (Some(_), Some("Running")) if migrating => "Migrating".into(),
                (Some(_), Some("Running")) => "Running".into(),
                (Some(_), Some("Succeeded")) => "Stopped".into(),
                (Some(_), Some("Failed")) => "CrashLoopBackOff".into(),
                _ => "Starting".into(),
            }
        };
        let ready = printable == "Running" || printable == "Migrating";
        let mut conditions = vec![if ready {
            condition("Ready", true, "", "")
        } else {
            let reason = if vmi.is_none() {
                "VMINotExists"
            } else {
                "NotReady"
            };
            condition(
                "Ready",
                false,
                reason,
                if vmi.is_none() {
                    "VMI does not exist"
                } else {
                    "VMI is not ready"
                },
            )
        }];
        if unschedulable || failure.as_deref() == Some("ErrorUnschedulable") {
            conditions.push(condition(
                "PodScheduled",
                false,
                "Unschedulable",
                "0/2 nodes are available: insufficient resources.",
            ));
        }
        if paused {
            conditions.push(condition(
                "Paused",
                true,
                "PausedByUser",
                "VMI was paused by user",
            ));
        }
        if failure.is_some() && failure.as_deref() != Some("ErrorUnschedulable") {
            conditions.push(condition(
                "Failure",
                true,
                "FailedCreate",
                "simulated failure",
            ));
        }
        let strategy = vm["spec"]["runStrategy"].clone();
        let generation = vm["metadata"]["generation"].clone();
        core.internal_modify(&vm_def, &ns, &name, "virt-controller", "status", |o| {
            set_status(
                o,
                json!({
                    "printableStatus": printable, "ready": if ready { json!(true) } else { Value::Null },
                    "created": if vmi.is_some() { json!(true) } else { Value::Null },
                    "runStrategy": strategy, "conditions": conditions,
                    "observedGeneration": generation, "desiredGeneration": generation,
                    "volumeSnapshotStatuses": Value::Null,
                }),
            )
        });
    }

    fn pick_node(&self, spec: &Value, avoid: Option<&str>) -> Option<String> {
        let wanted = gpus_requested(spec);
        let page = spec["domain"]["memory"]["hugepages"]["pageSize"].as_str();
        self.config
            .nodes
            .iter()
            .filter(|n| Some(n.name.as_str()) != avoid)
            .find(|n| {
                wanted.iter().all(|g| n.gpus.get(g).is_some_and(|c| *c > 0))
                    && page.is_none_or(|p| n.hugepages.contains_key(p))
            })
            .map(|n| n.name.clone())
    }

    fn reconcile_vmi(&self, core: &Core, vmi: &Value) {
        let (ns, name) = key(vmi);
        let def = self.def("vmi");
        if !vmi["metadata"]["deletionTimestamp"].is_null() {
            // Stopping: the guest shuts down, then the finalizer is released.
            let phase_done = vmi["status"]["phase"] == "Succeeded";
            core.internal_modify(&def, &ns, &name, "virt-handler", "", |o| {
                if phase_done {
                    if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                        f.retain(|x| x != VMI_FINALIZER);
                    }
                } else {
                    o["status"]["phase"] = json!("Succeeded");
                    o["status"]["conditions"] = json!([condition(
                        "Ready",
                        false,
                        "PodTerminating",
                        "virt-launcher pod is terminating"
                    )]);
                }
                true
            });
            lock(&self.paused).remove(&(ns, name));
            return;
        }
        let vm_failure = core
            .store
            .get(&self.def("vm").key(), &ns, &name)
            .and_then(|vm| self.failure_of(&vm));
        let phase = vmi["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let next_node = self.pick_node(&vmi["spec"], None);
        let paused = lock(&self.paused).contains(&(ns.clone(), name.clone()));
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            let fields = match phase.as_str() {
                "" => json!({"phase": "Pending", "conditions": [], "guestOSInfo": {}}),
                "Pending" => json!({"phase": "Scheduling"}),
                "Scheduling" => match (&vm_failure, &next_node) {
                    (None, Some(node)) => json!({
                        "phase": "Scheduled", "nodeName": node,
                        "conditions": [condition("PodScheduled", true, "", "")],
                    }),
                    _ => json!({"conditions": [condition("PodScheduled", false, "Unschedulable", "0/2 nodes are available: insufficient resources.")]}),
                },
                "Scheduled" => json!({
                    "phase": "Running",
                    "interfaces": [{"name": "default", "ipAddress": format!("10.244.0.{}", 10 + (meta_str(o, "uid").bytes().map(u32::from).sum::<u32>() % 200)), "interfaceName": "eth0", "infoSource": "domain, guest-agent"}],
                    "migrationMethod": "BlockMigration",
                    "conditions": [
                        condition("Ready", true, "", ""),
                        condition("LiveMigratable", true, "", ""),
                        condition("AgentConnected", true, "", ""),
                    ],
                }),
                "Running" => {
                    let mut c = vec![condition("Ready", true, "", ""), condition("LiveMigratable", true, "", ""), condition("AgentConnected", true, "", "")];
                    if paused {
                        c.push(condition("Paused", true, "PausedByUser", "VMI was paused by user"));
                    }
                    json!({"conditions": c})
                }
                _ => json!({}),
            };
            set_status(o, fields)
        });
    }

    fn reconcile_migration(&self, core: &Core, m: &Value) {
        let (ns, name) = key(m);
        let def = self.def("vmim");
        let phase = m["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if matches!(phase.as_str(), "Succeeded" | "Failed") {
            return;
        }
        let vmi_name = m["spec"]["vmiName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let vmi = self.vmi_of(core, &ns, &vmi_name);
        let running = vmi.as_ref().is_some_and(|v| {
            v["status"]["phase"] == "Running" && v["metadata"]["deletionTimestamp"].is_null()
        });
        let source = vmi
            .as_ref()
            .map(|v| {
                v["status"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        let target = vmi
            .as_ref()
            .and_then(|v| self.pick_node(&v["spec"], Some(&source)));
        let uid = meta_str(m, "uid").to_string();
        let next = match (phase.as_str(), running, &target) {
            (_, false, _) => "Failed",
            ("", _, _) => "Pending",
            ("Pending", _, Some(_)) => "Scheduling",
            ("Pending", _, None) => "Pending",
            ("Scheduling", _, _) => "Scheduled",
            ("Scheduled", _, _) => "PreparingTarget",
            ("PreparingTarget", _, _) => "TargetReady",
            ("TargetReady", _, _) => "Running",
            ("Running", _, _) => "Succeeded",
            _ => "Failed",
        };
        let vmi_def = self.def("vmi");
        if next == "Running" || next == "Succeeded" {
            let (t, src) = (target.clone().unwrap_or_default(), source.clone());
            let done = next == "Succeeded";
            core.internal_modify(&vmi_def, &ns, &vmi_name, "virt-handler", "status", |o| {
                let mut st = json!({
                    "sourceNode": src, "targetNode": t, "migrationUid": uid, "startTimestamp": now(),
                    "completed": done, "failed": false, "mode": "PreCopy",
                });
                if done {
                    st["endTimestamp"] = json!(now());
                    st["startTimestamp"] = o["status"]["migrationState"]["startTimestamp"].clone();
                    o["status"]["nodeName"] = json!(t);
                }
                o["status"]["migrationState"] = st;
                true
            });
        }
        let (t, src) = (target.unwrap_or_default(), source);
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            let mut st = json!({"phase": next});
            if next != "Pending" && next != "Failed" {
                st["migrationState"] =
                    json!({"sourceNode": src, "targetNode": t, "completed": next == "Succeeded"});
            }
            let mut ts = o["status"]["phaseTransitionTimestamps"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !ts.iter().any(|p| p["phase"] == next) {
                ts.push(json!({"phase": next, "phaseTransitionTimestamp": now()}));
            }
            st["phaseTransitionTimestamps"] = json!(ts);
            set_status(o, st)
        });
        if meta_str(m, "name").is_empty() {
            return;
        }
        // Migration objects carry the VMI label like KubeVirt's.
        if m["metadata"]["labels"]["kubevirt.io/vmi-name"].is_null() {
            core.internal_modify(&def, &ns, &name, "virt-controller", "", |o| {
                o["metadata"]["labels"]["kubevirt.io/vmi-name"] = json!(vmi_name);
                true
            });
        }
    }

    fn reconcile_snapshot(&self, core: &Core, s: &Value) {
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
        core.internal_modify(&def, &ns, &name, "virt-controller", "status", |o| {
            let fields = match (phase.as_str(), &vm) {
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

    fn reconcile_restore(&self, core: &Core, r: &Value) {
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

    async fn reconcile_clone(&self, core: &Core, c: &Value) {
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

    fn reconcile_dv(&self, core: &Core, dv: &Value) {
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
