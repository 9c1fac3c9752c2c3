//! OpenAPI v3: an index and one document per group/version, carrying what kubectl looks
//! for before leaving validation to the server: operations tagged with
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceDef};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn schema_id(d: &ResourceDef) -> String {
    let rev: Vec<&str> = d.group.split('.').rev().collect();
    if d.group.is_empty() {
        format!("io.k8s.api.core.{}.{}", d.version, d.kind)
    } else {
        format!("{}.{}.{}", rev.join("."), d.version, d.kind)
    }
}

fn gv_hash(reg: &Registry, group: &str, version: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for d in reg.in_group_version(group, version) {
        d.kind.hash(&mut h);
        d.schema.as_ref().map(|s| s.to_string()).hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, vs) in reg.groups() {
        for v in vs {
            if reg.in_group_version(&g, &v).is_empty() {
                continue;
            }
            let p = gv_path(&g, &v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", gv_hash(reg, &g, &v))}));
        }
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "description": name, "schema": {"type": "string", "uniqueItems": true}})
}

fn op(d: &ResourceDef, action: &str, with_body: bool) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_id(d))});
    let mut o = json!({
        "operationId": format!("{action}{}", d.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": d.group, "version": d.version, "kind": d.kind},
        "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation")],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
    });
    if with_body {
        let content = if action == "patch" {
            json!({
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
            })
        } else {
            json!({"application/json": {"schema": reference}})
        };
        o["requestBody"] = json!({"content": content});
    }
    o
}

pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    );
    for d in defs {
        let base = format!("/{}", gv_path(group, version));
        let coll = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        paths.insert(
            coll.clone(),
            json!({"get": op(&d, "list", false), "post": op(&d, "post", true)}),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({"get": op(&d, "get", false), "put": op(&d, "put", true), "patch": op(&d, "patch", true), "delete": op(&d, "delete", false)}),
        );
        if d.status_subresource {
            paths.insert(format!("{coll}/{{name}}/status"), json!({"get": op(&d, "get", false), "put": op(&d, "put", true), "patch": op(&d, "patch", true)}));
        }
        let mut s = d.schema.as_deref().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if s["properties"].is_object() || d.schema.is_none() {
            s["properties"]["apiVersion"] = json!({"type": "string"});
            s["properties"]["kind"] = json!({"type": "string"});
            s["properties"]["metadata"] = json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"});
        }
        s["x-kubernetes-group-version-kind"] =
            json!([{"group": d.group, "version": d.version, "kind": d.kind}]);
        schemas.insert(schema_id(&d), s);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
