//! The VirtualMachine renderer (DESIGN §5): one pure function from the approval's snapshots
//! to the full object written to a target cluster with server-side apply.
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

enum RootImage<'a> {
    Container(&'a str),
    Http(&'a str),
    Registry(&'a str),
}

struct Template<'a> {
    version: i64,
    image: RootImage<'a>,
    cloud_init: Option<&'a str>,
    base_vm: Option<&'a Map<String, Value>>,
}

struct Gpu<'a> {
    name: &'a str,
    device_name: &'a str,
}

struct Size<'a> {
    cpu_cores: i64,
    dedicated_cpu: bool,
    hugepages: Option<&'a str>,
    gpus: Vec<Gpu<'a>>,
    spec_overrides: Option<&'a Map<String, Value>>,
}

fn snapshot_error(snapshot: &'static str, field: &str, rule: &'static str) -> RenderError {
    RenderError::Snapshot {
        snapshot,
        field: field.to_string(),
        rule,
    }
}

/// A non-empty string, absent/null as `None`.
fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    snapshot: &'static str,
    field: &str,
) -> Result<Option<&'a str>, RenderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(snapshot_error(snapshot, field, "must be a string")),
    }
}

/// An object fragment, absent/null as `None`.
fn optional_fragment<'a>(
    value: Option<&'a Value>,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, RenderError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(RenderError::FragmentNotObject { field }),
    }
}

fn parse_template(snapshot: &Value) -> Result<Template<'_>, RenderError> {
    const S: &str = "template";
    let version = snapshot
        .get("version")
        .and_then(Value::as_i64)
        .ok_or_else(|| snapshot_error(S, "version", "is missing or not an integer"))?;
    let spec = snapshot
        .get("spec")
        .and_then(Value::as_object)
        .ok_or_else(|| snapshot_error(S, "spec", "is missing or not an object"))?;
    let image = spec
        .get("image")
        .and_then(Value::as_object)
        .ok_or_else(|| snapshot_error(S, "spec.image", "is missing or not an object"))?;
    let container = optional_str(image, "containerDisk", S, "spec.image.containerDisk")?
        .filter(|s| !s.is_empty());
    let data_volume = match image.get("dataVolume") {
        None | Some(Value::Null) => None,
        Some(Value::Object(dv)) => Some(dv),
        Some(_) => {
            return Err(snapshot_error(
                S,
                "spec.image.dataVolume",
                "must be an object",
            ));
        }
    };
    let image = match (container, data_volume) {
        (Some(image), None) => RootImage::Container(image),
        (None, Some(dv)) => {
            let http = optional_str(dv, "httpUrl", S, "spec.image.dataVolume.httpUrl")?
                .filter(|s| !s.is_empty());
            let registry = optional_str(dv, "registryUrl", S, "spec.image.dataVolume.registryUrl")?
                .filter(|s| !s.is_empty());
            match (http, registry) {
                (Some(url), None) => RootImage::Http(url),
                (None, Some(url)) => RootImage::Registry(url),
                _ => return Err(RenderError::DataVolumeSource),
            }
        }
        _ => return Err(RenderError::ImageSource),
    };
    Ok(Template {
        version,
        image,
        cloud_init: optional_str(spec, "cloudInit", S, "spec.cloudInit")?,
        base_vm: optional_fragment(spec.get("baseVm"), "template snapshot `spec.baseVm`")?,
    })
}

