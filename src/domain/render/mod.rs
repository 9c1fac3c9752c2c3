//! The VirtualMachine renderer (docs/architecture.md#vms): one pure function from the approval's
//! snapshots to the full object written to a target cluster with server-side apply.
//!
//! Layers, each deep-merged over the previous one (JSON merge patch, RFC 7386: objects
//! merge key by key, arrays and scalars replace, `null` removes):
//!
//! 1. the template version's `baseVm` (a partial VirtualMachine `spec`);
//! 2. the instance size's `specOverrides`, then its shape (cores, dedicated CPU placement,
//!    hugepages, GPUs). The shape is what placement checked, so it is authoritative: a
//!    fragment cannot add dedicated CPUs, hugepages or GPUs the size does not have;
//! 3. the request's disk (the size of a DataVolume root disk);
//! 4. the approval's final resources (requests, limits, guest memory when overcommitted);
//! 5. platform-owned fields, last, so nothing earlier can overwrite them: apiVersion, kind,
//!    name, namespace, our labels and annotations, `runStrategy`, the root and cloud-init
//!    disks and volumes, the root disk's DataVolume template.
//!
//! The output is deterministic: the same input renders the same JSON.

use crate::domain::resources::FinalResources;
use crate::domain::vm_state::PowerState;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use snapshot::{RootImage, Size, parse_size, parse_template};

mod snapshot;

/// Every label and annotation key the platform owns lives under this prefix.
pub const LABEL_PREFIX: &str = "kubevirt-shepherd.io";
pub const MANAGED_BY_LABEL: &str = "kubevirt-shepherd.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "kubevirt-shepherd";
pub const TICKET_LABEL: &str = "kubevirt-shepherd.io/ticket-id";
/// The field manager of server-side apply.
pub const FIELD_MANAGER: &str = "kubevirt-shepherd";

const SYSTEM_LABEL: &str = "kubevirt-shepherd.io/system";
const SERVICE_LABEL: &str = "kubevirt-shepherd.io/service";
const INSTANCE_LABEL: &str = "kubevirt-shepherd.io/instance";
const CREATED_BY_LABEL: &str = "kubevirt-shepherd.io/created-by";
const ENVIRONMENT_LABEL: &str = "kubevirt-shepherd.io/environment";
const FQDN_ANNOTATION: &str = "kubevirt-shepherd.io/fqdn";
const TEMPLATE_VERSION_ANNOTATION: &str = "kubevirt-shepherd.io/template-version";

const ROOT_DISK: &str = "rootdisk";
const CLOUD_INIT_DISK: &str = "cloudinitdisk";
const DEFAULT_NETWORK: &str = "default";

/// Longest Kubernetes label value.
const LABEL_VALUE_MAX: usize = 63;
/// Hex digits of the hash suffix of a changed label value.
const LABEL_HASH_LEN: usize = 8;

/// The label selector of everything the platform manages:
/// `kubevirt-shepherd.io/managed-by=kubevirt-shepherd`.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// What the platform's labels of a VM say: whose it is and which ticket made it.
#[derive(Debug, Clone, Copy)]
pub struct VmLabels<'a> {
    pub system: &'a str,
    pub service: &'a str,
    pub instance_index: i32,
    pub ticket_id: uuid::Uuid,
    pub created_by: &'a str,
}

/// The labels the platform puts on a VM and on its instance template (a rendered VM or a
/// clone alike).
pub fn vm_labels(l: &VmLabels<'_>) -> Map<String, Value> {
    let mut labels = Map::new();
    for (key, value) in [
        (MANAGED_BY_LABEL, MANAGED_BY_VALUE.to_string()),
        (SYSTEM_LABEL, label_value(l.system)),
        (SERVICE_LABEL, label_value(l.service)),
        (
            INSTANCE_LABEL,
            label_value(&format!("{:02}", l.instance_index)),
        ),
        (TICKET_LABEL, l.ticket_id.to_string()),
        (CREATED_BY_LABEL, label_value(l.created_by)),
    ] {
        labels.insert(key.into(), value.into());
    }
    labels
}

