//! Reconcilers for the admin kinds: mirror VmNamespace, Cluster, InstanceSize and
//! VmTemplate into the catalog. These objects carry no identity stamp: who may write them is
//! decided by Kubernetes RBAC and the admission webhook's platform-permission check.

use super::status::{condition, denial_reason, patch_status, publish};
use super::{CONTROLLER_ACTOR, Context, ReconcileError, done};
use crate::api::{Cluster, InstanceSize, VmNamespace, VmTemplate};
use crate::app::{AppError, catalog};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

async fn report<K>(
    ctx: &Context,
    obj: &K,
    result: Result<(bool, Value), AppError>,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    let generation = obj.meta().generation;
    let name = obj.meta().name.clone().unwrap_or_default();
    match result {
        Ok((changed, extra)) => {
            let mut status = json!({
                "phase": "Ready",
                "observedGeneration": generation,
                "conditions": [condition("Ready", true, "Mirrored", "recorded in the platform catalog", generation)],
            });
            if let (Some(s), Value::Object(extra)) = (status.as_object_mut(), extra) {
                s.extend(extra);
            }
            patch_status(&api, &name, status).await?;
            if changed {
                publish(
                    ctx,
                    obj,
                    false,
                    "Mirrored",
                    "recorded in the platform catalog".into(),
                )
                .await;
            }
            done(ctx, obj, Action::await_change())
        }
        Err(err) => match denial_reason(&err) {
            Some(reason) => {
                let message = err.to_string();
                patch_status(
                    &api,
                    &name,
                    json!({
                        "phase": "Error",
                        "observedGeneration": generation,
                        "conditions": [condition("Ready", false, reason, &message, generation)],
                    }),
                )
                .await?;
                publish(ctx, obj, true, reason, message).await;
                done(ctx, obj, Action::await_change())
            }
            None => Err(err.into()),
        },
    }
}

fn uid<K: Resource>(obj: &K) -> Result<String, ReconcileError> {
    obj.meta()
        .uid
        .clone()
        .ok_or(ReconcileError::MissingField("metadata.uid"))
}

pub async fn reconcile_namespace(
    obj: Arc<VmNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let result = catalog::register_namespace(
        &ctx.pool,
        CONTROLLER_ACTOR,
        &obj.name_any(),
        &obj.spec,
        &uid(obj.as_ref())?,
    )
    .await;
    report(&ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await
}

pub async fn reconcile_cluster(
    obj: Arc<Cluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let result = catalog::register_cluster(
        &ctx.pool,
        CONTROLLER_ACTOR,
        &obj.name_any(),
        &obj.spec,
        &uid(obj.as_ref())?,
    )
    .await;
    report(&ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await
}

pub async fn reconcile_instance_size(
    obj: Arc<InstanceSize>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let result = catalog::register_instance_size(
        &ctx.pool,
        CONTROLLER_ACTOR,
        &obj.name_any(),
        &obj.spec,
        &uid(obj.as_ref())?,
    )
    .await;
    report(&ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await
}

pub async fn reconcile_template(
    obj: Arc<VmTemplate>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let previous = obj.status.as_ref().and_then(|s| s.current_version);
    let result = catalog::register_template(
        &ctx.pool,
        CONTROLLER_ACTOR,
        &obj.name_any(),
        &obj.spec,
        &uid(obj.as_ref())?,
    )
    .await;
    report(
        &ctx,
        obj.as_ref(),
        result.map(|v| (previous != Some(v), json!({"currentVersion": v}))),
    )
    .await
}
