//! `subresources.kubevirt.io/v1`: start, stop, restart and migrate of VMs, pause and
//! unpause of VMIs, and version. Conflicts are worded like KubeVirt's virt-api.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{KubeVirt, lock};
use crate::error::{ApiError, ApiResult};
use crate::objects::{Core, Ctx};
use crate::server::{Req, json_response};

fn conflict(resource: &str, name: &str, why: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!("Operation cannot be fulfilled on {resource}.kubevirt.io \"{name}\": {why}"),
    )
}

impl KubeVirt {
    pub(crate) async fn subresource(
        &self,
        core: &Core,
        rest: &[&str],
        r: &Req<'_>,
    ) -> ApiResult<Response> {
        match (r.method.clone(), rest) {
            (Method::GET, ["version"]) => Ok(json_response(
                StatusCode::OK,
                &json!({"gitVersion": self.config.version, "gitCommit": "simulated", "gitTreeState": "clean", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
            )),
            (Method::GET, ["healthz"]) => {
                Ok(json_response(StatusCode::OK, &json!({"apiserver": "ok"})))
            }
            (Method::PUT | Method::POST, ["namespaces", ns, "virtualmachines", name, verb]) => {
                self.vm_verb(core, ns, name, verb, r).await?;
                Ok(json_response(StatusCode::OK, &json!({})))
            }
            (
                Method::PUT,
                [
                    "namespaces",
                    ns,
                    "virtualmachineinstances",
                    name,
                    verb @ ("pause" | "unpause"),
                ],
            ) => {
                let vmi = self.vmi_of(core, ns, name).ok_or_else(|| {
                    ApiError::not_found("kubevirt.io", "virtualmachineinstances", name)
                })?;
                if vmi["status"]["phase"] != "Running" {
                    return Err(conflict(
                        "virtualmachineinstance",
                        name,
                        "VMI is not running",
                    ));
                }
                let key = (ns.to_string(), name.to_string());
                let mut paused = lock(&self.paused);
                match (*verb, paused.contains(&key)) {
                    ("pause", true) => {
                        return Err(conflict(
                            "virtualmachineinstance",
                            name,
                            "VMI is already paused",
                        ));
                    }
                    ("unpause", false) => {
                        return Err(conflict(
                            "virtualmachineinstance",
                            name,
                            "VMI is not paused",
                        ));
                    }
                    ("pause", false) => {
                        paused.insert(key);
                    }
                    _ => {
                        paused.remove(&key);
                    }
                }
                Ok(json_response(StatusCode::OK, &json!({})))
            }
            _ => Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )),
        }
    }

    async fn vm_verb(
        &self,
        core: &Core,
        ns: &str,
        name: &str,
        verb: &str,
        r: &Req<'_>,
    ) -> ApiResult<()> {
        let vm_def = self.def("vm");
        let vm = core
            .store
            .get(&vm_def.key(), ns, name)
            .ok_or_else(|| ApiError::not_found("kubevirt.io", "virtualmachines", name))?;
        let vmi = self.vmi_of(core, ns, name);
        let vmi_active = vmi.as_ref().is_some_and(|v| {
            !matches!(v["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        });
        let strategy = super::run_strategy(&vm);
        let set_strategy = |s: &'static str| {
            core.internal_modify(&vm_def, ns, name, "virt-api", "", |o| {
                if o["spec"]["runStrategy"] == s {
                    return false;
                }
                o["spec"]["runStrategy"] = json!(s);
                o["spec"].as_object_mut().map(|m| m.remove("running"));
                true
            });
        };
        let key = (ns.to_string(), name.to_string());
        let dry_run = r.query.get("dryRun").is_some_and(|d| d == "All");
        match verb {
            "start" => {
                if vmi_active
                    && vmi
                        .as_ref()
                        .is_some_and(|v| v["metadata"]["deletionTimestamp"].is_null())
                {
                    return Err(conflict("virtualmachine", name, "VM is already running"));
                }
                match strategy.as_str() {
                    "Always" | "Once" => {
                        return Err(conflict(
                            "virtualmachine",
                            name,
                            &format!("{strategy} does not support manual start requests"),
                        ));
                    }
                    _ if dry_run => {}
                    "Halted" => set_strategy("Always"),
                    _ => {
                        lock(&self.manual_running).insert(key);
                    }
                }
            }
            "stop" => match strategy.as_str() {
                "Halted" | "Manual" if !vmi_active => {
                    return Err(conflict("virtualmachine", name, "VM is not running"));
                }
                _ if dry_run => {}
                "Manual" => {
                    lock(&self.manual_running).remove(&key);
                }
                _ => set_strategy("Halted"),
            },
            "restart" => {
                if strategy == "Halted" {
                    return Err(conflict(
                        "virtualmachine",
                        name,
                        "Halted does not support manual restart requests",
                    ));
                }
                if !vmi_active {
                    return Err(conflict("virtualmachine", name, "VM is not running"));
                }
                if !dry_run {
                    core.internal_delete(&self.def("vmi"), ns, name);
                }
            }
            "migrate" => {
                if !vmi
                    .as_ref()
                    .is_some_and(|v| v["status"]["phase"] == "Running")
                {
                    return Err(conflict("virtualmachine", name, "VM is not running"));
                }
                if !dry_run {
                    let m = json!({
                        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                        "metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": ns},
                        "spec": {"vmiName": name},
                    });
                    let mut ctx: Ctx = r.ctx()?;
                    ctx.validation = crate::objects::FieldValidation::Ignore;
                    core.create(&ctx, &self.def("vmim"), ns, m).await?;
                }
            }
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
        }
        Ok(())
    }
}
