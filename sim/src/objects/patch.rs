//! PATCH in its four types: RFC 6902 JSON patch, RFC 7386 merge patch, strategic merge
//! patch (approximated for built-ins) and server-side apply.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Core, Ctx, PatchType, Written, now};
use crate::apply::{self, ApplyRequest};
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::resources::ResourceDef;
use crate::store::{meta_str, rv_of};

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