fn parse_size(snapshot: &Value) -> Result<Size<'_>, RenderError> {
    const S: &str = "instance size";
    let obj = snapshot
        .as_object()
        .ok_or_else(|| snapshot_error(S, "(root)", "must be an object"))?;
    let cpu_cores = obj
        .get("cpuCores")
        .and_then(Value::as_i64)
        .filter(|&c| c >= 1)
        .ok_or_else(|| snapshot_error(S, "cpuCores", "is missing or not an integer >= 1"))?;
    let dedicated_cpu = obj
        .get("dedicatedCpu")
        .and_then(Value::as_bool)
        .ok_or_else(|| snapshot_error(S, "dedicatedCpu", "is missing or not a boolean"))?;
    let hugepages = optional_str(obj, "hugepages", S, "hugepages")?;
    let gpus = match obj.get("gpus") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let field = |key: &str| {
                    g.get(key).and_then(Value::as_str).ok_or_else(|| {
                        snapshot_error(S, &format!("gpus[{i}].{key}"), "is missing or not a string")
                    })
                };
                Ok(Gpu {
                    name: field("name")?,
                    device_name: field("deviceName")?,
                })
            })
            .collect::<Result<_, RenderError>>()?,
        Some(_) => return Err(snapshot_error(S, "gpus", "must be an array")),
    };
    Ok(Size {
        cpu_cores,
        dedicated_cpu,
        hugepages,
        gpus,
        spec_overrides: optional_fragment(
            obj.get("specOverrides"),
            "instance size snapshot `specOverrides`",
        )?,
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
    let mut labels = Map::new();
    for (key, value) in [
        (MANAGED_BY_LABEL, MANAGED_BY_VALUE.to_string()),
        (SYSTEM_LABEL, label_value(input.system)),
        (SERVICE_LABEL, label_value(input.service)),
        (
            INSTANCE_LABEL,
            label_value(&format!("{:02}", input.instance_index)),
        ),
        (TICKET_LABEL, input.ticket_id.to_string()),
        (CREATED_BY_LABEL, label_value(input.created_by)),
    ] {
        labels.insert(key.into(), value.into());
    }

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
mod tests {
    use super::*;

    fn resources() -> FinalResources {
        FinalResources {
            cpu_request_millis: 2000,
            cpu_limit_millis: 2000,
            memory_request_mib: 4096,
            memory_limit_mib: 4096,
            disk_gib: 20,
        }
    }

    fn size(overrides: Value) -> Value {
        json!({
            "name": "medium", "cpuCores": 2, "memoryMiB": 4096, "cpuOvercommit": 1.0,
            "memoryOvercommit": 1.0, "dedicatedCpu": false, "hugepages": null, "gpus": [],
            "specOverrides": overrides,
        })
    }

    fn template(base: Value) -> Value {
        json!({"version": 3, "spec": {
            "image": {"containerDisk": "quay.io/containerdisks/fedora:40"},
            "cloudInit": "#cloud-config\n",
            "baseVm": base,
        }})
    }

    fn render(template: &Value, size: &Value, resources: &FinalResources) -> Value {
        render_with(template, size, resources, PowerState::Running).unwrap()
    }

    fn render_with(
        template: &Value,
        size: &Value,
        resources: &FinalResources,
        power: PowerState,
    ) -> Result<Value, RenderError> {
        render_vm(&RenderInput {
            vm_name: "dev-shop-web-01",
            namespace: "dev",
            system: "shop",
            service: "web",
            instance_index: 1,
            ticket_id: uuid::Uuid::nil(),
            created_by: "alice@example.com",
            template,
            size,
            resources,
            storage_class: None,
            power,
        })
    }

    fn at<'v>(vm: &'v Value, pointer: &str) -> &'v Value {
        vm.pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing in {vm:#}"))
    }

    const DOMAIN_PTR: &str = "/spec/template/spec/domain";

    #[test]
    fn size_overrides_beat_the_template() {
        let t = template(json!({"template": {"spec": {
            "domain": {"machine": {"type": "q35"}, "firmware": {"serial": "a"}},
            "terminationGracePeriodSeconds": 30,
        }}}));
        let s = size(json!({"template": {"spec": {
            "domain": {"machine": {"type": "pc-q35-rhel9"}},
            "terminationGracePeriodSeconds": null,
        }}}));
        let vm = render(&t, &s, &resources());
        assert_eq!(
            at(&vm, &format!("{DOMAIN_PTR}/machine/type")),
            "pc-q35-rhel9"
        );
        // Deep merge keeps what the override does not mention; null removes.
        assert_eq!(at(&vm, &format!("{DOMAIN_PTR}/firmware/serial")), "a");
        assert!(
            vm.pointer("/spec/template/spec/terminationGracePeriodSeconds")
                .is_none()
        );
    }

    #[test]
    fn final_resources_beat_size_overrides() {
        let s = size(json!({"template": {"spec": {"domain": {
            "resources": {"requests": {"cpu": "16", "memory": "64Gi"}, "limits": {"cpu": "32"}},
            "memory": {"guest": "1Gi"},
            "cpu": {"cores": 64, "sockets": 1},
        }}}}));
        let vm = render(&template(Value::Null), &s, &resources());
        let domain = at(&vm, DOMAIN_PTR);
        assert_eq!(
            domain["resources"],
            json!({"requests": {"cpu": "2", "memory": "4096Mi"}, "limits": {"cpu": "2", "memory": "4096Mi"}})
        );
        // Not overcommitted: a fragment's guest size is dropped.
        assert!(domain["memory"].get("guest").is_none());
        // The size's shape beats its own overrides; other CPU fields stay.
        assert_eq!(domain["cpu"], json!({"cores": 2, "sockets": 1}));
    }

    #[test]
    fn platform_fields_beat_everything() {
        let hostile = json!({
            "running": true,
            "runStrategy": "Manual",
            "template": {
                "metadata": {
                    "labels": {
                        "kubevirt-shepherd.io/ticket-id": "forged",
                        "kubevirt-shepherd.io/extra": "x",
                        "team.kubevirt-shepherd.io/owner": "x",
                        "app": "web",
                    },
                    "annotations": {"kubevirt-shepherd.io/fqdn": "evil", "note": "kept"},
                },
                "spec": {
                    "domain": {"devices": {"disks": [
                        {"name": "rootdisk", "disk": {"bus": "sata"}},
                        {"name": "cloudinitdisk", "cdrom": {}},
                        {"name": "data", "disk": {"bus": "virtio"}},
                    ]}},
                    "volumes": [
                        {"name": "rootdisk", "containerDisk": {"image": "evil:latest"}},
                        {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
                    ],
                },
            },
        });
        let s = size(json!({
            "runStrategy": "Always",
            "template": {"spec": {"volumes": [
                {"name": "rootdisk", "containerDisk": {"image": "evil2:latest"}},
                {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
            ]}},
        }));
        let vm = render_with(&template(hostile), &s, &resources(), PowerState::Stopped).unwrap();
        assert_eq!(at(&vm, "/spec/runStrategy"), "Halted");
        assert!(vm.pointer("/spec/running").is_none());
        let labels = at(&vm, "/spec/template/metadata/labels")
            .as_object()
            .unwrap();
        assert_eq!(labels[TICKET_LABEL], uuid::Uuid::nil().to_string());
        assert_eq!(labels["app"], "web");
        assert!(!labels.contains_key("kubevirt-shepherd.io/extra"));
        assert!(!labels.contains_key("team.kubevirt-shepherd.io/owner"));
        assert_eq!(
            at(&vm, "/metadata/labels"),
            &Value::Object({
                let mut ours = labels.clone();
                ours.remove("app");
                ours
            })
        );
        assert_eq!(
            at(&vm, "/spec/template/metadata/annotations"),
            &json!({"note": "kept"})
        );
        assert_eq!(
            at(&vm, "/metadata/annotations/kubevirt-shepherd.io~1fqdn"),
            "dev-shop-web-01.dev.svc.cluster.local"
        );
        assert_eq!(
            at(&vm, &format!("{DOMAIN_PTR}/devices/disks")),
            &json!([
                {"name": "rootdisk", "disk": {"bus": "virtio"}},
                {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                {"name": "data", "disk": {"bus": "virtio"}},
            ])
        );
        assert_eq!(
            at(&vm, "/spec/template/spec/volumes"),
            &json!([
                {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:40"}},
                {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
                {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
            ])
        );
        assert_eq!(at(&vm, "/metadata/name"), "dev-shop-web-01");
        assert_eq!(at(&vm, "/metadata/namespace"), "dev");
    }

    #[test]
    fn labels_are_the_documented_set() {
        let vm = render(&template(Value::Null), &size(json!({})), &resources());
        let created_by = label_value("alice@example.com");
        assert_eq!(
            at(&vm, "/metadata/labels"),
            &json!({
                "kubevirt-shepherd.io/managed-by": "kubevirt-shepherd",
                "kubevirt-shepherd.io/system": "shop",
                "kubevirt-shepherd.io/service": "web",
                "kubevirt-shepherd.io/instance": "01",
                "kubevirt-shepherd.io/ticket-id": "00000000-0000-0000-0000-000000000000",
                "kubevirt-shepherd.io/created-by": created_by,
            })
        );
        assert_eq!(
            at(
                &vm,
                "/metadata/annotations/kubevirt-shepherd.io~1template-version"
            ),
            "3"
        );
        assert_eq!(at(&vm, "/apiVersion"), "kubevirt.io/v1");
        assert_eq!(at(&vm, "/kind"), "VirtualMachine");
    }

    #[test]
    fn power_states_render_run_strategy() {
        let t = template(Value::Null);
        let s = size(json!({}));
        for (power, strategy) in [
            (PowerState::Running, "Always"),
            (PowerState::Stopped, "Halted"),
        ] {
            let vm = render_with(&t, &s, &resources(), power).unwrap();
            assert_eq!(at(&vm, "/spec/runStrategy"), strategy);
        }
    }

    #[test]
    fn overcommitted_memory_sets_the_guest_size() {
        let r = FinalResources {
            cpu_request_millis: 500,
            cpu_limit_millis: 2000,
            memory_request_mib: 2048,
            memory_limit_mib: 4096,
            disk_gib: 20,
        };
        let vm = render(&template(Value::Null), &size(json!({})), &r);
        let domain = at(&vm, DOMAIN_PTR);
        assert_eq!(domain["memory"]["guest"], "4096Mi");
        assert_eq!(domain["resources"]["requests"]["cpu"], "500m");
        assert_eq!(domain["resources"]["limits"]["cpu"], "2");
        assert_eq!(domain["resources"]["requests"]["memory"], "2048Mi");
    }

    #[test]
    fn dedicated_cpu_is_placed_and_only_from_the_size() {
        let mut s = size(json!({}));
        s["dedicatedCpu"] = true.into();
        let vm = render(&template(Value::Null), &s, &resources());
        assert_eq!(
            at(&vm, &format!("{DOMAIN_PTR}/cpu")),
            &json!({"cores": 2, "dedicatedCpuPlacement": true})
        );
        // A fragment cannot ask for what placement did not check.
        let t = template(json!({"template": {"spec": {"domain": {
            "cpu": {"dedicatedCpuPlacement": true},
            "memory": {"hugepages": {"pageSize": "1Gi"}},
            "devices": {"gpus": [{"name": "g", "deviceName": "nvidia.com/x"}]},
        }}}}));
        let vm = render(&t, &size(json!({})), &resources());
        let domain = at(&vm, DOMAIN_PTR);
        assert_eq!(domain["cpu"], json!({"cores": 2}));
        assert_eq!(domain["memory"], json!({}));
        assert!(domain["devices"].get("gpus").is_none());
    }

    #[test]
    fn fragments_keep_their_own_networking() {
        let t = template(json!({"template": {"spec": {
            "domain": {"devices": {"interfaces": [{"name": "br", "bridge": {}}]}},
            "networks": [{"name": "br", "multus": {"networkName": "vlan10"}}],
        }}}));
        let vm = render(&t, &size(json!({})), &resources());
        assert_eq!(
            at(&vm, &format!("{DOMAIN_PTR}/devices/interfaces")),
            &json!([{"name": "br", "bridge": {}}])
        );
        assert_eq!(
            at(&vm, "/spec/template/spec/networks"),
            &json!([{"name": "br", "multus": {"networkName": "vlan10"}}])
        );
        let vm = render(&template(Value::Null), &size(json!({})), &resources());
        assert_eq!(
            at(&vm, "/spec/template/spec/networks"),
            &json!([{"name": "default", "pod": {}}])
        );
    }

    #[test]
    fn data_volume_root_disk() {
        let t = json!({"version": 1, "spec": {"image": {"dataVolume": {"registryUrl": "docker://quay.io/x:1"}}}});
        let vm = render(&t, &size(json!({})), &resources());
        assert_eq!(
            at(&vm, "/spec/template/spec/volumes"),
            &json!([{"name": "rootdisk", "dataVolume": {"name": "dev-shop-web-01-rootdisk"}}])
        );
        assert_eq!(
            at(&vm, "/spec/dataVolumeTemplates/0/spec"),
            &json!({"source": {"registry": {"url": "docker://quay.io/x:1"}},
                    "storage": {"resources": {"requests": {"storage": "20Gi"}}}})
        );
        let mut no_disk = resources();
        no_disk.disk_gib = 0;
        assert_eq!(
            render_with(&t, &size(json!({})), &no_disk, PowerState::Running),
            Err(RenderError::DataVolumeWithoutStorage { disk_gib: 0 })
        );
    }

    #[test]
    fn broken_snapshots_name_the_field() {
        let r = resources();
        let mut s = size(json!({}));
        s.as_object_mut().unwrap().remove("cpuCores");
        let err = render_with(&template(Value::Null), &s, &r, PowerState::Running).unwrap_err();
        assert!(err.to_string().contains("`cpuCores`"), "{err}");
        let err = render_with(
            &template(json!([1])),
            &size(json!({})),
            &r,
            PowerState::Running,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RenderError::FragmentNotObject {
                field: "template snapshot `spec.baseVm`"
            }
        );
        let err = render_with(
            &template(json!({"template": {"spec": "x"}})),
            &size(json!({})),
            &r,
            PowerState::Running,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`spec.template.spec`"), "{err}");
        let both = json!({"version": 1, "spec": {"image": {"containerDisk": "a", "dataVolume": {"httpUrl": "b"}}}});
        assert_eq!(
            render_with(&both, &size(json!({})), &r, PowerState::Running),
            Err(RenderError::ImageSource)
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let t = template(json!({"template": {"spec": {"domain": {"machine": {"type": "q35"}}}}}));
        let a = serde_json::to_string(&render(&t, &size(json!({})), &resources())).unwrap();
        let b = serde_json::to_string(&render(&t, &size(json!({})), &resources())).unwrap();
        assert_eq!(a, b);
    }

    fn assert_valid(value: &str) {
        assert!(
            is_valid_label_value(value),
            "{value:?} ({} chars) is not a label value",
            value.len()
        );
    }

    #[test]
    fn valid_label_values_are_unchanged() {
        for v in ["", "a", "web", "shop-01", "A.b_c-9", &"x".repeat(63)] {
            assert_eq!(label_value(v), v);
        }
    }

    #[test]
    fn label_values_are_sanitised() {
        let email = label_value("alice@example.com");
        assert_valid(&email);
        assert!(email.starts_with("alice-example.com-"), "{email}");
        assert_ne!(email, label_value("alice.example.com"));
        let sa = label_value("system:serviceaccount:apps:ci");
        assert_valid(&sa);
        assert!(sa.starts_with("system-serviceaccount-apps-ci-"), "{sa}");

        let long = "a".repeat(100);
        let cut = label_value(&long);
        assert_valid(&cut);
        assert_eq!(cut.len(), 63);
        assert_ne!(cut, label_value(&"a".repeat(99)));

        for only_invalid in ["@@@", "::", "é", " "] {
            let v = label_value(only_invalid);
            assert_valid(&v);
            assert_eq!(v.len(), 8, "{v}");
        }
        assert_ne!(label_value("@@@"), label_value("::"));

        for edgy in ["-web", "web-", ".web.", "_web_", "--", "-.-"] {
            let v = label_value(edgy);
            assert_valid(&v);
        }
        assert!(label_value("-web").starts_with("web-"));
        // Deterministic.
        assert_eq!(label_value("a b"), label_value("a b"));
    }

    #[test]
    fn selector_and_namespace_labels() {
        assert_eq!(
            managed_selector(),
            "kubevirt-shepherd.io/managed-by=kubevirt-shepherd"
        );
        assert_eq!(
            Value::Object(namespace_labels("prod")),
            json!({"kubevirt-shepherd.io/managed-by": "kubevirt-shepherd", "kubevirt-shepherd.io/environment": "prod"})
        );
    }
}
