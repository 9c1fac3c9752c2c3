//! Authorization like kube-apiserver's `--authorization-mode=RBAC` (opt-in per cluster,
//! [`Authorization::Rbac`]): request attributes from method and path (`RequestInfoFactory`),
//! the privileged `system:masters` group, the default discovery / basic-user bindings, and
//! Roles / ClusterRoles reached through RoleBindings / ClusterRoleBindings. Denials are
//! `403 Forbidden` worded like the real server; `SelfSubjectAccessReview`,
//! `SubjectAccessReview`, `LocalSubjectAccessReview` and `SelfSubjectRulesReview` answer
//! from the same authorizer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::objects::Core;
use crate::resources::{ResKey, ResourceDef};
use crate::selectors::LabelSelector;
use crate::store::meta_str;

pub const GROUP: &str = "rbac.authorization.k8s.io";
const MASTERS: &str = "system:masters";

/// How a cluster authorizes requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authorization {
    /// Every authenticated user may do everything (the default).
    #[default]
    AlwaysAllow,
    /// Kubernetes RBAC, as `--authorization-mode=RBAC`.
    #[serde(rename = "RBAC", alias = "Rbac", alias = "rbac")]
    Rbac,
}

/// The cluster's authorization mode, switchable at run time.
#[derive(Debug, Default)]
pub struct Mode(AtomicBool);

impl Mode {
    pub fn new(a: Authorization) -> Self {
        Mode(AtomicBool::new(a == Authorization::Rbac))
    }

    pub fn get(&self) -> Authorization {
        if self.0.load(Ordering::SeqCst) {
            Authorization::Rbac
        } else {
            Authorization::AlwaysAllow
        }
    }

    pub fn set(&self, a: Authorization) {
        self.0.store(a == Authorization::Rbac, Ordering::SeqCst);
    }
}

/// The RBAC kinds and the access reviews, as built-in resources.
pub(crate) fn builtin_defs() -> Vec<ResourceDef> {
    let b = crate::resources::builtin;
    let mut v = vec![
        b(GROUP, "v1", "Role", "roles", true, &[], false, false),
        b(
            GROUP,
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            false,
        ),
        b(
            GROUP,
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            false,
        ),
        b(
            GROUP,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            false,
        ),
    ];
    let authz = "authorization.k8s.io";
    for (group, kind, plural, namespaced) in [
        (authz, "SubjectAccessReview", "subjectaccessreviews", false),
        (
            authz,
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
        ),
        (
            authz,
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
        ),
        (
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
        ),
    ] {
        let mut d = b(group, "v1", kind, plural, namespaced, &[], false, false);
        d.verbs = vec!["create"];
        v.push(d);
    }
    v
}

/// What a request asks to do (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestAttributes {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path, for non-resource requests.
    pub path: String,
}

/// The groups a request is authorized with: the user's plus `system:authenticated`.
pub fn effective_groups(user: &User) -> Vec<String> {
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    groups
}

