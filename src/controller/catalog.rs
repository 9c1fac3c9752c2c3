//! Reconcilers for the admin kinds: mirror VmNamespace, Cluster, InstanceSize and
//! VmTemplate into the catalog. These objects carry no identity stamp: who may write them is
//! decided by Kubernetes RBAC and the admission webhook's platform-permission check.

use super::status::{condition, denial_reason, patch_status, publish};
use super::{CONTROLLER_ACTOR, Context, ReconcileError};
use crate::app::{AppError, catalog};
use crate::crd::conditions::Condition;
use crate::crd::phase::CatalogPhase;
use crate::crd::{Cluster, InstanceSize, VmNamespace, VmTemplate};
use crate::db::catalog::ClusterAccess;
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
    report_with(ctx, obj, result, Vec::new(), Action::await_change()).await
}

/// `report`, with more conditions next to `Ready` and the action after success.
async fn report_with<K>(
    ctx: &Context,
    obj: &K,
    result: Result<(bool, Value), AppError>,
    more_conditions: Vec<Condition>,
    then: Action,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    let generation = obj.meta().generation;
    match result {
        Ok((changed, extra)) => {
            let mut conditions = vec![condition(
                "Ready",
                true,
                "Mirrored",
                "recorded in the platform catalog",
                generation,
            )];
            conditions.extend(more_conditions);
            let mut status = json!({
                "phase": CatalogPhase::Ready,
                "observedGeneration": generation,
                "conditions": conditions,
            });
            if let (Some(s), Value::Object(extra)) = (status.as_object_mut(), extra) {
                s.extend(extra);
            }
            patch_status(&api, obj, status).await?;
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
            Ok(then)
        }
        Err(err) => match denial_reason(&err) {
            Some(reason) => {
                let message = err.to_string();
                patch_status(
                    &api,
                    obj,
                    json!({
                        "phase": CatalogPhase::Error,
                        "observedGeneration": generation,
                        "conditions": [condition("Ready", false, reason, &message, generation)],
                    }),
                )
                .await?;
                publish(ctx, obj, true, reason, message).await;
                Ok(Action::await_change())
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
    let name = obj.name_any();
    let result = catalog::register_cluster(
        &ctx.pool,
        CONTROLLER_ACTOR,
        &name,
        &obj.spec,
        &uid(obj.as_ref())?,
    )
    .await;
    let (credentials, then) = match &result {
        Ok(_) => credentials_condition(&ctx, obj.as_ref()).await?,
        Err(_) => (Vec::new(), Action::await_change()),
    };
    report_with(
        &ctx,
        obj.as_ref(),
        result.map(|c| (c, json!({}))),
        credentials,
        then,
    )
    .await
}

/// `CredentialsReady`: whether a client can be built from the kubeconfig Secret the Cluster
/// names. Looked at again every few seconds (a GET of the Secret; status is written only
/// when it changes), so a Secret that appears, changes or disappears shows here soon
/// without watching Secrets cluster-wide.
async fn credentials_condition(
    ctx: &Context,
    obj: &Cluster,
) -> Result<(Vec<Condition>, Action), ReconcileError> {
    let generation = obj.meta().generation;
    let row = {
        let mut conn = ctx.pool.acquire().await.map_err(AppError::from)?;
        crate::db::catalog::live_cluster(&mut conn, &obj.name_any())
            .await
            .map_err(AppError::from)?
    };
    let Some(row) = row else {
        return Ok((Vec::new(), Action::requeue(CREDENTIALS_RECHECK)));
    };
    let secret = &obj.spec.kubeconfig_secret_ref;
    let access = ClusterAccess {
        id: row.id,
        name: row.name,
        environment: row.environment,
        secret_namespace: secret.namespace.clone(),
        secret_name: secret.name.clone(),
        secret_key: secret.key.clone(),
    };
    Ok(match ctx.clusters.get(&access).await {
        Ok(_) => (
            vec![condition(
                "CredentialsReady",
                true,
                "ClientBuilt",
                &format!(
                    "a client was built from Secret {}/{} (key {:?})",
                    secret.namespace, secret.name, secret.key
                ),
                generation,
            )],
            Action::requeue(CREDENTIALS_RECHECK),
        ),
        Err(err) => (
            vec![condition(
                "CredentialsReady",
                false,
                err.reason(),
                &err.to_string(),
                generation,
            )],
            Action::requeue(CREDENTIALS_RECHECK),
        ),
    })
}

/// How often a Cluster's credentials are looked at again.
const CREDENTIALS_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

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
