//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Field sets are kept as sets of paths whose elements use the `fieldsV1` spelling
//! (`f:name`, `k:{"name":"x"}`, `v:"x"`, `.`), so they convert to and from the stored
//! form directly. Lists are atomic unless the schema says `x-kubernetes-list-type: map`
//! (merged by key) or `set` (merged by value), like the real server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::error::ApiError;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// What a list's schema says about merging.
enum ListType {
    Atomic,
    Map(Vec<String>),
    Set,
}

fn list_type(schema: Option<&Value>, path: &[String]) -> ListType {
    // Built-ins carry no schema here; these are the list fields they merge by key.
    if path.len() == 2 && path[0] == "f:metadata" {
        match path[1].as_str() {
            "f:ownerReferences" => return ListType::Map(vec!["uid".into()]),
            "f:finalizers" => return ListType::Set,
            _ => {}
        }
    }
    let Some(s) = schema else {
        return ListType::Atomic;
    };
    match s["x-kubernetes-list-type"].as_str() {
        Some("map") => ListType::Map(
            s["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

fn child<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s["properties"]
        .get(key)
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let m: Map<String, Value> = keys.iter().map(|k| (k.clone(), item[k].clone())).collect();
    format!("k:{}", Value::Object(m))
}

/// The leaf paths of an object as the server tracks ownership. Identity and
/// server-maintained fields are excluded; `status` is included only when `status_only`.
pub fn fields_of(obj: &Value, schema: Option<&Value>, status_only: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" if !status_only => {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = v.get(mk) {
                        let p = vec!["f:metadata".to_string(), format!("f:{mk}")];
                        walk(mv, None, p, &mut out);
                    }
                }
            }
            "status" if status_only => walk(v, child(schema, k), vec![format!("f:{k}")], &mut out),
            "status" | "metadata" => {}
            _ if !status_only => walk(v, child(schema, k), vec![format!("f:{k}")], &mut out),
            _ => {}
        }
    }
    out
}

fn walk(v: &Value, schema: Option<&Value>, path: Path, out: &mut FieldSet) {
    match v {
        Value::Object(m)
            if !m.is_empty() && schema.is_none_or(|s| s["x-kubernetes-map-type"] != "atomic") =>
        {
            for (k, cv) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(cv, child(schema, k), p, out);
            }
        }
        Value::Array(items) => match list_type(schema, &path) {
            ListType::Map(keys) if !keys.is_empty() => {
                let item_schema = schema.and_then(|s| s.get("items"));
                for it in items {
                    let mut p = path.clone();
                    p.push(item_key(it, &keys));
                    let mut dot = p.clone();
                    dot.push(".".into());
                    out.insert(dot);
                    if let Some(m) = it.as_object() {
                        for (k, cv) in m {
                            let mut cp = p.clone();
                            cp.push(format!("f:{k}"));
                            walk(cv, child(item_schema, k), cp, out);
                        }
                    }
                }
            }
            ListType::Set => {
                for it in items {
                    let mut p = path.clone();
                    p.push(format!("v:{it}"));
                    out.insert(p);
                }
            }
            _ => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path, if present.
pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            continue;
        }
        cur = step(cur, el)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, el: &str) -> Option<&'a Value> {
    if let Some(f) = el.strip_prefix("f:") {
        return cur.get(f);
    }
    let items = cur.as_array()?;
    if let Some(k) = el.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        return items
            .iter()
            .find(|it| want.iter().all(|(wk, wv)| &it[wk] == wv));
    }
    if let Some(v) = el.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return items.iter().find(|it| **it == want);
    }
    None
}

/// Removes the field (or list item) at `path`.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|e| *e != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let idx = step(cur, el).and_then(|found| {
                cur.as_array()
                    .and_then(|a| a.iter().position(|x| std::ptr::eq(x, found)))
            });
            match idx {
                Some(i) => cur.get_mut(i),
                None => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(found) = step(cur, last) {
        let found = found.clone();
        if let Some(a) = cur.as_array_mut() {
            a.retain(|x| *x != found);
        }
    }
}