fn parse_bool(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Request attributes from method, path and query, as `RequestInfoFactory.NewRequestInfo`.
pub fn request_attributes(
    user: &User,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> RequestAttributes {
    let mut a = RequestAttributes {
        user: user.name.clone(),
        groups: effective_groups(user),
        verb: method.as_str().to_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut rest: &[&str] = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => {
            a.api_version = v.to_string();
            rest
        }
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            a.api_group = g.to_string();
            a.api_version = v.to_string();
            rest
        }
        _ => return a,
    };
    a.resource_request = true;
    let mut watch_prefix = false;
    if rest[0] == "watch" {
        watch_prefix = true;
        rest = &rest[1..];
    }
    a.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .into();
    if watch_prefix {
        a.verb = "watch".into();
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    a.resource = rest.first().copied().unwrap_or_default().to_string();
    a.name = rest.get(1).copied().unwrap_or_default().to_string();
    a.subresource = rest.get(2).copied().unwrap_or_default().to_string();
    if a.name.is_empty() && a.verb == "get" {
        let watch = query.get("watch").is_some_and(|w| parse_bool(w));
        a.verb = if watch { "watch" } else { "list" }.into();
    }
    if a.name.is_empty() && matches!(a.verb.as_str(), "list" | "watch") {
        // A field selector on metadata.name names the object (resourceNames rules).
        if let Some(fs) = query.get("fieldSelector") {
            let terms: Vec<&str> = fs.split(',').filter(|t| !t.is_empty()).collect();
            if let [term] = terms.as_slice()
                && let Some(v) = term
                    .strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="))
                && !v.is_empty()
                && !v.contains('/')
            {
                a.name = v.to_string();
            }
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// An authorization decision and its reason (as `SubjectAccessReviewStatus` has them).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `rbac.RuleAllows`.
pub fn rule_allows(a: &RequestAttributes, rule: &Value) -> bool {
    let has = |field: &str, want: &str| strs(&rule[field]).iter().any(|x| *x == "*" || *x == want);
    if !has("verbs", &a.verb) {
        return false;
    }
    if !a.resource_request {
        return strs(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*"
                || *u == a.path
                || u.strip_suffix('*')
                    .is_some_and(|p| a.path.starts_with(p.trim_end_matches('*')))
        });
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strs(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let names = strs(&rule["resourceNames"]);
    has("apiGroups", &a.api_group)
        && resource_ok
        && (names.is_empty() || names.contains(&a.name.as_str()))
}

fn key(plural: &str) -> ResKey {
    ResKey {
        group: GROUP.into(),
        plural: plural.into(),
    }
}

/// The default ClusterRoleBindings every cluster has that matter to ordinary users, as
/// (binding, role) pairs: discovery, public info and the self reviews.
fn default_policy() -> Vec<(Value, Value)> {
    let role = |name: &str, rules: Value| json!({"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules});
    let binding = |name: &str, groups: &[&str]| {
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": groups.iter().map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g})).collect::<Vec<_>>()})
    };
    vec![
        (
            binding("system:discovery", &["system:authenticated"]),
            role(
                "system:discovery",
                json!([{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}]),
            ),
        ),
        (
            binding(
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
            role(
                "system:public-info-viewer",
                json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]}]),
            ),
        ),
        (
            binding("system:basic-user", &["system:authenticated"]),
            role(
                "system:basic-user",
                json!([
                    {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
                ]),
            ),
        ),
    ]
}

fn applies_to(a: &RequestAttributes, subject: &Value, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "User" => a.user == name,
        "Group" => a.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && a.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or_default();
    let name = subject["name"].as_str().unwrap_or_default();
    if kind == "ServiceAccount" {
        let ns = subject["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or(binding_ns);
        format!("{kind} \"{name}/{ns}\"")
    } else {
        format!("{kind} \"{name}\"")
    }
}

/// A ClusterRole's rules, including those aggregated into it by `aggregationRule`.
fn cluster_role_rules(core: &Core, role: &Value) -> Vec<Value> {
    let mut rules: Vec<Value> = role["rules"].as_array().cloned().unwrap_or_default();
    if let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() {
        let all = core.store.list(&key("clusterroles"), None).0;
        for sel in selectors {
            let Ok(sel) = LabelSelector::from_object(sel) else {
                continue;
            };
            for other in &all {
                if meta_str(other, "name") != meta_str(role, "name")
                    && sel.matches(&other["metadata"]["labels"])
                {
                    for r in other["rules"].as_array().into_iter().flatten() {
                        if !rules.contains(r) {
                            rules.push(r.clone());
                        }
                    }
                }
            }
        }
    }
    rules
}

/// The rules a binding grants, or the error the real authorizer records for it.
fn role_ref_rules(core: &Core, role_ref: &Value, binding_ns: &str) -> Result<Vec<Value>, String> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    match role_ref["kind"].as_str().unwrap_or_default() {
        "ClusterRole" => core
            .store
            .get(&key("clusterroles"), "", name)
            .map(|r| cluster_role_rules(core, &r))
            .ok_or_else(|| format!("clusterrole.{GROUP} \"{name}\" not found")),
        "Role" if !binding_ns.is_empty() => core
            .store
            .get(&key("roles"), binding_ns, name)
            .map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .ok_or_else(|| format!("role.{GROUP} \"{name}\" not found")),
        other => Err(format!("unsupported role reference kind: {other:?}")),
    }
}

/// Calls `visit(describer, rules)` for each binding that applies to the request's user,
/// ClusterRoleBindings first, then RoleBindings of the request's namespace, until `visit`
/// returns true. Returns the errors met (missing roles), as the real visitor does.
fn visit_rules(
    core: &Core,
    a: &RequestAttributes,
    namespace: &str,
    mut visit: impl FnMut(&dyn Fn() -> String, &[Value]) -> bool,
) -> Vec<String> {
    let mut errors = vec![];
    let mut cluster: Vec<(Value, Option<Value>)> = default_policy()
        .into_iter()
        .map(|(b, r)| (b, Some(r)))
        .collect();
    cluster.extend(
        core.store
            .list(&key("clusterrolebindings"), None)
            .0
            .iter()
            .map(|b| ((**b).clone(), None)),
    );
    for (b, builtin_role) in &cluster {
        let Some(subject) = b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| applies_to(a, s, ""))
        else {
            continue;
        };
        let rules = match builtin_role {
            Some(r) => Ok(r["rules"].as_array().cloned().unwrap_or_default()),
            None => role_ref_rules(core, &b["roleRef"], ""),
        };
        match rules {
            Ok(rules) => {
                let describe = || {
                    format!(
                        "ClusterRoleBinding \"{}\" of {} \"{}\" to {}",
                        meta_str(b, "name"),
                        b["roleRef"]["kind"].as_str().unwrap_or_default(),
                        b["roleRef"]["name"].as_str().unwrap_or_default(),
                        describe_subject(subject, "")
                    )
                };
                if visit(&describe, &rules) {
                    return errors;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if namespace.is_empty() {
        return errors;
    }
    for b in core.store.list(&key("rolebindings"), Some(namespace)).0 {
        let Some(subject) = b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| applies_to(a, s, namespace))
        else {
            continue;
        };
        match role_ref_rules(core, &b["roleRef"], namespace) {
            Ok(rules) => {
                let describe = || {
                    format!(
                        "RoleBinding \"{}/{namespace}\" of {} \"{}\" to {}",
                        meta_str(&b, "name"),
                        b["roleRef"]["kind"].as_str().unwrap_or_default(),
                        b["roleRef"]["name"].as_str().unwrap_or_default(),
                        describe_subject(subject, namespace)
                    )
                };
                if visit(&describe, &rules) {
                    return errors;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn aggregate(errors: Vec<String>) -> String {
    let mut uniq: Vec<String> = vec![];
    for e in errors {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    match uniq.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", uniq[0]),
        _ => format!("RBAC: [{}]", uniq.join(", ")),
    }
}

/// The RBAC authorizer (preceded by the `system:masters` privileged-group authorizer).
pub fn rbac_decide(core: &Core, a: &RequestAttributes) -> Decision {
    if a.groups.iter().any(|g| g == MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut allowed_by = None;
    let errors = visit_rules(core, a, &a.namespace, |describe, rules| {
        if rules.iter().any(|r| rule_allows(a, r)) {
            allowed_by = Some(describe());
            true
        } else {
            false
        }
    });
    match allowed_by {
        Some(d) => Decision {
            allowed: true,
            reason: format!("RBAC: allowed by {d}"),
        },
        None => Decision {
            allowed: false,
            reason: aggregate(errors),
        },
    }
}

/// The decision under the cluster's current authorization mode.
pub fn decide(core: &Core, a: &RequestAttributes) -> Decision {
    match core.authorization.get() {
        Authorization::AlwaysAllow => Decision {
            allowed: true,
            reason: String::new(),
        },
        Authorization::Rbac => rbac_decide(core, a),
    }
}

/// `responsewriters.Forbidden`: the 403 Status the real server sends for a denial.
pub fn forbidden(a: &RequestAttributes, reason: &str) -> ApiError {
    let msg = if !a.resource_request {
        format!("User \"{}\" cannot {} path \"{}\"", a.user, a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        if a.namespace.is_empty() {
            format!(
                "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" at the cluster scope",
                a.user, a.verb, a.api_group
            )
        } else {
            format!(
                "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
                a.user, a.verb, a.api_group, a.namespace
            )
        }
    };
    let msg = if reason.is_empty() {
        msg
    } else {
        format!("{msg}: {reason}")
    };
    let (message, details) = if !a.resource_request || a.resource.is_empty() {
        (format!("forbidden: {msg}"), json!({}))
    } else {
        let gr = crate::error::qualified(&a.api_group, &a.resource);
        let mut d = serde_json::Map::new();
        if !a.name.is_empty() {
            d.insert("name".into(), json!(a.name));
        }
        if !a.api_group.is_empty() {
            d.insert("group".into(), json!(a.api_group));
        }
        d.insert("kind".into(), json!(a.resource));
        let message = if a.name.is_empty() {
            format!("{gr} is forbidden: {msg}")
        } else {
            format!("{gr} \"{}\" is forbidden: {msg}", a.name)
        };
        (message, Value::Object(d))
    };
    let mut e = ApiError::forbidden(message);
    e.details = Some(details);
    e
}

/// Authorizes an HTTP request (after authentication, before admission). A patch of an
/// object that does not exist yet (server-side apply creating it) also needs `create`.
pub fn authorize_request(
    core: &Core,
    user: &User,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> ApiResult<()> {
    if core.authorization.get() == Authorization::AlwaysAllow {
        return Ok(());
    }
    let a = request_attributes(user, method, path, query);
    let d = rbac_decide(core, &a);
    if !d.allowed {
        return Err(forbidden(&a, &d.reason));
    }
    if a.verb == "patch" && a.resource_request && a.subresource.is_empty() {
        let def = core
            .registry()
            .find(&a.api_group, &a.api_version, &a.resource);
        if let Some(def) = def
            && core.store.get(&def.key(), &a.namespace, &a.name).is_none()
        {
            let create = RequestAttributes {
                verb: "create".into(),
                ..a
            };
            let d = rbac_decide(core, &create);
            if !d.allowed {
                // The patch handler's `withAuthorization` words it with the bare reason
                // (usually empty), not like the request filter.
                let mut e = forbidden(&create, &d.reason);
                e.message = format!(
                    "{} \"{}\" is forbidden: {}",
                    crate::error::qualified(&create.api_group, &create.resource),
                    create.name,
                    d.reason
                );
                return Err(e);
            }
        }
    }
    Ok(())
}

fn review_attributes(spec: &Value, user: String, groups: Vec<String>) -> RequestAttributes {
    let r = &spec["resourceAttributes"];
    if r.is_object() {
        RequestAttributes {
            user,
            groups,
            verb: r["verb"].as_str().unwrap_or_default().into(),
            resource_request: true,
            api_group: r["group"].as_str().unwrap_or_default().into(),
            api_version: r["version"].as_str().unwrap_or_default().into(),
            resource: r["resource"].as_str().unwrap_or_default().into(),
            subresource: r["subresource"].as_str().unwrap_or_default().into(),
            namespace: r["namespace"].as_str().unwrap_or_default().into(),
            name: r["name"].as_str().unwrap_or_default().into(),
            path: String::new(),
        }
    } else {
        let n = &spec["nonResourceAttributes"];
        RequestAttributes {
            user,
            groups,
            verb: n["verb"].as_str().unwrap_or_default().into(),
            path: n["path"].as_str().unwrap_or_default().into(),
            ..Default::default()
        }
    }
}

fn review_invalid(kind: &str, field: &str, value: Option<String>, detail: &str) -> ApiError {
    ApiError::invalid(
        "authorization.k8s.io",
        kind,
        "",
        vec![FieldError::new(K::Invalid, field, value, detail)],
    )
}

/// Answers a SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
/// SelfSubjectRulesReview or SelfSubjectReview created by `user` (`ns` for the local
/// review's path).
pub fn access_review(
    core: &Core,
    user: &User,
    def: &ResourceDef,
    ns: &str,
    body: &Value,
) -> ApiResult<Value> {
    let spec = &body["spec"];
    let has_res = spec["resourceAttributes"].is_object();
    let has_non = spec["nonResourceAttributes"].is_object();
    let attrs = match def.plural.as_str() {
        "selfsubjectreviews" => {
            // `kubectl auth whoami`.
            return Ok(json!({
                "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": user.user_info()},
            }));
        }
        "selfsubjectrulesreviews" => {
            return Ok(rules_review(core, user, body));
        }
        "selfsubjectaccessreviews" => {
            review_attributes(spec, user.name.clone(), effective_groups(user))
        }
        _ => {
            let u = spec["user"].as_str().unwrap_or_default().to_string();
            let groups: Vec<String> = strs(&spec["groups"])
                .into_iter()
                .map(str::to_string)
                .collect();
            if u.is_empty() && groups.is_empty() {
                return Err(review_invalid(
                    &def.kind,
                    "spec.user",
                    Some("\"\"".into()),
                    "at least one of user or group must be specified",
                ));
            }
            let a = review_attributes(spec, u, groups);
            if def.plural == "localsubjectaccessreviews" && (!has_res || a.namespace != ns) {
                return Err(review_invalid(
                    &def.kind,
                    "spec.resourceAttributes.namespace",
                    Some(format!("{:?}", a.namespace)),
                    "must match metadata.namespace",
                ));
            }
            a
        }
    };
    if has_res == has_non {
        return Err(review_invalid(
            &def.kind,
            "spec.resourceAttributes",
            None,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let d = match core.authorization.get() {
        Authorization::AlwaysAllow => Decision {
            allowed: true,
            reason: "the simulator authorizes every authenticated user".into(),
        },
        Authorization::Rbac => rbac_decide(core, &attrs),
    };
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!(def.kind);
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    out["metadata"]["creationTimestamp"] = Value::Null;
    if def.namespaced {
        out["metadata"]["namespace"] = json!(ns);
    }
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    out["status"] = status;
    Ok(out)
}

/// `SelfSubjectRulesReview`: the rules that apply to the caller in `spec.namespace`.
fn rules_review(core: &Core, user: &User, body: &Value) -> Value {
    let ns = body["spec"]["namespace"].as_str().unwrap_or_default();
    let a = RequestAttributes {
        user: user.name.clone(),
        groups: effective_groups(user),
        ..Default::default()
    };
    let mut resource_rules = vec![];
    let mut non_resource_rules = vec![];
    let masters = a.groups.iter().any(|g| g == MASTERS);
    let all = |rules: &[Value], res: &mut Vec<Value>, non: &mut Vec<Value>| {
        for r in rules {
            if r["nonResourceURLs"]
                .as_array()
                .is_some_and(|u| !u.is_empty())
            {
                non.push(json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}));
            } else {
                let mut rr = json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"]});
                if r["resourceNames"].as_array().is_some_and(|n| !n.is_empty()) {
                    rr["resourceNames"] = r["resourceNames"].clone();
                }
                res.push(rr);
            }
        }
    };
    if masters || core.authorization.get() == Authorization::AlwaysAllow {
        resource_rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        non_resource_rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    let errors = visit_rules(core, &a, ns, |_, rules| {
        all(rules, &mut resource_rules, &mut non_resource_rules);
        false
    });
    let mut out = body.clone();
    out["apiVersion"] = json!("authorization.k8s.io/v1");
    out["kind"] = json!("SelfSubjectRulesReview");
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        out["status"]["evaluationError"] = json!(aggregate(errors));
    }
    out
}

/// Validation of the RBAC kinds: a binding's roleRef is required and immutable, subjects
/// must be of a known kind.
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = vec![];
    if def.group != GROUP || !def.plural.ends_with("bindings") {
        return errs;
    }
    let role_ref = &obj["roleRef"];
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    let allowed: &[&str] = if def.plural == "rolebindings" {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if role_ref["name"].as_str().unwrap_or_default().is_empty() {
        errs.push(FieldError::new(K::Required, "roleRef.name", None, ""));
    }
    if !allowed.contains(&kind) {
        errs.push(FieldError::new(
            K::NotSupported,
            "roleRef.kind",
            Some(format!("{kind:?}")),
            format!(
                "supported values: {}",
                allowed
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if role_ref["apiGroup"].as_str() != Some(GROUP) {
        errs.push(FieldError::new(
            K::NotSupported,
            "roleRef.apiGroup",
            Some(format!(
                "{:?}",
                role_ref["apiGroup"].as_str().unwrap_or_default()
            )),
            format!("supported values: \"{GROUP}\""),
        ));
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let k = s["kind"].as_str().unwrap_or_default();
        if !matches!(k, "User" | "Group" | "ServiceAccount") {
            errs.push(FieldError::new(
                K::NotSupported,
                format!("subjects[{i}].kind"),
                Some(format!("{k:?}")),
                "supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ));
        }
        if s["name"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::new(
                K::Required,
                format!("subjects[{i}].name"),
                None,
                "",
            ));
        }
        if k == "ServiceAccount"
            && def.plural == "clusterrolebindings"
            && s["namespace"].as_str().unwrap_or_default().is_empty()
        {
            errs.push(FieldError::new(
                K::Required,
                format!("subjects[{i}].namespace"),
                None,
                "",
            ));
        }
    }
    if let Some(old) = old
        && old["roleRef"] != obj["roleRef"]
    {
        errs.push(FieldError::new(
            K::Invalid,
            "roleRef",
            Some(format!("{}", obj["roleRef"])),
            "cannot change roleRef",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &[(&str, &str)]) -> RequestAttributes {
        let q = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request_attributes(&User::new("u", &[]), &method, path, &q)
    }

    #[test]
    fn request_info_like_the_real_factory() {
        let a = attrs(Method::GET, "/api/v1/namespaces/ns/secrets/s", &[]);
        assert_eq!(
            (
                a.verb.as_str(),
                a.namespace.as_str(),
                a.resource.as_str(),
                a.name.as_str()
            ),
            ("get", "ns", "secrets", "s")
        );
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/ns/secrets",
            &[("watch", "1")],
        );
        assert_eq!(a.verb, "watch");
        let a = attrs(Method::GET, "/api/v1/secrets", &[]);
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
        let a = attrs(Method::GET, "/api/v1/namespaces/ns", &[]);
        assert_eq!(
            (a.namespace.as_str(), a.resource.as_str(), a.name.as_str()),
            ("ns", "namespaces", "ns")
        );
        let a = attrs(Method::PUT, "/api/v1/namespaces/ns/finalize", &[]);
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let a = attrs(
            Method::PATCH,
            "/apis/g.io/v1/namespaces/ns/things/t/status",
            &[],
        );
        assert_eq!(
            (
                a.api_group.as_str(),
                a.subresource.as_str(),
                a.verb.as_str()
            ),
            ("g.io", "status", "patch")
        );
        let a = attrs(Method::DELETE, "/apis/g.io/v1/things", &[]);
        assert_eq!(a.verb, "deletecollection");
        let a = attrs(
            Method::GET,
            "/api/v1/namespaces/ns/configmaps",
            &[("fieldSelector", "metadata.name=cm"), ("watch", "true")],
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "cm"));
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/g.io",
            "/apis/g.io/v1",
            "/version",
        ] {
            let a = attrs(Method::GET, p, &[]);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
        }
    }

    #[test]
    fn rules_match_like_rbac() {
        let a = attrs(
            Method::GET,
            "/apis/g.io/v1/namespaces/ns/things/t/status",
            &[],
        );
        let r = |v: Value| rule_allows(&a, &v);
        assert!(r(
            json!({"verbs": ["get"], "apiGroups": ["g.io"], "resources": ["things/status"]})
        ));
        assert!(r(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        ));
        assert!(r(
            json!({"verbs": ["get"], "apiGroups": ["g.io"], "resources": ["*/status"]})
        ));
        assert!(!r(
            json!({"verbs": ["get"], "apiGroups": ["g.io"], "resources": ["things"]})
        ));
        assert!(!r(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["things/status"]})
        ));
        assert!(r(
            json!({"verbs": ["get"], "apiGroups": ["g.io"], "resources": ["things/status"], "resourceNames": ["t"]})
        ));
        assert!(!r(
            json!({"verbs": ["get"], "apiGroups": ["g.io"], "resources": ["things/status"], "resourceNames": ["x"]})
        ));
        let a = attrs(Method::GET, "/openapi/v3/apis/g.io/v1", &[]);
        assert!(rule_allows(
            &a,
            &json!({"verbs": ["get"], "nonResourceURLs": ["/openapi/*"]})
        ));
        assert!(!rule_allows(
            &a,
            &json!({"verbs": ["get"], "nonResourceURLs": ["/openapi"]})
        ));
    }

    #[test]
    fn forbidden_messages_like_the_real_server() {
        let mut a = attrs(Method::GET, "/api/v1/namespaces/ns/secrets/s", &[]);
        a.user = "system:serviceaccount:ns:sa".into();
        let e = forbidden(&a, "");
        assert_eq!(
            e.message,
            "secrets \"s\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
        assert_eq!(e.details, Some(json!({"name": "s", "kind": "secrets"})));
        let a = attrs(Method::GET, "/apis/g.io/v1/things", &[]);
        assert_eq!(
            forbidden(&a, "").message,
            "things.g.io is forbidden: User \"u\" cannot list resource \"things\" in API group \"g.io\" at the cluster scope"
        );
        let a = attrs(Method::GET, "/metrics", &[]);
        assert_eq!(
            forbidden(&a, "").message,
            "forbidden: User \"u\" cannot get path \"/metrics\""
        );
    }
}