/// What a VM is rendered from: the approval's snapshots and final resources, the VM row's
/// name and index, and the desired power state.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub vm_name: &'a str,
    pub namespace: &'a str,
    pub system: &'a str,
    pub service: &'a str,
    pub instance_index: i32,
    pub ticket_id: uuid::Uuid,
    pub created_by: &'a str,
    /// Template version snapshot: `{"version": n, "spec": VmTemplateSpec}`.
    pub template: &'a Value,
    /// Instance size snapshot: `{"cpuCores", "dedicatedCpu", "hugepages", "gpus",
    /// "specOverrides", ...}`.
    pub size: &'a Value,
    pub resources: &'a FinalResources,
    pub storage_class: Option<&'a str>,
    pub power: PowerState,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("{snapshot} snapshot: `{field}` {rule}")]
    Snapshot {
        snapshot: &'static str,
        field: String,
        rule: &'static str,
    },
    #[error("{field} must be a JSON object (a partial VirtualMachine spec)")]
    FragmentNotObject { field: &'static str },
    #[error(
        "`spec.{path}` from the template's baseVm or the size's specOverrides must be {expected}"
    )]
    FragmentShape {
        path: String,
        expected: &'static str,
    },
    #[error(
        "template snapshot: `spec.image` needs exactly one of containerDisk (a non-empty image) or dataVolume"
    )]
    ImageSource,
    #[error(
        "template snapshot: `spec.image.dataVolume` needs exactly one of httpUrl or registryUrl (non-empty)"
    )]
    DataVolumeSource,
    #[error(
        "a dataVolume root disk needs storage: the request's disk size must be at least 1 GiB, got {disk_gib}"
    )]
    DataVolumeWithoutStorage { disk_gib: i32 },
}

/// The labels of a namespace created just in time.
pub fn namespace_labels(environment: &str) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels.insert(ENVIRONMENT_LABEL.into(), label_value(environment).into());
    labels
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn is_valid_label_value(s: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    s.len() <= LABEL_VALUE_MAX
        && s.chars().all(is_label_char)
        && ends_ok(s.chars().next())
        && ends_ok(s.chars().next_back())
}

/// Any string as a valid Kubernetes label value (at most 63 characters, alphanumeric at
/// both ends, `-`, `_`, `.` inside; empty allowed). A valid value is kept as is. Otherwise
/// each run of other characters becomes one `-`, the result is cut and trimmed to fit, and
/// `-` plus the first 8 hex digits of the SHA-256 of the original is appended, so that
/// `alice@example.com` and `alice.example.com` stay apart. Deterministic.
pub fn label_value(raw: &str) -> String {
    if is_valid_label_value(raw) {
        return raw.to_string();
    }
    let mut cleaned = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if is_label_char(c) { c } else { '-' };
        if c == '-' && cleaned.ends_with('-') {
            continue;
        }
        cleaned.push(c);
    }
    // Only ASCII is left, so byte length is character count.
    cleaned.truncate(LABEL_VALUE_MAX - 1 - LABEL_HASH_LEN);
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let hash = &digest[..LABEL_HASH_LEN];
    if cleaned.is_empty() {
        hash.to_string()
    } else {
        format!("{cleaned}-{hash}")
    }
}

/// `1000` -> `"1"`, `500` -> `"500m"`.
fn cpu_quantity(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn mib_quantity(mib: i64) -> String {
    format!("{mib}Mi")
}

/// A label or annotation key the platform owns (`kubevirt-shepherd.io/...`, or a subdomain).
fn is_platform_key(key: &str) -> bool {
    key.split_once('/').is_some_and(|(prefix, _)| {
        prefix == LABEL_PREFIX || prefix.ends_with(&format!(".{LABEL_PREFIX}"))
    })
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_into(t, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The object at `path` under `spec`, created when absent or null.
fn object_at<'m>(
    spec: &'m mut Map<String, Value>,
    path: &[&str],
) -> Result<&'m mut Map<String, Value>, RenderError> {
    let mut current = spec;
    for (depth, key) in path.iter().enumerate() {
        let slot = current
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        current = match slot {
            Value::Object(map) => map,
            _ => {
                return Err(RenderError::FragmentShape {
                    path: path[..=depth].join("."),
                    expected: "an object",
                });
            }
        };
    }
    Ok(current)
}

/// The array `key` of `parent` (at `path`), created when absent or null.
fn array_at<'m>(
    parent: &'m mut Map<String, Value>,
    path: &[&str],
    key: &str,
) -> Result<&'m mut Vec<Value>, RenderError> {
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(items) => Ok(items),
        _ => Err(RenderError::FragmentShape {
            path: [path, &[key]].concat().join("."),
            expected: "an array",
        }),
    }
}

/// Removes `key` from the object at `path` under `spec`, if there is one.
fn remove_at(spec: &mut Map<String, Value>, path: &[&str], key: &str) {
    let mut current = spec;
    for k in path {
        match current.get_mut(*k) {
            Some(Value::Object(map)) => current = map,
            _ => return,
        }
    }
    current.remove(key);
}