/// Merges an applied configuration into the live object (maps recursively, keyed lists by
/// key, sets by value, everything else replaced).
pub fn merge(live: &mut Value, applied: &Value, schema: Option<&Value>, path: &Path) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                let cs = if path.is_empty() && k == "metadata" {
                    None
                } else {
                    child(schema, k)
                };
                match l.get_mut(k) {
                    Some(lv) => merge(lv, av, cs, &p),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(schema, path) {
            ListType::Map(keys) if !keys.is_empty() => {
                let item_schema = schema.and_then(|s| s.get("items"));
                for ai in a {
                    let k = item_key(ai, &keys);
                    match l.iter_mut().find(|li| item_key(li, &keys) == k) {
                        Some(li) => merge(li, ai, item_schema, &vec![]),
                        None => l.push(ai.clone()),
                    }
                }
            }
            ListType::Set => {
                for ai in a {
                    if !l.contains(ai) {
                        l.push(ai.clone());
                    }
                }
            }
            _ => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

/// Converts a path set to the `fieldsV1` tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut cur = &mut root;
        for el in p {
            let e = cur.entry(el.clone()).or_insert_with(|| json!({}));
            cur = e.as_object_mut().expect("fieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// Converts a `fieldsV1` tree back to leaf paths.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, path: &mut Path, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, cv) in m {
                    path.push(k.clone());
                    rec(cv, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut vec![], &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: FieldSet,
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or_default().into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if arr.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(arr);
    }
}

/// Path in the spelling of conflict messages: `.spec.replicas`, `.spec.ports[name="a"]`.
pub fn display_path(p: &Path) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let m: BTreeMap<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Parameters of one apply.
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
    pub schema: Option<&'a Value>,
}

/// Server-side apply of `applied` onto `live` (an empty object for a create). Returns the
/// merged object with updated `managedFields`, or a 409 listing the conflicts.
pub fn apply(
    live: &Value,
    applied: &Value,
    req: &ApplyRequest<'_>,
    group: &str,
    plural: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let status_only = req.subresource == "status";
    let new_set = fields_of(applied, req.schema, status_only);
    let mut entries = read_entries(live);
    let mut conflicts: Vec<(String, String, Path)> = vec![];
    for e in entries.iter_mut() {
        if e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource {
            continue;
        }
        let owned: Vec<Path> = e.fields.intersection(&new_set).cloned().collect();
        for p in owned {
            if p.last().is_some_and(|l| l == ".") {
                continue;
            }
            if get_path(live, &p) != get_path(applied, &p) {
                if req.force {
                    e.fields.remove(&p);
                } else {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), p));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(&conflicts, group, plural, name));
    }
    let mut merged = live.clone();
    let old_set = entries
        .iter()
        .find(|e| {
            e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // Fields this manager applied before and no longer applies are removed, unless
    // another manager also owns them.
    for p in old_set.difference(&new_set) {
        let shared = entries.iter().any(|e| {
            !(e.manager == req.manager
                && e.operation == "Apply"
                && e.subresource == req.subresource)
                && e.fields.contains(p)
        });
        if !shared {
            remove_path(&mut merged, p);
        }
    }
    let mut body = applied.clone();
    if let Some(m) = body.as_object_mut() {
        if status_only {
            m.retain(|k, _| k == "status");
        } else {
            m.remove("status");
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "labels"
                        | "annotations"
                        | "finalizers"
                        | "ownerReferences"
                        | "name"
                        | "namespace"
                )
            });
        }
    }
    merge(&mut merged, &body, req.schema, &vec![]);
    // Shared ownership: other managers keep fields whose value did not change.
    entries.retain(|e| {
        !(e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource)
    });
    entries.push(Entry {
        manager: req.manager.into(),
        operation: "Apply".into(),
        api_version: req.api_version.into(),
        subresource: req.subresource.into(),
        time: req.now.into(),
        fields: new_set,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

fn conflict_error(
    conflicts: &[(String, String, Path)],
    group: &str,
    plural: &str,
    name: &str,
) -> ApiError {
    let n = conflicts.len();
    let message = if n == 1 {
        let (m, v, p) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {}",
            display_path(p)
        )
    } else {
        let mut by_mgr: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (m, v, p) in conflicts {
            by_mgr
                .entry((m.clone(), v.clone()))
                .or_default()
                .push(display_path(p));
        }
        let parts: Vec<String> = by_mgr
            .iter()
            .map(|((m, v), ps)| format!("conflicts with \"{m}\" using {v}:\n- {}", ps.join("\n- ")))
            .collect();
        format!("Apply failed with {n} conflicts: {}", parts.join("\n"))
    };
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(json!({
        "name": name, "group": group, "kind": plural,
        "causes": conflicts.iter().map(|(m, v, p)| json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with \"{m}\" using {v}"),
            "field": display_path(p),
        })).collect::<Vec<_>>(),
    }));
    e
}

/// Records a non-apply write: the manager takes the fields it changed, and every other
/// manager loses them. Removed fields leave every set.
pub fn record_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
    schema: Option<&Value>,
) {
    let status_only = subresource == "status";
    let before = fields_of(old, schema, status_only);
    let after = fields_of(new, schema, status_only);
    let changed: FieldSet = after
        .iter()
        .filter(|p| get_path(old, p) != get_path(new, p) || !before.contains(*p))
        .cloned()
        .collect();
    let removed: FieldSet = before.difference(&after).cloned().collect();
    let mut entries = read_entries(old);
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now.into();
            e.api_version = api_version.into();
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: api_version.into(),
            subresource: subresource.into(),
            time: now.into(),
            fields: changed,
        }),
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_and_keyed_lists_merge() {
        let schema = json!({"properties": {"spec": {"properties": {"ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"properties": {"name": {"type": "string"}, "port": {"type": "integer"}}},
        }}}}});
        let obj = json!({"spec": {"ports": [{"name": "a", "port": 1}], "x": {"y": 1}}, "metadata": {"labels": {"l": "v"}}});
        let set = fields_of(&obj, Some(&schema), false);
        assert!(set.contains(&vec![
            "f:spec".to_string(),
            "f:ports".into(),
            "k:{\"name\":\"a\"}".into(),
            "f:port".into()
        ]));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let mut live = obj.clone();
        merge(
            &mut live,
            &json!({"spec": {"ports": [{"name": "b", "port": 2}]}}),
            Some(&schema),
            &vec![],
        );
        assert_eq!(
            live["spec"]["ports"].as_array().unwrap().len(),
            2,
            "keyed list merged, not replaced"
        );
        assert_eq!(
            display_path(&vec![
                "f:spec".into(),
                "f:ports".into(),
                "k:{\"name\":\"a\"}".into()
            ]),
            ".spec.ports[name=\"a\"]"
        );
    }
}
