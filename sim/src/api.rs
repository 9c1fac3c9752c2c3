//! Object semantics shared by the HTTP handlers and the simulated controllers: create,
//! update, patch and delete with the real server's rules (uid, generation, status
//! subresource, schema, admission, managedFields, finalizers, garbage collection).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use crate::admission::{self, Attributes};
use crate::apply::{self, ApplyRequest};
use crate::auth::User;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::faults::Faults;
use crate::resources::{self, Registry, ResKey, ResourceDef};
use crate::schema;
use crate::store::{Store, meta_str, rv_of};

/// `fieldValidation` of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// Who is writing, and how.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user: User,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub user_agent: String,
    pub validation: FieldValidation,
    /// Writes by the simulator's own controllers skip admission webhooks.
    pub internal: bool,
}

impl Ctx {
    pub fn internal(manager: &str) -> Self {
        Ctx {
            user: User::system(&format!("system:serviceaccount:kube-system:{manager}")),
            dry_run: false,
            field_manager: Some(manager.into()),
            user_agent: manager.into(),
            validation: FieldValidation::Ignore,
            internal: true,
        }
    }

    fn manager(&self) -> String {
        self.field_manager.clone().unwrap_or_else(|| {
            let ua = self.user_agent.split('/').next().unwrap_or_default();
            if ua.is_empty() {
                "unknown".into()
            } else {
                ua.into()
            }
        })
    }
}

/// Result of a write: the object and any warnings (sent as `Warning` headers).
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// The kinds of patch the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// One simulated cluster's API state.
pub struct Core {
    pub name: String,
    pub store: Arc<Store>,
    pub registry: RwLock<Registry>,
    pub users: Vec<User>,
    pub faults: Arc<Faults>,
    pub bookmark_interval: Duration,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn dns_label_ok(s: &str) -> bool {
    let re = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex");
    s.len() <= 63 && re.is_match(s)
}

fn dns_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
                    .expect("static regex")
                    .is_match(p)
        })
}

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// ObjectMeta validation the real server does for every kind.
fn validate_meta(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    let name = meta_str(obj, "name");
    let ok = if def.kind == "Namespace" {
        dns_label_ok(name)
    } else {
        dns_subdomain_ok(name)
    };
    if !ok {
        let msg = if def.kind == "Namespace" {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        };
        errs.push(FieldError::new(
            K::Invalid,
            "metadata.name",
            Some(format!("{name:?}")),
            msg,
        ));
    }
    let value_re =
        regex::Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").expect("static regex");
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            let key_name = k.rsplit('/').next().unwrap_or_default();
            if key_name.is_empty() || key_name.len() > 63 || !value_re.is_match(key_name) {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{k:?}")),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                ));
            }
            if v.len() > 63 {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{v:?}")),
                    "must be no more than 63 characters",
                ));
            } else if !value_re.is_match(v) {
                errs.push(FieldError::new(
                    K::Invalid,
                    "metadata.labels",
                    Some(format!("{v:?}")),
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    errs
}

fn strip_for_generation(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if status_sub {
            m.remove("status");
        }
    }
    v
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

/// Strategic merge for built-ins: a JSON merge patch whose object lists carrying a
/// `name` are merged by name (the patch merge key of the lists the product touches),
/// with `$patch`/`$retainKeys`/`$setElementOrder` directives honoured or dropped.
fn strategic_merge(doc: &mut Value, patch: &Value) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut p2 = p.clone();
                p2.remove("$patch");
                *d = p2;
                return;
            }
            for (k, pv) in p {
                if k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    d.remove(k);
                    continue;
                }
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && pv.is_object() => strategic_merge(dv, pv),
                    Some(Value::Array(da))
                        if pv.is_array()
                            && da.iter().all(|x| x.get("name").is_some())
                            && !da.is_empty() =>
                    {
                        for item in pv.as_array().into_iter().flatten() {
                            let name = &item["name"];
                            if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                                da.retain(|x| &x["name"] != name);
                            } else if let Some(existing) =
                                da.iter_mut().find(|x| &x["name"] == name)
                            {
                                strategic_merge(existing, item);
                            } else {
                                da.push(item.clone());
                            }
                        }
                    }
                    _ => {
                        d.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (d, p) => *d = p.clone(),
    }
}

