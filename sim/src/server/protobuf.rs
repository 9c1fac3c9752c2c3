//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as client-go's typed
//! clients send them (kubectl create namespace/secret/configmap, Helm's release Secrets).
//!
//! The wire envelope is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` whose
//! `raw` is the kind's own message. Each supported kind is decoded with the `k8s-pb`
//! (prost) types and turned into the JSON the real server would produce from the same Go
//! object: JSON field names, `omitempty` for unset or zero values, base64 for `bytes`,
//! RFC 3339 for times. Kinds without a conversion here are refused with 415 naming them.

use base64::Engine;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The magic prefix of every Kubernetes protobuf payload.
pub const MAGIC: &[u8] = b"k8s\0";

/// Kinds whose protobuf bodies the simulator decodes, as (apiVersion, kind); `*` matches
/// any apiVersion (`DeleteOptions` comes labelled with the resource's group/version).
pub const SUPPORTED: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("*", "DeleteOptions"),
    ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
];

/// Decodes a protobuf request body into the JSON object the server stores.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request(
            "the body of the request was in an unknown format: protobuf body without the k8s magic prefix",
        )
    })?;
    let unknown = Unknown::decode(rest)
        .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf envelope: {e}")))?;
    let tm = unknown.type_meta.unwrap_or_default();
    let api_version = tm.api_version.unwrap_or_default();
    let kind = tm.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let bad = |e: prost::DecodeError| {
        ApiError::bad_request(format!(
            "unable to decode protobuf {api_version}, Kind={kind}: {e}"
        ))
    };
    let mut out = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(core::Namespace::decode(&*raw).map_err(bad)?),
        ("v1", "Secret") => secret(core::Secret::decode(&*raw).map_err(bad)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(&*raw).map_err(bad)?),
        ("v1", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(&*raw).map_err(bad)?)
        }
        (_, "DeleteOptions") => delete_options(meta::DeleteOptions::decode(&*raw).map_err(bad)?),
        ("authentication.k8s.io/v1", "TokenReview") => {
            let t = authn::TokenReview::decode(&*raw).map_err(bad)?;
            let spec = t.spec.map(|s| {
                Obj::default()
                    .str("token", s.token)
                    .strings("audiences", s.audiences)
                    .done()
            });
            with_spec(t.metadata, spec)
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            let t = authn::TokenRequest::decode(&*raw).map_err(bad)?;
            let spec = t.spec.map(|s| {
                let bound = s.bound_object_ref.map(|b| {
                    Obj::default()
                        .str("kind", b.kind)
                        .str("apiVersion", b.api_version)
                        .str("name", b.name)
                        .str("uid", b.u_id)
                        .done()
                });
                // `audiences` has no omitempty in Go.
                let mut o = Obj::default()
                    .opt("expirationSeconds", s.expiration_seconds)
                    .val("boundObjectRef", bound.unwrap_or(Value::Null));
                o.0.insert("audiences".into(), json!(s.audiences));
                o.done()
            });
            with_spec(t.metadata, spec)
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            let r = authz::SelfSubjectAccessReview::decode(&*raw).map_err(bad)?;
            let spec = r.spec.map(|s| {
                access_attributes(
                    Obj::default(),
                    s.resource_attributes,
                    s.non_resource_attributes,
                )
                .done()
            });
            with_spec(r.metadata, spec)
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            let r = authz::SubjectAccessReview::decode(&*raw).map_err(bad)?;
            with_spec(r.metadata, r.spec.map(access_review_spec))
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            let r = authz::LocalSubjectAccessReview::decode(&*raw).map_err(bad)?;
            with_spec(r.metadata, r.spec.map(access_review_spec))
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            let r = rbac::Role::decode(&*raw).map_err(bad)?;
            extend(top(r.metadata), json!({"rules": policy_rules(r.rules)}))
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            let r = rbac::ClusterRole::decode(&*raw).map_err(bad)?;
            let agg = r.aggregation_rule.map(|a| {
                Obj::default()
                    .val(
                        "clusterRoleSelectors",
                        Value::Array(
                            a.cluster_role_selectors
                                .into_iter()
                                .map(label_selector)
                                .collect(),
                        ),
                    )
                    .done()
            });
            extend(
                top(r.metadata),
                Obj::default()
                    .val("rules", json!(policy_rules(r.rules)))
                    .val("aggregationRule", agg.unwrap_or(Value::Null))
                    .done(),
            )
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            let b = rbac::RoleBinding::decode(&*raw).map_err(bad)?;
            binding(b.metadata, b.subjects, b.role_ref)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            let b = rbac::ClusterRoleBinding::decode(&*raw).map_err(bad)?;
            binding(b.metadata, b.subjects, b.role_ref)
        }
        _ => {
            return Err(ApiError::unsupported_media(format!(
                "the simulator cannot decode protobuf bodies of {api_version}, Kind={kind} (it decodes {}); send application/json",
                SUPPORTED
                    .iter()
                    .map(|(_, k)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    if kind != "DeleteOptions" {
        out.insert("apiVersion".into(), json!(api_version));
        out.insert("kind".into(), json!(kind));
    }
    Ok(Value::Object(out))
}

/// Builds a JSON object the way Go's `encoding/json` writes a struct with `omitempty`.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    /// A string field: omitted when unset or empty.
    fn str(mut self, k: &str, v: Option<String>) -> Self {
        if let Some(s) = v.filter(|s| !s.is_empty()) {
            self.0.insert(k.into(), json!(s));
        }
        self
    }

    /// A pointer field (`*bool`, `*int64`): kept whenever it was sent.
    fn opt<T: Into<Value>>(mut self, k: &str, v: Option<T>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v.into());
        }
        self
    }

    /// A non-pointer integer with `omitempty`.
    fn int(mut self, k: &str, v: Option<i64>) -> Self {
        if let Some(v) = v.filter(|v| *v != 0) {
            self.0.insert(k.into(), json!(v));
        }
        self
    }

    /// Any value, omitted when it is null, an empty object or an empty list.
    fn val(mut self, k: &str, v: Value) -> Self {
        let empty = match &v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            self.0.insert(k.into(), v);
        }
        self
    }

    fn strings(self, k: &str, v: Vec<String>) -> Self {
        self.val(k, json!(v))
    }

    fn string_map(self, k: &str, m: std::collections::BTreeMap<String, String>) -> Self {
        self.val(k, json!(m))
    }

    fn bytes_map(self, k: &str, m: std::collections::BTreeMap<String, Vec<u8>>) -> Self {
        let m: Map<String, Value> = m.into_iter().map(|(k, v)| (k, json!(b64(&v)))).collect();
        self.val(k, Value::Object(m))
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `metav1.Time` as RFC 3339 in UTC with second precision; the zero time is unset.
fn time(t: Option<meta::Time>) -> Value {
    let Some(t) = t else { return Value::Null };
    let (s, n) = (t.seconds.unwrap_or(0), t.nanos.unwrap_or(0));
    if s == 0 && n == 0 {
        return Value::Null;
    }
    chrono::DateTime::from_timestamp(s, 0)
        .map(|d| json!(d.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

fn object_meta(m: Option<meta::ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    Obj::default()
        .str("name", m.name)
        .str("generateName", m.generate_name)
        .str("namespace", m.namespace)
        .str("selfLink", m.self_link)
        .str("uid", m.uid)
        .str("resourceVersion", m.resource_version)
        .int("generation", m.generation)
        .val("creationTimestamp", time(m.creation_timestamp))
        .val("deletionTimestamp", time(m.deletion_timestamp))
        .opt(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds,
        )
        .string_map("labels", m.labels)
        .string_map("annotations", m.annotations)
        .val(
            "ownerReferences",
            Value::Array(m.owner_references.into_iter().map(owner_ref).collect()),
        )
        .strings("finalizers", m.finalizers)
        .val(
            "managedFields",
            Value::Array(m.managed_fields.into_iter().map(managed_fields).collect()),
        )
        .done()
}

fn owner_ref(o: meta::OwnerReference) -> Value {
    Obj::default()
        .str("apiVersion", o.api_version)
        .str("kind", o.kind)
        .str("name", o.name)
        .str("uid", o.uid)
        .opt("controller", o.controller)
        .opt("blockOwnerDeletion", o.block_owner_deletion)
        .done()
}

fn managed_fields(e: meta::ManagedFieldsEntry) -> Value {
    let fields = e
        .fields_v1
        .and_then(|f| f.raw)
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .unwrap_or(Value::Null);
    Obj::default()
        .str("manager", e.manager)
        .str("operation", e.operation)
        .str("apiVersion", e.api_version)
        .val("time", time(e.time))
        .str("fieldsType", e.fields_type)
        .val("fieldsV1", fields)
        .str("subresource", e.subresource)
        .done()
}

/// The top-level map every kind starts from, with `metadata` always present.
fn top(m: Option<meta::ObjectMeta>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("metadata".into(), object_meta(m));
    out
}

fn extend(mut base: Map<String, Value>, rest: Value) -> Map<String, Value> {
    if let Value::Object(m) = rest {
        base.extend(m);
    }
    base
}

fn namespace(n: core::Namespace) -> Map<String, Value> {
    let spec = n
        .spec
        .map(|s| Obj::default().strings("finalizers", s.finalizers).done())
        .unwrap_or(Value::Null);
    let status = n
        .status
        .map(|s| {
            let conds = s
                .conditions
                .into_iter()
                .map(|c| {
                    Obj::default()
                        .str("type", c.r#type)
                        .str("status", c.status)
                        .val("lastTransitionTime", time(c.last_transition_time))
                        .str("reason", c.reason)
                        .str("message", c.message)
                        .done()
                })
                .collect();
            Obj::default()
                .str("phase", s.phase)
                .val("conditions", Value::Array(conds))
                .done()
        })
        .unwrap_or(Value::Null);
    extend(
        top(n.metadata),
        Obj::default()
            .val("spec", spec)
            .val("status", status)
            .done(),
    )
}

fn secret(s: core::Secret) -> Map<String, Value> {
    extend(
        top(s.metadata),
        Obj::default()
            .opt("immutable", s.immutable)
            .bytes_map("data", s.data)
            .string_map("stringData", s.string_data)
            .str("type", s.r#type)
            .done(),
    )
}

fn config_map(c: core::ConfigMap) -> Map<String, Value> {
    extend(
        top(c.metadata),
        Obj::default()
            .opt("immutable", c.immutable)
            .string_map("data", c.data)
            .bytes_map("binaryData", c.binary_data)
            .done(),
    )
}

fn service_account(sa: core::ServiceAccount) -> Map<String, Value> {
    let secrets = sa
        .secrets
        .into_iter()
        .map(|r| {
            Obj::default()
                .str("kind", r.kind)
                .str("namespace", r.namespace)
                .str("name", r.name)
                .str("uid", r.uid)
                .str("apiVersion", r.api_version)
                .str("resourceVersion", r.resource_version)
                .str("fieldPath", r.field_path)
                .done()
        })
        .collect();
    let pull = sa
        .image_pull_secrets
        .into_iter()
        .map(|r| Obj::default().str("name", r.name).done())
        .collect();
    extend(
        top(sa.metadata),
        Obj::default()
            .val("secrets", Value::Array(secrets))
            .val("imagePullSecrets", Value::Array(pull))
            .opt(
                "automountServiceAccountToken",
                sa.automount_service_account_token,
            )
            .done(),
    )
}

fn delete_options(d: meta::DeleteOptions) -> Map<String, Value> {
    let pre = d
        .preconditions
        .map(|p| {
            Obj::default()
                .opt("uid", p.uid)
                .opt("resourceVersion", p.resource_version)
                .done()
        })
        .unwrap_or(Value::Null);
    let Value::Object(m) = Obj::default()
        .opt("gracePeriodSeconds", d.grace_period_seconds)
        .val("preconditions", pre)
        .opt("orphanDependents", d.orphan_dependents)
        .str("propagationPolicy", d.propagation_policy)
        .strings("dryRun", d.dry_run)
        .done()
    else {
        unreachable!("Obj builds an object")
    };
    m
}

/// An object with metadata and an optional spec; status (a request's answer) is dropped.
fn with_spec(m: Option<meta::ObjectMeta>, spec: Option<Value>) -> Map<String, Value> {
    extend(
        top(m),
        Obj::default()
            .val("spec", spec.unwrap_or(Value::Null))
            .done(),
    )
}

fn selector_requirements(reqs: Vec<meta::LabelSelectorRequirement>) -> Value {
    Value::Array(
        reqs.into_iter()
            .map(|r| {
                Obj::default()
                    .str("key", r.key)
                    .str("operator", r.operator)
                    .strings("values", r.values)
                    .done()
            })
            .collect(),
    )
}

fn label_selector(s: meta::LabelSelector) -> Value {
    Obj::default()
        .string_map("matchLabels", s.match_labels)
        .val(
            "matchExpressions",
            selector_requirements(s.match_expressions),
        )
        .done()
}

fn access_attributes(
    o: Obj,
    res: Option<authz::ResourceAttributes>,
    non: Option<authz::NonResourceAttributes>,
) -> Obj {
    let res = res.map(|r| {
        let fields = r.field_selector.map(|f| {
            let reqs = f
                .requirements
                .into_iter()
                .map(|r| {
                    Obj::default()
                        .str("key", r.key)
                        .str("operator", r.operator)
                        .strings("values", r.values)
                        .done()
                })
                .collect();
            Obj::default()
                .str("rawSelector", f.raw_selector)
                .val("requirements", Value::Array(reqs))
                .done()
        });
        let labels = r.label_selector.map(|l| {
            Obj::default()
                .str("rawSelector", l.raw_selector)
                .val("requirements", selector_requirements(l.requirements))
                .done()
        });
        Obj::default()
            .str("namespace", r.namespace)
            .str("verb", r.verb)
            .str("group", r.group)
            .str("version", r.version)
            .str("resource", r.resource)
            .str("subresource", r.subresource)
            .str("name", r.name)
            .val("fieldSelector", fields.unwrap_or(Value::Null))
            .val("labelSelector", labels.unwrap_or(Value::Null))
            .done()
    });
    let non = non.map(|n| {
        Obj::default()
            .str("path", n.path)
            .str("verb", n.verb)
            .done()
    });
    o.val("resourceAttributes", res.unwrap_or(Value::Null))
        .val("nonResourceAttributes", non.unwrap_or(Value::Null))
}

fn access_review_spec(s: authz::SubjectAccessReviewSpec) -> Value {
    let extra: Map<String, Value> = s
        .extra
        .into_iter()
        .map(|(k, v)| (k, json!(v.items)))
        .collect();
    access_attributes(
        Obj::default(),
        s.resource_attributes,
        s.non_resource_attributes,
    )
    .str("user", s.user)
    .strings("groups", s.groups)
    .val("extra", Value::Object(extra))
    .str("uid", s.uid)
    .done()
}

/// Policy rules; `verbs` has no `omitempty` in Go, so it is always written.
fn policy_rules(rules: Vec<rbac::PolicyRule>) -> Vec<Value> {
    rules
        .into_iter()
        .map(|r| {
            let mut o = Obj::default()
                .strings("apiGroups", r.api_groups)
                .strings("resources", r.resources)
                .strings("resourceNames", r.resource_names)
                .strings("nonResourceURLs", r.non_resource_ur_ls);
            o.0.insert("verbs".into(), json!(r.verbs));
            o.done()
        })
        .collect()
}

/// Role and ClusterRole bindings; `roleRef`'s fields have no `omitempty`.
fn binding(
    m: Option<meta::ObjectMeta>,
    subjects: Vec<rbac::Subject>,
    role_ref: Option<rbac::RoleRef>,
) -> Map<String, Value> {
    let subjects = subjects
        .into_iter()
        .map(|s| {
            let mut o = Obj::default()
                .str("kind", s.kind)
                .str("apiGroup", s.api_group)
                .str("namespace", s.namespace);
            o.0.insert("name".into(), json!(s.name.unwrap_or_default()));
            o.done()
        })
        .collect();
    let r = role_ref.unwrap_or_default();
    extend(
        top(m),
        Obj::default()
            .val("subjects", Value::Array(subjects))
            .val(
                "roleRef",
                json!({
                    "apiGroup": r.api_group.unwrap_or_default(),
                    "kind": r.kind.unwrap_or_default(),
                    "name": r.name.unwrap_or_default(),
                }),
            )
            .done(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    /// What Go's gogo-protobuf sends for an ObjectMeta with only a name: every
    /// non-pointer field present with its zero value.
    fn go_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(namespace.into()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    #[test]
    fn kubectl_create_namespace_bytes() {
        // The body `kubectl create namespace x` (1.37) sends, byte for byte.
        let body = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x19\x0a\x11\x0a\x01x\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
        let v = decode(body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        );
    }

    #[test]
    fn secret_data_is_base64_and_meta_maps_survive() {
        let mut m = go_meta("s", "ns");
        m.labels = BTreeMap::from([("owner".into(), "helm".into())]);
        m.annotations = BTreeMap::from([("a".into(), "b".into())]);
        m.creation_timestamp = Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        });
        m.owner_references = vec![meta::OwnerReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some("o".into()),
            uid: Some("u-1".into()),
            controller: Some(true),
            block_owner_deletion: None,
        }];
        m.finalizers = vec!["f/x".into()];
        let s = core::Secret {
            metadata: Some(m),
            immutable: None,
            data: BTreeMap::from([
                ("kubeconfig".into(), b"apiVersion: v1\n".to_vec()),
                ("empty".into(), vec![]),
            ]),
            string_data: BTreeMap::new(),
            r#type: Some("helm.sh/release.v1".into()),
        };
        let v = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "s", "namespace": "ns",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "labels": {"owner": "helm"}, "annotations": {"a": "b"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1", "controller": true}],
                    "finalizers": ["f/x"],
                },
                "data": {"empty": "", "kubeconfig": "YXBpVmVyc2lvbjogdjEK"},
                "type": "helm.sh/release.v1",
            })
        );
    }

    #[test]
    fn config_map_keeps_false_immutable_and_binary_data() {
        let c = core::ConfigMap {
            metadata: Some(go_meta("c", "")),
            immutable: Some(false),
            data: BTreeMap::from([("k".into(), "v".into())]),
            binary_data: BTreeMap::from([("b".into(), vec![0, 1, 2])]),
        };
        let v = decode(&envelope("v1", "ConfigMap", c.encode_to_vec())).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "immutable": false, "data": {"k": "v"}, "binaryData": {"b": "AAEC"}})
        );
    }

    #[test]
    fn service_account_and_delete_options() {
        let sa = core::ServiceAccount {
            metadata: Some(go_meta("sa", "ns")),
            secrets: vec![],
            image_pull_secrets: vec![core::LocalObjectReference {
                name: Some("pull".into()),
            }],
            automount_service_account_token: Some(false),
        };
        let v = decode(&envelope("v1", "ServiceAccount", sa.encode_to_vec())).unwrap();
        assert_eq!(v["imagePullSecrets"], json!([{"name": "pull"}]));
        assert_eq!(v["automountServiceAccountToken"], json!(false));
        assert!(v.get("secrets").is_none());

        let d = meta::DeleteOptions {
            propagation_policy: Some("Background".into()),
            preconditions: Some(meta::Preconditions {
                uid: None,
                resource_version: Some("7".into()),
            }),
            ..Default::default()
        };
        let v = decode(&envelope(
            "meta.k8s.io/v1",
            "DeleteOptions",
            d.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"propagationPolicy": "Background", "preconditions": {"resourceVersion": "7"}})
        );
    }

    #[test]
    fn access_reviews_and_rbac_objects() {
        let r = authz::SelfSubjectAccessReview {
            metadata: Some(go_meta("", "")),
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    namespace: Some("apps".into()),
                    verb: Some("get".into()),
                    group: Some(String::new()),
                    resource: Some("pods".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(authz::SubjectAccessReviewStatus::default()),
        };
        let v = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            r.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": {"namespace": "apps", "verb": "get", "resource": "pods"}}})
        );
        let b = rbac::RoleBinding {
            metadata: Some(go_meta("admins", "apps")),
            subjects: vec![rbac::Subject {
                kind: Some("Group".into()),
                api_group: Some("rbac.authorization.k8s.io".into()),
                name: Some("ops".into()),
                namespace: Some(String::new()),
            }],
            role_ref: Some(rbac::RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("ClusterRole".into()),
                name: Some("admin".into()),
            }),
        };
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            b.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v["subjects"],
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}])
        );
        assert_eq!(v["roleRef"]["name"], "admin");
        let role = rbac::Role {
            metadata: Some(go_meta("r", "apps")),
            rules: vec![rbac::PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: vec![String::new()],
                resources: vec!["secrets".into()],
                resource_names: vec![],
                non_resource_ur_ls: vec![],
            }],
        };
        let v = decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "Role",
            role.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v["rules"],
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]}])
        );
    }

    #[test]
    fn token_request() {
        let t = authn::TokenRequest {
            metadata: Some(go_meta("robot", "apps")),
            spec: Some(authn::TokenRequestSpec {
                audiences: vec!["https://kubernetes.default.svc".into()],
                expiration_seconds: Some(3600),
                bound_object_ref: None,
            }),
            status: None,
        };
        let v = decode(&envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            t.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600})
        );
    }

    #[test]
    fn unsupported_kind_is_415_naming_it() {
        let e = decode(&envelope("apps/v1", "Deployment", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message.contains("apps/v1, Kind=Deployment"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_magic_is_400() {
        let e = decode(b"{}").unwrap_err();
        assert_eq!(e.code, 400);
    }
}
