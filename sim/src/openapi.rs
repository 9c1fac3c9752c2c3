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
    } else if d.group == "apiextensions.k8s.io" {
        format!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
            d.version, d.kind
        )
    } else if !d.from_crd {
        // Built-ins: io.k8s.api.apps.v1.Deployment, io.k8s.api.networking.v1.NetworkPolicy.
        let short = d.group.split('.').next().unwrap_or_default();
        format!("io.k8s.api.{short}.{}.{}", d.version, d.kind)
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
            // Strategic merge is not offered here: custom resources do not support it
            // (the real server does not list it either), and built-ins have no schema
            // for kubectl to compute one from, so kubectl uses its compiled-in types for
            // them and a JSON merge patch for custom resources, without warnings.
            json!({
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
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
    schemas.extend(meta_schemas());
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
            s["properties"]["metadata"] = json!({"default": {}, "allOf": [{"$ref": format!("#/components/schemas/{META}.ObjectMeta")}]});
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

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn meta_ref(name: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{META}.{name}")}]})
}

/// `ObjectMeta` and the types it refers to, with the real server's field names, types
/// and list/map markers, so clients find `metadata.annotations` and friends.
fn meta_schemas() -> Map<String, Value> {
    let string = || json!({"type": "string", "default": ""});
    let string_map =
        || json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    let mut out = Map::new();
    out.insert(
        format!("{META}.ObjectMeta"),
        json!({
            "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
            "type": "object",
            "properties": {
                "annotations": string_map(),
                "creationTimestamp": meta_ref("Time"),
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "deletionTimestamp": meta_ref("Time"),
                "finalizers": {"type": "array", "items": string(), "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                "generateName": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "labels": string_map(),
                "managedFields": {"type": "array", "items": {"default": {}, "allOf": [{"$ref": format!("#/components/schemas/{META}.ManagedFieldsEntry")}]}, "x-kubernetes-list-type": "atomic"},
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "ownerReferences": {
                    "type": "array",
                    "items": {"default": {}, "allOf": [{"$ref": format!("#/components/schemas/{META}.OwnerReference")}]},
                    "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge",
                },
                "resourceVersion": {"type": "string"},
                "selfLink": {"type": "string"},
                "uid": {"type": "string"},
            },
        }),
    );
    out.insert(
        format!("{META}.OwnerReference"),
        json!({
            "type": "object",
            "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {
                "apiVersion": string(), "kind": string(), "name": string(), "uid": string(),
                "blockOwnerDeletion": {"type": "boolean"}, "controller": {"type": "boolean"},
            },
            "x-kubernetes-map-type": "atomic",
        }),
    );
    out.insert(
        format!("{META}.ManagedFieldsEntry"),
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "fieldsType": {"type": "string"},
                "fieldsV1": meta_ref("FieldsV1"), "manager": {"type": "string"},
                "operation": {"type": "string"}, "subresource": {"type": "string"},
                "time": meta_ref("Time"),
            },
        }),
    );
    out.insert(
        format!("{META}.FieldsV1"),
        json!({"type": "object", "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format."}),
    );
    out.insert(
        format!("{META}.Time"),
        json!({"type": "string", "format": "date-time", "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON."}),
    );
    out
}

/// `/openapi/v2` as client-go asks for it: a protobuf gnostic `openapi_v2.Document`
/// (`swagger` = 1, `info` = 2 with `title` = 1 and `version` = 2, `paths` = 8), with no
/// definitions. Clients read v3 for every group/version the simulator serves; they fall
/// back to v2 only for kinds it does not serve, where an empty document makes them skip
/// client-side validation and report the real problem ("no matches for kind").
pub fn v2_protobuf() -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, string};
    let mut info = vec![];
    string::encode(1, &"Kubernetes".to_string(), &mut info);
    string::encode(2, &"v1.35.0".to_string(), &mut info);
    let mut doc = vec![];
    string::encode(1, &"2.0".to_string(), &mut doc);
    encode_key(2, WireType::LengthDelimited, &mut doc);
    encode_varint(info.len() as u64, &mut doc);
    doc.extend(info);
    encode_key(8, WireType::LengthDelimited, &mut doc);
    encode_varint(0, &mut doc);
    doc
}