impl Core {
    pub fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> ApiResult<Arc<ResourceDef>> {
        self.registry().find(group, version, plural).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
    }

    pub fn def_for(&self, api_version: &str, kind: &str) -> ApiResult<Arc<ResourceDef>> {
        let (g, v) = api_version.split_once('/').unwrap_or(("", api_version));
        self.registry().by_kind(g, v, kind).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
            )
        })
    }

    fn namespace_check(&self, ns: &str) -> ApiResult<Value> {
        let key = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        let nso = self
            .store
            .get(&key, "", ns)
            .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
        Ok((*nso).clone())
    }

    fn webhook_configs(&self, plural: &str) -> Vec<Arc<Value>> {
        let key = ResKey {
            group: "admissionregistration.k8s.io".into(),
            plural: plural.into(),
        };
        self.store.list(&key, None).0
    }

    #[allow(clippy::too_many_arguments)]
    fn attributes<'a>(
        &self,
        op: &'a str,
        def: &'a ResourceDef,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
        old: Option<&'a Value>,
        ctx: &'a Ctx,
    ) -> Attributes<'a> {
        let ns_labels = if def.namespaced {
            self.store
                .get(
                    &ResKey {
                        group: String::new(),
                        plural: "namespaces".into(),
                    },
                    "",
                    ns,
                )
                .map(|n| n["metadata"]["labels"].clone())
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        Attributes {
            operation: op,
            def,
            subresource: sub,
            namespace: ns,
            name,
            old,
            user: &ctx.user,
            dry_run: ctx.dry_run,
            namespace_labels: ns_labels,
        }
    }

    /// Admission webhooks never see writes to webhook configurations (as in the real
    /// server, so a broken webhook cannot lock itself in).
    fn admits(def: &ResourceDef, ctx: &Ctx) -> bool {
        !ctx.internal && def.group != "admissionregistration.k8s.io"
    }

    /// Unknown-field handling and defaulting for custom resources.
    fn prepare_schema(
        def: &ResourceDef,
        obj: &mut Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let Some(s) = &def.schema else { return Ok(()) };
        let unknown = schema::prune(s, obj);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        def.kind,
                        def.version,
                        def.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(list),
                FieldValidation::Ignore => {}
            }
        }
        *obj = schema::apply_defaults(s, obj);
        Ok(())
    }

    fn validate_object(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let mut errs = validate_meta(def, obj);
        if let Some(s) = &def.schema {
            let structural = schema::validate(s, obj);
            let type_broken = structural
                .iter()
                .any(|e| e.detail.contains("must be of type"));
            errs.extend(structural);
            // CEL rules only run on structurally typed data, as in the real server.
            if !type_broken {
                errs.extend(schema::validate_cel(s, obj, old));
            }
        }
        if def.kind == "CustomResourceDefinition"
            && let Err(e) = resources::defs_from_crd(obj)
        {
            errs.extend(e);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &def.group,
                &def.kind,
                meta_str(obj, "name"),
                errs,
            ))
        }
    }

    /// POST to a collection.
    pub async fn create(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        obj: Value,
    ) -> ApiResult<Written> {
        self.create_inner(ctx, def, ns, obj, false).await
    }

    async fn create_inner(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        mut obj: Value,
        managed_done: bool,
    ) -> ApiResult<Written> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        let api_version = def.api_version();
        if let Some(k) = obj["kind"].as_str()
            && k != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        if let Some(av) = obj["apiVersion"].as_str()
            && av != api_version
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({api_version})"
            )));
        }
        obj["kind"] = json!(def.kind);
        obj["apiVersion"] = json!(api_version);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if def.namespaced {
            let ons = meta_str(&obj, "namespace");
            if !ons.is_empty() && ons != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
            let nso = self.namespace_check(ns)?;
            if !nso["metadata"]["deletionTimestamp"].is_null() {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    crate::error::qualified(&def.group, &def.plural),
                    meta_str(&obj, "name")
                )));
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if meta_str(&obj, "name").is_empty() {
            let gen_name = meta_str(&obj, "generateName").to_string();
            if gen_name.is_empty() {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    "",
                    vec![FieldError::new(
                        K::Required,
                        "metadata.name",
                        None,
                        "name or generateName is required",
                    )],
                ));
            }
            obj["metadata"]["name"] = json!(format!("{gen_name}{}", random_suffix()));
        }
        let name = meta_str(&obj, "name").to_string();
        {
            let m = obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "generation",
                "selfLink",
            ] {
                m.remove(f);
            }
            if !managed_done {
                m.remove("managedFields");
            }
            if def.has_generation {
                m.insert("generation".into(), json!(1));
            }
        }
        if def.status_subresource && def.from_crd {
            // A create cannot set status when the status subresource is enabled.
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        match def.kind.as_str() {
            "Namespace" if def.group.is_empty() => {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            "CustomResourceDefinition" => obj["status"] = json!({}),
            _ => {}
        }
        let mut warnings = vec![];
        Self::prepare_schema(def, &mut obj, ctx.validation, &mut warnings)?;
        if Self::admits(def, ctx) {
            let configs = self.webhook_configs("mutatingwebhookconfigurations");
            if !configs.is_empty() {
                let a = self.attributes("CREATE", def, "", ns, &name, None, ctx);
                admission::mutate(&configs, &a, &mut obj).await?;
                Self::prepare_schema(def, &mut obj, FieldValidation::Ignore, &mut vec![])?;
            }
        }
        Self::validate_object(def, &obj, None)?;
        if Self::admits(def, ctx) {
            let configs = self.webhook_configs("validatingwebhookconfigurations");
            if !configs.is_empty() {
                let a = self.attributes("CREATE", def, "", ns, &name, None, ctx);
                admission::validate(&configs, &a, Some(&obj)).await?;
            }
        }
        if !managed_done {
            apply::record_update(
                &json!({}),
                &mut obj,
                &ctx.manager(),
                &api_version,
                "",
                &now(),
                def.schema.as_deref(),
            );
        }
        let created = self.store.create(&def.key(), obj, ctx.dry_run)?;
        let created = if def.kind == "CustomResourceDefinition" && !ctx.dry_run {
            self.crd_established(&created)?
        } else {
            created
        };
        Ok(Written {
            object: created,
            warnings,
            created: true,
        })
    }

    /// Registers a CRD's resources and marks it Established, like the real controllers.
    fn crd_established(&self, crd: &Value) -> ApiResult<Value> {
        let defs = resources::defs_from_crd(crd).map_err(|e| {
            ApiError::invalid(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                meta_str(crd, "name"),
                e,
            )
        })?;
        self.registry_mut().set_crd(defs);
        let mut upd = crd.clone();
        let t = now();
        upd["status"] = json!({
            "acceptedNames": crd["spec"]["names"].clone(),
            "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
            ],
        });
        let key = ResKey {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
        };
        self.store.update(&key, upd, rv_of(crd), false)
    }

    /// PUT of a whole object (or its status).
    pub async fn replace(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        obj: Value,
        sub: &str,
    ) -> ApiResult<Written> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        let body_name = meta_str(&obj, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let cur = self
            .store
            .get(&def.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        let body_rv = meta_str(&obj, "resourceVersion");
        let expected = if body_rv.is_empty() {
            if def.from_crd {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    name,
                    vec![FieldError::new(
                        K::Invalid,
                        "metadata.resourceVersion",
                        Some("0x0".into()),
                        "must be specified for an update",
                    )],
                ));
            }
            rv_of(&cur)
        } else {
            body_rv.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {body_rv:?}"))
            })?
        };
        self.finish_update(ctx, def, &cur, obj, sub, expected, false)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_update(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        old: &Value,
        mut new: Value,
        sub: &str,
        expected: u64,
        managed_done: bool,
    ) -> ApiResult<Written> {
        let api_version = def.api_version();
        let name = meta_str(old, "name").to_string();
        let ns = meta_str(old, "namespace").to_string();
        new["apiVersion"] = json!(api_version);
        new["kind"] = json!(def.kind);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        for f in [
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().map(|m| m.remove(f));
                }
            }
        }
        if def.status_subresource {
            if sub == "status" {
                // A status write changes only status (and its field ownership).
                let status = new.get("status").cloned();
                let managed = new["metadata"].get("managedFields").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                match managed {
                    Some(m) => new["metadata"]["managedFields"] = m,
                    None => {
                        new["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("managedFields"));
                    }
                }
            } else {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
        }
        let mut warnings = vec![];
        Self::prepare_schema(def, &mut new, ctx.validation, &mut warnings)?;
        if Self::admits(def, ctx) {
            let configs = self.webhook_configs("mutatingwebhookconfigurations");
            if !configs.is_empty() {
                let a = self.attributes("UPDATE", def, sub, &ns, &name, Some(old), ctx);
                admission::mutate(&configs, &a, &mut new).await?;
                Self::prepare_schema(def, &mut new, FieldValidation::Ignore, &mut vec![])?;
            }
        }
        Self::validate_object(def, &new, Some(old))?;
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    &name,
                    vec![FieldError::new(
                        K::Forbidden,
                        "metadata.finalizers",
                        None,
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        if Self::admits(def, ctx) {
            let configs = self.webhook_configs("validatingwebhookconfigurations");
            if !configs.is_empty() {
                let a = self.attributes("UPDATE", def, sub, &ns, &name, Some(old), ctx);
                admission::validate(&configs, &a, Some(&new)).await?;
            }
        }
        if def.has_generation
            && strip_for_generation(old, def.status_subresource)
                != strip_for_generation(&new, def.status_subresource)
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if !managed_done {
            apply::record_update(
                old,
                &mut new,
                &ctx.manager(),
                &api_version,
                sub,
                &now(),
                def.schema.as_deref(),
            );
        }
        let updated = self.store.update(&def.key(), new, expected, ctx.dry_run)?;
        if ctx.dry_run {
            return Ok(Written {
                object: updated,
                warnings,
                created: false,
            });
        }
        if !updated["metadata"]["deletionTimestamp"].is_null() && finalizers(&updated).is_empty() {
            let gone = self.store.delete(&def.key(), &ns, &name, None, false)?;
            self.on_removed(&def.key(), &gone);
            self.gc();
            return Ok(Written {
                object: gone,
                warnings,
                created: false,
            });
        }
        let updated = if def.kind == "CustomResourceDefinition" && sub.is_empty() {
            self.crd_established(&updated)?
        } else {
            updated
        };
        if !updated["metadata"]["deletionTimestamp"].is_null() {
            self.gc();
        }
        Ok(Written {
            object: updated,
            warnings,
            created: false,
        })
    }

    /// PATCH in any of the four patch types, retrying on concurrent writes like the
    /// real server's GuaranteedUpdate (unless the patch pins a resourceVersion).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        sub: &str,
        force: bool,
    ) -> ApiResult<Written> {
        let patch: Value = match ptype {
            PatchType::Apply => serde_saphyr::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
            _ => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        };
        for _ in 0..8 {
            let cur = self.store.get(&def.key(), ns, name);
            let res = match ptype {
                PatchType::Apply => {
                    self.apply_patch(ctx, def, ns, name, &patch, sub, force, cur.as_deref())
                        .await
                }
                _ => {
                    let cur =
                        cur.ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
                    let mut doc = (*cur).clone();
                    match ptype {
                        PatchType::Merge => json_patch::merge(&mut doc, &patch),
                        PatchType::Strategic => strategic_merge(&mut doc, &patch),
                        _ => {
                            apply_json_patch(&mut doc, &patch)?;
                        }
                    }
                    let pinned =
                        meta_str(&doc, "resourceVersion") != meta_str(&cur, "resourceVersion");
                    let expected = if pinned { rv_of(&doc) } else { rv_of(&cur) };
                    let r = self
                        .finish_update(ctx, def, &cur, doc, sub, expected, false)
                        .await;
                    if pinned {
                        return r;
                    }
                    r
                }
            };
            match res {
                Err(e) if e.code == 409 && e.message.contains("the object has been modified") => {
                    continue;
                }
                other => return other,
            }
        }
        Err(ApiError::stale(&def.group, &def.plural, name))
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_patch(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        applied: &Value,
        sub: &str,
        force: bool,
        cur: Option<&Value>,
    ) -> ApiResult<Written> {
        let Some(manager) = ctx.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![FieldError::new(
                    K::Required,
                    "fieldManager",
                    None,
                    "is required for apply patch",
                )],
            ));
        };
        let api_version = def.api_version();
        if applied["apiVersion"].as_str() != Some(api_version.as_str())
            || applied["kind"].as_str() != Some(def.kind.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: /, Kind={}; the apply configuration must carry apiVersion {api_version} and kind {}",
                applied["kind"].as_str().unwrap_or_default(),
                def.kind
            )));
        }
        let applied_name = meta_str(applied, "name");
        if applied_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        let now = now();
        let req = ApplyRequest {
            manager: &manager,
            force,
            api_version: &api_version,
            subresource: sub,
            now: &now,
            schema: def.schema.as_deref(),
        };
        match cur {
            None => {
                if !sub.is_empty() {
                    return Err(ApiError::not_found(&def.group, &def.plural, name));
                }
                let mut merged =
                    apply::apply(&json!({}), applied, &req, &def.group, &def.plural, name)?;
                merged["apiVersion"] = json!(api_version);
                merged["kind"] = json!(def.kind);
                merged["metadata"]["name"] = json!(name);
                if def.namespaced {
                    merged["metadata"]["namespace"] = json!(ns);
                }
                self.create_inner(ctx, def, ns, merged, true).await
            }
            Some(cur) => {
                let merged = apply::apply(cur, applied, &req, &def.group, &def.plural, name)?;
                self.finish_update(ctx, def, cur, merged, sub, rv_of(cur), true)
                    .await
            }
        }
    }

    /// DELETE of one object, honouring preconditions, finalizers and propagation.
    pub async fn delete(
        &self,
        ctx: &Ctx,
        def: &Arc<ResourceDef>,
        ns: &str,
        name: &str,
        opts: &Value,
    ) -> ApiResult<Value> {
        let key = def.key();
        let cur = self
            .store
            .get(&key, ns, name)
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        let pre = &opts["preconditions"];
        if let Some(uid) = pre["uid"].as_str()
            && uid != meta_str(&cur, "uid")
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&cur, "uid")
                ),
            ));
        }
        check_resource_version_precondition(def, name, pre, &cur)?;
        if Self::admits(def, ctx) {
            let configs = self.webhook_configs("validatingwebhookconfigurations");
            if !configs.is_empty() {
                let a = self.attributes("DELETE", def, "", ns, name, Some(&cur), ctx);
                admission::validate(&configs, &a, None).await?;
            }
        }
        if ctx.dry_run {
            return Ok((*cur).clone());
        }
        // Admission may have taken a while: like the API server's guaranteed update, act on
        // the object as it is now (a status write meanwhile is no conflict for a DELETE),
        // unless the client pinned a resourceVersion.
        let cur = self
            .store
            .get(&key, ns, name)
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        check_resource_version_precondition(def, name, pre, &cur)?;
        let policy =
            opts["propagationPolicy"]
                .as_str()
                .unwrap_or(if opts["orphanDependents"] == true {
                    "Orphan"
                } else {
                    "Background"
                });
        let uid = meta_str(&cur, "uid").to_string();
        if policy == "Orphan" {
            self.orphan_dependents(&uid);
        }
        let mut fins = finalizers(&cur);
        let is_namespace = def.group.is_empty() && def.plural == "namespaces";
        if policy == "Foreground"
            && self.has_dependents(&uid)
            && !fins.iter().any(|f| f == "foregroundDeletion")
        {
            fins.push("foregroundDeletion".into());
        }
        if fins.is_empty() && !is_namespace {
            let gone = self.store.delete(&key, ns, name, None, false)?;
            self.on_removed(&key, &gone);
            self.gc();
            return Ok(gone);
        }
        let mut upd = (*cur).clone();
        if upd["metadata"]["deletionTimestamp"].is_null() {
            upd["metadata"]["deletionTimestamp"] = json!(now());
            upd["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if !fins.is_empty() {
            upd["metadata"]["finalizers"] = json!(fins);
        }
        if is_namespace {
            upd["status"]["phase"] = json!("Terminating");
        }
        let out = self.store.update(&key, upd, rv_of(&cur), false)?;
        self.gc();
        Ok(self
            .store
            .get(&key, ns, name)
            .map(|o| (*o).clone())
            .unwrap_or(out))
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.store.all().iter().any(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["uid"] == uid))
        })
    }

    fn orphan_dependents(&self, uid: &str) {
        for (key, o) in self.store.all() {
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array()
                && refs.iter().any(|r| r["uid"] == uid)
            {
                let mut upd = (*o).clone();
                let kept: Vec<Value> = refs.iter().filter(|r| r["uid"] != uid).cloned().collect();
                if kept.is_empty() {
                    upd["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                } else {
                    upd["metadata"]["ownerReferences"] = json!(kept);
                }
                let _ = self.store.update(&key, upd, rv_of(&o), false);
            }
        }
    }

    /// Side effects of an object leaving the store.
    fn on_removed(&self, key: &ResKey, obj: &Value) {
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            let group = obj["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let plural = obj["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let crkey = ResKey { group, plural };
            self.registry_mut().remove(&crkey);
            for o in self.store.list(&crkey, None).0 {
                let _ = self.store.delete(
                    &crkey,
                    meta_str(&o, "namespace"),
                    meta_str(&o, "name"),
                    None,
                    false,
                );
            }
        }
    }

    /// Deletes one object on behalf of a controller: finalizers are honoured.
    /// Returns whether anything changed.
    fn soft_delete(&self, key: &ResKey, obj: &Value) -> bool {
        let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            return false;
        }
        let is_namespace = key.group.is_empty() && key.plural == "namespaces";
        if finalizers(obj).is_empty() && !is_namespace {
            if let Ok(gone) = self.store.delete(key, ns, name, None, false) {
                self.on_removed(key, &gone);
                return true;
            }
            return false;
        }
        let mut upd = obj.clone();
        upd["metadata"]["deletionTimestamp"] = json!(now());
        upd["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if is_namespace {
            upd["status"]["phase"] = json!("Terminating");
        }
        self.store.update(key, upd, rv_of(obj), false).is_ok()
    }

    /// Garbage collection and namespace finalization, run to a fixed point after every
    /// deletion: dependents whose owners are all gone (or being deleted in the
    /// foreground) are deleted, dangling owner references dropped, `foregroundDeletion`
    /// finalizers released, and terminating namespaces emptied then removed.
    pub fn gc(&self) {
        for _ in 0..100 {
            let mut changed = false;
            let all = self.store.all();
            let by_uid: HashMap<String, &Arc<Value>> = all
                .iter()
                .map(|(_, o)| (meta_str(o, "uid").to_string(), o))
                .collect();
            let mut owners_with_dependents: HashSet<String> = HashSet::new();
            for (key, o) in &all {
                let Some(refs) = o["metadata"]["ownerReferences"]
                    .as_array()
                    .filter(|r| !r.is_empty())
                else {
                    continue;
                };
                let alive: Vec<&Value> = refs
                    .iter()
                    .filter(|r| by_uid.contains_key(r["uid"].as_str().unwrap_or_default()))
                    .collect();
                for r in &alive {
                    owners_with_dependents
                        .insert(r["uid"].as_str().unwrap_or_default().to_string());
                }
                let foreground = !alive.is_empty()
                    && alive.iter().all(|r| {
                        let owner = by_uid[r["uid"].as_str().unwrap_or_default()];
                        !owner["metadata"]["deletionTimestamp"].is_null()
                            && finalizers(owner).iter().any(|f| f == "foregroundDeletion")
                    });
                if alive.is_empty() || foreground {
                    changed |= self.soft_delete(key, o);
                } else if alive.len() < refs.len() {
                    let mut upd = (**o).clone();
                    upd["metadata"]["ownerReferences"] = json!(alive);
                    changed |= self.store.update(key, upd, rv_of(o), false).is_ok();
                }
            }
            for (key, o) in &all {
                let uid = meta_str(o, "uid");
                if !o["metadata"]["deletionTimestamp"].is_null()
                    && finalizers(o).iter().any(|f| f == "foregroundDeletion")
                    && !owners_with_dependents.contains(uid)
                {
                    let fins: Vec<String> = finalizers(o)
                        .into_iter()
                        .filter(|f| f != "foregroundDeletion")
                        .collect();
                    if fins.is_empty() {
                        if let Ok(gone) = self.store.delete(
                            key,
                            meta_str(o, "namespace"),
                            meta_str(o, "name"),
                            None,
                            false,
                        ) {
                            self.on_removed(key, &gone);
                            changed = true;
                        }
                    } else {
                        let mut upd = (**o).clone();
                        upd["metadata"]["finalizers"] = json!(fins);
                        changed |= self.store.update(key, upd, rv_of(o), false).is_ok();
                    }
                }
            }
            let terminating: Vec<&Arc<Value>> = all
                .iter()
                .filter(|(k, o)| {
                    k.group.is_empty()
                        && k.plural == "namespaces"
                        && !o["metadata"]["deletionTimestamp"].is_null()
                })
                .map(|(_, o)| o)
                .collect();
            for nso in terminating {
                let ns = meta_str(nso, "name");
                let contents: Vec<&(ResKey, Arc<Value>)> = all
                    .iter()
                    .filter(|(_, o)| meta_str(o, "namespace") == ns)
                    .collect();
                if contents.is_empty() {
                    if finalizers(nso).is_empty()
                        && let Ok(gone) = self.store.delete(
                            &ResKey {
                                group: String::new(),
                                plural: "namespaces".into(),
                            },
                            "",
                            ns,
                            None,
                            false,
                        )
                    {
                        self.on_removed(
                            &ResKey {
                                group: String::new(),
                                plural: "namespaces".into(),
                            },
                            &gone,
                        );
                        changed = true;
                    }
                } else {
                    for (k, o) in contents {
                        changed |= self.soft_delete(k, o);
                    }
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Read-modify-write by a simulated controller, retried on conflicts. `sub` is
    /// "status" for status writes. The closure returns false to skip the write.
    pub fn internal_modify(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        manager: &str,
        sub: &str,
        f: impl Fn(&mut Value) -> bool,
    ) -> Option<Value> {
        for _ in 0..10 {
            let cur = self.store.get(&def.key(), ns, name)?;
            let mut new = (*cur).clone();
            if !f(&mut new) {
                return Some((*cur).clone());
            }
            if def.has_generation
                && sub.is_empty()
                && strip_for_generation(&cur, def.status_subresource)
                    != strip_for_generation(&new, def.status_subresource)
            {
                let g = cur["metadata"]["generation"].as_i64().unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            apply::record_update(
                &cur,
                &mut new,
                manager,
                &def.api_version(),
                sub,
                &now(),
                def.schema.as_deref(),
            );
            match self.store.update(&def.key(), new, rv_of(&cur), false) {
                Ok(v) => {
                    if !v["metadata"]["deletionTimestamp"].is_null() && finalizers(&v).is_empty() {
                        if let Ok(gone) = self.store.delete(&def.key(), ns, name, None, false) {
                            self.on_removed(&def.key(), &gone);
                        }
                        self.gc();
                    }
                    return Some(v);
                }
                Err(e) if e.code == 409 => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Deletes on behalf of a simulated controller (finalizers honoured, GC run).
    pub fn internal_delete(&self, def: &ResourceDef, ns: &str, name: &str) -> bool {
        let Some(o) = self.store.get(&def.key(), ns, name) else {
            return false;
        };
        let changed = self.soft_delete(&def.key(), &o);
        self.gc();
        changed
    }
}

/// Applies an RFC 6902 JSON patch the way the Kubernetes API server does: like its Go
/// library, a `test` of `null` succeeds on a missing path (kube-runtime's finalizer helper
/// relies on that when an object has no finalizers yet).
fn apply_json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("error decoding patch: a JSON patch is an array"))?;
    for op in ops {
        let missing_null_test = op.get("op").and_then(Value::as_str) == Some("test")
            && op.get("value").is_some_and(Value::is_null)
            && op
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|path| doc.pointer(path).is_none());
        if missing_null_test {
            continue;
        }
        let single: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        json_patch::patch(doc, &single).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(())
}

/// A DELETE's `preconditions.resourceVersion`, checked as the API server does.
fn check_resource_version_precondition(
    def: &ResourceDef,
    name: &str,
    pre: &Value,
    cur: &Value,
) -> Result<(), ApiError> {
    if let Some(rv) = pre["resourceVersion"].as_str()
        && rv != meta_str(cur, "resourceVersion")
    {
        return Err(ApiError::conflict(
            &def.group,
            &def.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(cur, "resourceVersion")
            ),
        ));
    }
    Ok(())
}
