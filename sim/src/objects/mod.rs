//! The request-handling core of a simulated API server: object semantics shared by the
//! HTTP handlers and the simulated controllers. Create, update, patch and delete follow the
//! real server's rules (uid, generation, status subresource, schema, admission,
//! managedFields, finalizers, garbage collection).
//!
//! - `validation`: ObjectMeta checks, schema pruning/defaulting and validation.
//! - `create`: POST, including CRD registration.
//! - `update`: PUT and the update path shared with patches and apply.
//! - `patch`: JSON, merge, strategic merge and server-side apply patches.
//! - `delete`: DELETE, finalizers, garbage collection and namespace termination.
//! - `internal`: writes by the simulator's own controllers.

mod create;
mod delete;
mod internal;
mod patch;
mod update;
mod validation;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::admission::Attributes;
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::resources::{Registry, ResKey, ResourceDef};
use crate::store::Store;

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
    /// AlwaysAllow or RBAC (`crate::rbac`).
    pub authorization: crate::rbac::Mode,
    /// ServiceAccount tokens issued at run time (`crate::tokens`).
    pub tokens: crate::tokens::Tokens,
    /// Services reachable by admission webhooks (`SimCluster::route_service`).
    pub service_routes: crate::admission::ServiceRoutes,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
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
        &'a self,
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
            routes: &self.service_routes,
        }
    }

    /// Admission webhooks never see writes to webhook configurations (as in the real
    /// server, so a broken webhook cannot lock itself in).
    fn admits(def: &ResourceDef, ctx: &Ctx) -> bool {
        !ctx.internal && def.group != "admissionregistration.k8s.io"
    }
}
