//! The VirtualMachine, VirtualMachineInstance and migration controllers: runStrategy,
//! printableStatus and conditions, the VMI phases, scheduling to nodes, live migration.

use serde_json::{Value, json};

use super::{VM_FINALIZER, VMI_FINALIZER, condition, key, owner_ref, set_status};
use crate::kubevirt::{KubeVirt, lock};
use crate::objects::{Core, Ctx, now};
use crate::store::meta_str;

fn gpus_requested(spec: &Value) -> Vec<String> {
    spec["domain"]["devices"]["gpus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["deviceName"].as_str().map(str::to_string))
        .collect()
}

/// KubeVirt's `LiveMigratable` condition of a VMI: like KubeVirt, a VMI with a GPU or
/// another host device passed through cannot live-migrate.
fn live_migratable(spec: &Value) -> Value {
    let host_devices = spec["domain"]["devices"]["hostDevices"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    if gpus_requested(spec).is_empty() && !host_devices {
        condition("LiveMigratable", true, "", "")
    } else {
        condition(
            "LiveMigratable",
            false,
            "HostDeviceNotLiveMigratable",
            "VMI uses a PCI host devices",
        )
    }
}

impl KubeVirt {
    /// Whether the VM should have a running VMI, from `runStrategy` (or `running`).
    fn wants_running(&self, vm: &Value, vmi: Option<&Value>) -> bool {
        let strategy = super::super::run_strategy(vm);
        match strategy.as_str() {
            "Always" | "RerunOnFailure" => true,
            "Once" => vmi.is_none_or(|v| v["status"]["phase"] != "Succeeded"),
            "Manual" => lock(&self.manual_running).contains(&key(vm)),
            _ => false,
        }
    }

    pub(super) async fn reconcile_vm(&self, core: &Core, vm: &Value) {
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

    pub(super) fn reconcile_vmi(&self, core: &Core, vmi: &Value) {
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
        let migratable = live_migratable(&vmi["spec"]);
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
                        migratable.clone(),
                        condition("AgentConnected", true, "", ""),
                    ],
                }),
                "Running" => {
                    let mut c = vec![condition("Ready", true, "", ""), migratable.clone(), condition("AgentConnected", true, "", "")];
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

    pub(super) fn reconcile_migration(&self, core: &Core, m: &Value) {
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
        // A VMI that cannot live-migrate fails its migration, as with KubeVirt.
        let running = vmi.as_ref().is_some_and(|v| {
            v["status"]["phase"] == "Running"
                && v["metadata"]["deletionTimestamp"].is_null()
                && live_migratable(&v["spec"])["status"] == "True"
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
}
