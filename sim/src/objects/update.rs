//! Updating objects (PUT of a whole object or its status), and the update path shared
//! with patches and server-side apply: immutable metadata, the status subresource,
//! admission, generation, managedFields and finalizer-driven removal.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Core, Ctx, FieldValidation, Written, finalizers, now, strip_for_generation};
use crate::admission;
use crate::apply;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::resources::ResourceDef;
use crate::store::{meta_str, rv_of};

impl Core {
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
    pub(super) async fn finish_update(
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
        if def.group.is_empty() && def.plural == "namespaces" {
            // Like the real namespace strategy, the name label always follows the name.
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        let mut warnings = vec![];
        Self::prepare_schema(def, &mut new, ctx.validation, &mut warnings)?;
        crate::workloads::defaults(def, &mut new);
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
}
