//! Creating objects (POST to a collection), including registering a CRD's resources.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Core, Ctx, FieldValidation, Written, now};
use crate::admission;
use crate::apply;
use crate::error::{ApiError, ApiResult, FieldError, FieldErrorKind as K};
use crate::resources::{self, ResKey, ResourceDef};
use crate::store::{meta_str, rv_of};

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

impl Core {
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

    pub(super) async fn create_inner(
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
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["status"] = json!({"phase": "Active"});
            }
            "Secret" if def.group.is_empty() && obj["type"].as_str().unwrap_or("").is_empty() => {
                obj["type"] = json!("Opaque");
            }
            "CustomResourceDefinition" => obj["status"] = json!({}),
            _ => {}
        }
        crate::workloads::on_create(def, &mut obj);
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
    pub(super) fn crd_established(&self, crd: &Value) -> ApiResult<Value> {
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
}
