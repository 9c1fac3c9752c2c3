//! `meta.k8s.io/v1` `Table` responses, which `kubectl get` asks for: a Name column, the
//! CRD's `additionalPrinterColumns` (or Age), and one row per object.

use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use crate::resources::{PrinterColumn, ResourceDef};

/// `duration.HumanDuration` of the Kubernetes utilities.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        format!("{}y{}d", h / 24 / 365, (h / 24) % 365)
    } else {
        format!("{}y", h / 24 / 365)
    }
}

fn age(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

fn columns(def: &ResourceDef) -> Vec<PrinterColumn> {
    let col = |name: &str, t: &str, path: &str| PrinterColumn {
        name: name.into(),
        type_: t.into(),
        format: String::new(),
        description: String::new(),
        json_path: path.into(),
        priority: 0,
    };
    if !def.printer_columns.is_empty() {
        return def.printer_columns.clone();
    }
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Namespace") => vec![
            col("Status", "string", ".status.phase"),
            col("Age", "date", ".metadata.creationTimestamp"),
        ],
        ("", "Secret") => vec![
            col("Type", "string", ".type"),
            col("Age", "date", ".metadata.creationTimestamp"),
        ],
        _ => vec![col("Age", "date", ".metadata.creationTimestamp")],
    }
}

fn cell(obj: &Value, c: &PrinterColumn) -> Value {
    let path = if c.json_path.starts_with('$') {
        c.json_path.clone()
    } else {
        format!("${}", c.json_path)
    };
    let found: Vec<&Value> = obj.query(&path).unwrap_or_default();
    let Some(v) = found.first() else {
        return Value::Null;
    };
    match (c.type_.as_str(), v) {
        ("date", Value::String(s)) => json!(age(s)),
        ("integer" | "number" | "boolean", v) => (*v).clone(),
        (_, Value::String(s)) => json!(s),
        (_, Value::Null) => Value::Null,
        (_, other) => json!(other.to_string()),
    }
}

fn row_object(obj: &Value, include: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        }
    }
}

pub fn table(def: &ResourceDef, objects: &[Value], list_meta: Value, include: &str) -> Value {
    let cols = columns(def);
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &cols {
        defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            cells.extend(cols.iter().map(|c| cell(o, c)));
            let mut r = json!({"cells": cells});
            let ro = row_object(o, include);
            if !ro.is_null() {
                r["object"] = ro;
            }
            r
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(60 * 30), "30m");
        assert_eq!(human_duration(3600 * 5 + 60 * 7), "5h7m");
        assert_eq!(human_duration(3600 * 30), "30h");
        assert_eq!(human_duration(86400 * 3 + 3600), "3d1h");
    }
}
