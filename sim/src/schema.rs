//! Structural-schema handling for custom resources, in the order the real API server
//! applies it: unknown-field detection (`fieldValidation=Strict` refuses, otherwise
//! prune), defaulting, OpenAPI validation, then CEL `x-kubernetes-validations`.

use serde_json::{Map, Value};

use crate::error::{FieldError, FieldErrorKind as K};

/// ObjectMeta fields a client may send; anything else under `metadata` is unknown.
const META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

/// Removes fields the schema does not know, returning their paths (for Strict/Warn).
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = vec![];
    if let Some(map) = obj.as_object_mut() {
        for (k, v) in map.iter_mut() {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => prune_meta(v, "metadata", &mut unknown),
                _ => {
                    if let Some(s) = schema["properties"].get(k) {
                        prune_at(s, v, k, &mut unknown);
                    }
                }
            }
        }
        if !preserves(schema) {
            let props = schema["properties"].as_object();
            map.retain(|k, _| {
                let keep = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    || props.is_some_and(|p| p.contains_key(k));
                if !keep {
                    unknown.push(k.clone());
                }
                keep
            });
        }
    }
    unknown.sort();
    unknown
}

fn prune_meta(meta: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if let Some(m) = meta.as_object_mut() {
        m.retain(|k, _| {
            let keep = META_FIELDS.contains(&k.as_str());
            if !keep {
                unknown.push(join(path, k));
            }
            keep
        });
    }
}

