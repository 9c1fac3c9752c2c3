//! Reading the VirtualMachines a cluster holds with our managed-by label, with the field
//! managers other than ours (and KubeVirt's status writers) that own parts of their spec.

use super::{CallError, TargetCluster, kubevirt};
use crate::domain::drift::FoundVm;
use crate::domain::render::{FIELD_MANAGER, managed_selector};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};

/// The managed VMs on the cluster.
pub async fn managed_vms(target: &TargetCluster) -> Result<Vec<FoundVm>, CallError> {
    let api: Api<DynamicObject> =
        Api::all_with(target.client.clone(), &kubevirt::virtual_machine());
    let list = target
        .call(
            "list managed VMs",
            api.list(&ListParams::default().labels(&managed_selector())),
        )
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|vm| FoundVm {
            namespace: vm.namespace().unwrap_or_default(),
            name: vm.name_any(),
            foreign_spec_managers: foreign_spec_managers(&vm),
        })
        .collect())
}

/// KubeVirt's own components, which write a VM's spec when asked through KubeVirt's API:
/// virt-api for the start, stop and restart subresources (`runStrategy`), virt-controller
/// for a restore. The platform's operations ask for those; they are not drift.
const KUBEVIRT_MANAGERS: [&str; 2] = ["virt-api", "virt-controller"];

/// Managers of the main resource (not a subresource such as `status`) other than ours and
/// KubeVirt's whose fields include the spec.
fn foreign_spec_managers(vm: &DynamicObject) -> Vec<String> {
    let mut managers: Vec<String> = vm
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|m| {
            m.manager
                .as_deref()
                .is_some_and(|name| name != FIELD_MANAGER && !KUBEVIRT_MANAGERS.contains(&name))
        })
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .filter_map(|m| m.manager.clone())
        .collect();
    managers.sort();
    managers.dedup();
    managers
}