const DOMAIN: &[&str] = &["template", "spec", "domain"];
const CPU: &[&str] = &["template", "spec", "domain", "cpu"];
const MEMORY: &[&str] = &["template", "spec", "domain", "memory"];
const DEVICES: &[&str] = &["template", "spec", "domain", "devices"];
const VMI_SPEC: &[&str] = &["template", "spec"];
const VMI_METADATA: &[&str] = &["template", "metadata"];

/// Layer 2b: the size's shape, authoritative over the fragments.
fn apply_shape(spec: &mut Map<String, Value>, size: &Size<'_>) -> Result<(), RenderError> {
    let cpu = object_at(spec, CPU)?;
    cpu.insert("cores".into(), size.cpu_cores.into());
    if size.dedicated_cpu {
        cpu.insert("dedicatedCpuPlacement".into(), true.into());
    } else {
        cpu.remove("dedicatedCpuPlacement");
    }
    match size.hugepages {
        Some(page_size) => {
            object_at(spec, &[MEMORY, &["hugepages"]].concat())?
                .insert("pageSize".into(), page_size.into());
        }
        None => remove_at(spec, MEMORY, "hugepages"),
    }
    if size.gpus.is_empty() {
        remove_at(spec, DEVICES, "gpus");
    } else {
        let gpus = size
            .gpus
            .iter()
            .map(|g| json!({"name": g.name, "deviceName": g.device_name}))
            .collect();
        object_at(spec, DEVICES)?.insert("gpus".into(), Value::Array(gpus));
    }
    Ok(())
}

/// Layer 4: the approval's final resources.
fn apply_resources(
    spec: &mut Map<String, Value>,
    resources: &FinalResources,
) -> Result<(), RenderError> {
    let domain_resources = [DOMAIN, &["resources"]].concat();
    for (kind, cpu, memory) in [
        (
            "requests",
            resources.cpu_request_millis,
            resources.memory_request_mib,
        ),
        (
            "limits",
            resources.cpu_limit_millis,
            resources.memory_limit_mib,
        ),
    ] {
        let map = object_at(spec, &[&domain_resources[..], &[kind]].concat())?;
        map.insert("cpu".into(), cpu_quantity(cpu).into());
        map.insert("memory".into(), mib_quantity(memory).into());
    }
    // Without a guest size the guest sees the request; an overcommitted VM is promised its
    // limit. Otherwise a fragment's guest size could fall outside [request, limit].
    if resources.memory_request_mib < resources.memory_limit_mib {
        object_at(spec, MEMORY)?.insert(
            "guest".into(),
            mib_quantity(resources.memory_limit_mib).into(),
        );
    } else {
        remove_at(spec, MEMORY, "guest");
    }
    Ok(())
}

fn has_name(item: &Value, names: &[&str]) -> bool {
    item.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| names.contains(&n))
}

/// Replaces the entries named like ours with ours, ours first.
fn put_named(items: &mut Vec<Value>, ours: Vec<Value>) {
    let names: Vec<String> = ours
        .iter()
        .filter_map(|o| o.get("name").and_then(Value::as_str).map(String::from))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    items.retain(|item| !has_name(item, &names));
    items.splice(0..0, ours);
}

fn put_labels(
    metadata: &mut Map<String, Value>,
    labels: &Map<String, Value>,
) -> Result<(), RenderError> {
    let slot = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    let Value::Object(existing) = slot else {
        return Err(RenderError::FragmentShape {
            path: "template.metadata.labels".into(),
            expected: "an object",
        });
    };
    existing.retain(|k, _| !is_platform_key(k));
    existing.extend(labels.clone());
    Ok(())
}

