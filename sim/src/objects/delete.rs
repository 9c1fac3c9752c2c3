//! Deleting objects: DELETE with preconditions and propagation policies, finalizers,
//! ownerReference garbage collection and namespace termination.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Core, Ctx, finalizers, now};
use crate::admission;
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResKey, ResourceDef};
use crate::store::{meta_str, rv_of};

impl Core {
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
    pub(super) fn on_removed(&self, key: &ResKey, obj: &Value) {
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
    pub(super) fn soft_delete(&self, key: &ResKey, obj: &Value) -> bool {
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
