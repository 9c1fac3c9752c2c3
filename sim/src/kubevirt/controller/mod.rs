//! The simulated KubeVirt controllers. Each tick advances every object by at most one
//! lifecycle step, so states such as Starting or Stopping are observable in between.
//!
//! - `vm`: VirtualMachines, their instances (VMIs) and live migrations.
//! - `storage`: DataVolumes, snapshots, restores and clones.

mod storage;
mod vm;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::KubeVirt;
use crate::objects::{Core, now};
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
}
