//! Reading the approval's snapshots (template version and instance size) into what the
//! renderer needs, refusing a malformed snapshot with the field and the rule.

use super::RenderError;
use serde_json::{Map, Value};

pub(super) enum RootImage<'a> {
    Container(&'a str),
    Http(&'a str),
    Registry(&'a str),
}

pub(super) struct Template<'a> {
    pub(super) version: i64,
    pub(super) image: RootImage<'a>,
    pub(super) cloud_init: Option<&'a str>,
    pub(super) base_vm: Option<&'a Map<String, Value>>,
}

pub(super) struct Gpu<'a> {
    pub(super) name: &'a str,
    pub(super) device_name: &'a str,
}

pub(super) struct Size<'a> {
    pub(super) cpu_cores: i64,
    pub(super) dedicated_cpu: bool,
    pub(super) hugepages: Option<&'a str>,
    pub(super) gpus: Vec<Gpu<'a>>,
    pub(super) spec_overrides: Option<&'a Map<String, Value>>,
}

pub(super) fn snapshot_error(
    snapshot: &'static str,
    field: &str,
    rule: &'static str,
) -> RenderError {
    RenderError::Snapshot {
        snapshot,
        field: field.to_string(),
        rule,
    }
}

/// A non-empty string, absent/null as `None`.
pub(super) fn optional_str<'a>(
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
pub(super) fn optional_fragment<'a>(
    value: Option<&'a Value>,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, RenderError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(RenderError::FragmentNotObject { field }),
    }
}

pub(super) fn parse_template(snapshot: &Value) -> Result<Template<'_>, RenderError> {
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

pub(super) fn parse_size(snapshot: &Value) -> Result<Size<'_>, RenderError> {
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