/// Renders the full VirtualMachine for `input` (see the module documentation for layers).
pub fn render_vm(input: &RenderInput<'_>) -> Result<Value, RenderError> {
    let template = parse_template(input.template)?;
    let size = parse_size(input.size)?;

    // (1) template, (2) size overrides and shape.
    let mut spec = Map::new();
    if let Some(base) = template.base_vm {
        merge_into(&mut spec, base);
    }
    if let Some(overrides) = size.spec_overrides {
        merge_into(&mut spec, overrides);
    }
    apply_shape(&mut spec, &size)?;

    // (3) the request's disk: only a DataVolume root disk has a size.
    let data_volume_name = format!("{}-{ROOT_DISK}", input.vm_name);
    let disk_gib = input.resources.disk_gib;
    let data_volume_source = match template.image {
        RootImage::Container(_) => None,
        RootImage::Http(url) => Some(json!({"http": {"url": url}})),
        RootImage::Registry(url) => Some(json!({"registry": {"url": url}})),
    };
    if data_volume_source.is_some() && disk_gib < 1 {
        return Err(RenderError::DataVolumeWithoutStorage { disk_gib });
    }

    // (4) final resources.
    apply_resources(&mut spec, input.resources)?;

    // (5) platform-owned fields.
    let labels = vm_labels(&VmLabels {
        system: input.system,
        service: input.service,
        instance_index: input.instance_index,
        ticket_id: input.ticket_id,
        created_by: input.created_by,
    });

    spec.remove("running");
    spec.insert("runStrategy".into(), input.power.run_strategy().into());

    let vmi_metadata = object_at(&mut spec, VMI_METADATA)?;
    put_labels(vmi_metadata, &labels)?;
    match vmi_metadata.get_mut("annotations") {
        Some(Value::Object(annotations)) => annotations.retain(|k, _| !is_platform_key(k)),
        Some(Value::Null) => {
            vmi_metadata.remove("annotations");
        }
        Some(_) => {
            return Err(RenderError::FragmentShape {
                path: "template.metadata.annotations".into(),
                expected: "an object",
            });
        }
        None => {}
    }

    let virtio = json!({"bus": "virtio"});
    let mut disks = vec![json!({"name": ROOT_DISK, "disk": virtio})];
    let root_volume = match template.image {
        RootImage::Container(image) => {
            json!({"name": ROOT_DISK, "containerDisk": {"image": image}})
        }
        RootImage::Http(_) | RootImage::Registry(_) => {
            json!({"name": ROOT_DISK, "dataVolume": {"name": data_volume_name}})
        }
    };
    let mut volumes = vec![root_volume];
    if let Some(user_data) = template.cloud_init {
        disks.push(json!({"name": CLOUD_INIT_DISK, "disk": virtio}));
        volumes.push(json!({"name": CLOUD_INIT_DISK, "cloudInitNoCloud": {"userData": user_data}}));
    }
    // Our names are reserved even when we do not use them (no cloud-init).
    let reserved = [ROOT_DISK, CLOUD_INIT_DISK];
    let devices = object_at(&mut spec, DEVICES)?;
    let existing = array_at(devices, DEVICES, "disks")?;
    existing.retain(|d| !has_name(d, &reserved));
    put_named(existing, disks);
    let vmi_spec = object_at(&mut spec, VMI_SPEC)?;
    let existing = array_at(vmi_spec, VMI_SPEC, "volumes")?;
    existing.retain(|v| !has_name(v, &reserved));
    put_named(existing, volumes);

    // The pod network, unless a fragment chose the networking.
    let vmi_spec = object_at(&mut spec, VMI_SPEC)?;
    let has_networks = vmi_spec.get("networks").is_some_and(|n| !n.is_null());
    let devices = object_at(&mut spec, DEVICES)?;
    let has_interfaces = devices.get("interfaces").is_some_and(|i| !i.is_null());
    if !has_networks && !has_interfaces {
        devices.insert(
            "interfaces".into(),
            json!([{"name": DEFAULT_NETWORK, "masquerade": {}}]),
        );
        object_at(&mut spec, VMI_SPEC)?.insert(
            "networks".into(),
            json!([{"name": DEFAULT_NETWORK, "pod": {}}]),
        );
    }

    // The root disk's DataVolume, named after the VM; a fragment's of that name loses.
    let has_templates = spec
        .get("dataVolumeTemplates")
        .is_some_and(|t| !t.is_null());
    if data_volume_source.is_some() || has_templates {
        let templates = array_at(&mut spec, &[], "dataVolumeTemplates")?;
        templates.retain(|t| {
            t.pointer("/metadata/name").and_then(Value::as_str) != Some(data_volume_name.as_str())
        });
        if let Some(source) = data_volume_source {
            let mut storage =
                json!({"resources": {"requests": {"storage": format!("{disk_gib}Gi")}}});
            if let Some(class) = input.storage_class {
                storage["storageClassName"] = class.into();
            }
            templates.insert(
                0,
                json!({
                    "metadata": {"name": data_volume_name, "labels": labels},
                    "spec": {"source": source, "storage": storage},
                }),
            );
        }
    }

    let mut annotations = Map::new();
    annotations.insert(
        FQDN_ANNOTATION.into(),
        format!("{}.{}.svc.cluster.local", input.vm_name, input.namespace).into(),
    );
    annotations.insert(
        TEMPLATE_VERSION_ANNOTATION.into(),
        template.version.to_string().into(),
    );

    Ok(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": input.vm_name,
            "namespace": input.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests;