fn prune_at(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let embedded = schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
            if let Some(props) = schema["properties"].as_object() {
                for (k, child) in map.iter_mut() {
                    if let Some(s) = props.get(k) {
                        prune_at(s, child, &join(path, k), unknown);
                    } else if embedded && k == "metadata" {
                        prune_meta(child, &join(path, k), unknown);
                    }
                }
                if !preserves(schema) {
                    map.retain(|k, _| {
                        let keep = props.contains_key(k)
                            || (embedded
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                        if !keep {
                            unknown.push(join(path, k));
                        }
                        keep
                    });
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map.iter_mut() {
                    prune_at(ap, child, &join(path, k), unknown);
                }
            } else if !preserves(schema)
                && schema["additionalProperties"] != Value::Bool(true)
                && schema["type"] == "object"
            {
                for k in map.keys() {
                    if !(embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")) {
                        unknown.push(join(path, k));
                    }
                }
                map.retain(|k, _| {
                    embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                });
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How the server prints a bad value in an error.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn type_ok(want: &str, v: &Value, schema: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return matches!(type_name(v), "integer" | "string");
    }
    match want {
        "" => true,
        "number" => v.is_number(),
        "integer" => type_name(v) == "integer",
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

/// OpenAPI v3 structural validation (types, required, enum, pattern, lengths, bounds,
/// item counts, list-type uniqueness) of the whole object.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    if let Some(map) = obj.as_object() {
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(r) {
                errs.push(FieldError::new(K::Required, r, None, ""));
            }
        }
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = schema["properties"].get(k) {
                validate_at(s, v, k, &mut errs);
            }
        }
    }
    errs
}

fn validate_at(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let want = schema["type"].as_str().unwrap_or_default();
    if v.is_null() {
        if schema["nullable"].as_bool() != Some(true) {
            errs.push(FieldError::new(
                K::Invalid,
                path,
                Some("\"null\"".into()),
                format!("{path} in body must be of type {want}: \"null\""),
            ));
        }
        return;
    }
    if !type_ok(want, v, schema) {
        let got = type_name(v);
        errs.push(FieldError::new(
            K::Invalid,
            path,
            Some(format!("{got:?}")),
            format!("{path} in body must be of type {want}: {got:?}"),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        errs.push(FieldError::new(
            K::NotSupported,
            path,
            Some(show(v)),
            format!("supported values: {}", list.join(", ")),
        ));
    }
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && len > max
            {
                errs.push(FieldError::new(
                    K::TooLong,
                    path,
                    None,
                    format!("may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && len < min
            {
                errs.push(FieldError::new(
                    K::Invalid,
                    path,
                    Some(show(v)),
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema["pattern"].as_str() {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => errs.push(FieldError::new(
                        K::Invalid,
                        path,
                        Some(show(v)),
                        format!("{path} in body should match '{p}'"),
                    )),
                    _ => {}
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(max) = schema["maximum"].as_f64() {
                let excl = schema["exclusiveMaximum"].as_bool() == Some(true);
                if x > max || (excl && x == max) {
                    let op = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    errs.push(FieldError::new(
                        K::Invalid,
                        path,
                        Some(v.to_string()),
                        format!("{path} in body should be {op} {}", schema["maximum"]),
                    ));
                }
            }
            if let Some(min) = schema["minimum"].as_f64() {
                let excl = schema["exclusiveMinimum"].as_bool() == Some(true);
                if x < min || (excl && x == min) {
                    let op = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    errs.push(FieldError::new(
                        K::Invalid,
                        path,
                        Some(v.to_string()),
                        format!("{path} in body should be {op} {}", schema["minimum"]),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                errs.push(FieldError::new(
                    K::TooMany,
                    path,
                    Some(items.len().to_string()),
                    format!("must have at most {max} items"),
                ));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                errs.push(FieldError::new(
                    K::Invalid,
                    path,
                    Some(items.len().to_string()),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            match schema["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            errs.push(FieldError::new(
                                K::Duplicate,
                                format!("{path}[{i}]"),
                                Some(show(item)),
                                "",
                            ));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let key_of =
                        |it: &Value| keys.iter().map(|k| it[*k].clone()).collect::<Vec<_>>();
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|o| key_of(o) == key_of(item)) {
                            let shown: Map<String, Value> = keys
                                .iter()
                                .map(|k| (k.to_string(), item[*k].clone()))
                                .collect();
                            errs.push(FieldError::new(
                                K::Duplicate,
                                format!("{path}[{i}]"),
                                Some(Value::Object(shown).to_string()),
                                "",
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(s, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(map) => {
            for r in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(r) {
                    errs.push(FieldError::new(K::Required, join(path, r), None, ""));
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64()
                && map.len() as u64 > max
            {
                errs.push(FieldError::new(
                    K::TooMany,
                    path,
                    Some(map.len().to_string()),
                    format!("must have at most {max} items"),
                ));
            }
            if let Some(props) = schema["properties"].as_object() {
                for (k, child) in map {
                    if let Some(s) = props.get(k) {
                        validate_at(s, child, &join(path, k), errs);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map {
                    validate_at(ap, child, &join(path, k), errs);
                }
            }
        }
        _ => {}
    }
}

/// Applies schema defaults (only where a field is absent), as the server does before
/// validation. Delegates to kube-cel's implementation of the same rules.
pub fn apply_defaults(schema: &Value, obj: &Value) -> Value {
    kube_cel::apply_defaults(schema, obj)
}

/// Evaluates `x-kubernetes-validations` (including transition rules against `old`),
/// turning failures into field errors worded like the real server's.
pub fn validate_cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Err(errs) = kube_cel::validate(schema, obj, old) else {
        return vec![];
    };
    errs.into_vec()
        .into_iter()
        .map(|e| {
            let path = if e.field_path.is_empty() {
                "<nil>".to_string()
            } else {
                e.field_path.clone()
            };
            let target = lookup(obj, &e.field_path);
            let shown = format!(
                "{:?}",
                schema_type_at(schema, &e.field_path)
                    .unwrap_or_else(|| type_name(target).to_string())
            );
            match e.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::new(K::Forbidden, path, None, e.message),
                Some("FieldValueRequired") => FieldError::new(K::Required, path, None, e.message),
                Some("FieldValueDuplicate") => {
                    FieldError::new(K::Duplicate, path, Some(shown), e.message)
                }
                _ => FieldError::new(K::Invalid, path, Some(shown), e.message),
            }
        })
        .collect()
}

fn lookup<'a>(obj: &'a Value, path: &str) -> &'a Value {
    let mut cur = obj;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let name = seg.split('[').next().unwrap_or(seg);
        cur = &cur[name];
    }
    cur
}

fn schema_type_at(schema: &Value, path: &str) -> Option<String> {
    let mut cur = schema;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let name = seg.split('[').next().unwrap_or(seg);
        cur = cur["properties"]
            .get(name)
            .or_else(|| cur.get("additionalProperties"))?;
        if seg.contains('[') {
            cur = cur.get("items")?;
        }
    }
    cur["type"].as_str().map(str::to_string)
}
