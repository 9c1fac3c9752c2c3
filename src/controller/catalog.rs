//! Reconcilers for the admin kinds: mirror VmNamespace, Cluster, InstanceSize and
//! VmTemplate into the catalog. These objects carry no identity stamp: who may write them is
//! decided by Kubernetes RBAC and the admission webhook's platform-permission check.

use super::stamped::{Reconciled, deletion_actor, removed, uid_of, with_finalizer};
use super::status::{condition, denial_reason, patch_status, publish};
use super::{CONTROLLER_ACTOR, Context, ReconcileError};
use crate::app::catalog::CatalogKind;
use crate::app::job_args::ProbeCluster;
use crate::app::{AppError, catalog};
use crate::crd::conditions::{Condition, ConditionStatus};
use crate::crd::phase::CatalogPhase;
use crate::crd::{Cluster, InstanceSize, VmNamespace, VmTemplate};
use crate::db::catalog::{ClusterAccess, ScanState};
use crate::domain::cluster_probe::Capabilities;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

async fn report<K>(
    ctx: &Context,
    obj: &K,
    result: Result<(bool, Value), AppError>,
) -> Result<Action, ReconcileError>
where
    K: Reconciled,
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
    K: Reconciled,
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

/// The four catalog kinds: mirrored while they exist (`apply`); their deletion is a soft
/// delete, held by the finalizer while something uses them.
async fn mirrored<K, A, AF>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    kind: CatalogKind,
    apply: A,
) -> Result<Action, ReconcileError>
where
    K: Reconciled + Send + Sync + 'static,
    A: FnOnce(Arc<K>, Arc<Context>) -> AF,
    AF: Future<Output = Result<Action, ReconcileError>>,
{
    let api: Api<K> = Api::all(ctx.client.clone());
    with_finalizer(
        &api,
        obj,
        |obj| apply(obj, ctx.clone()),
        |obj| remove_from_catalog(&ctx, &api, obj, kind),
    )
    .await
}

pub async fn reconcile_namespace(
    obj: Arc<VmNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    mirrored(obj, ctx, CatalogKind::VmNamespace, apply_namespace).await
}

pub async fn reconcile_cluster(
    obj: Arc<Cluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    mirrored(obj, ctx, CatalogKind::Cluster, apply_cluster).await
}

pub async fn reconcile_instance_size(
    obj: Arc<InstanceSize>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    mirrored(obj, ctx, CatalogKind::InstanceSize, apply_instance_size).await
}

pub async fn reconcile_template(
    obj: Arc<VmTemplate>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    mirrored(obj, ctx, CatalogKind::VmTemplate, apply_template).await
}

/// Who made the object's spec what it is, as admission recorded it (else the controller).
async fn change_actor<K: Resource, T: serde::Serialize>(
    ctx: &Context,
    kind: &str,
    obj: &K,
    spec: &T,
) -> Result<String, ReconcileError> {
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(
        crate::app::stamps::catalog_change_actor(&ctx.pool, kind, &name, spec, CONTROLLER_ACTOR)
            .await?,
    )
}

async fn remove_from_catalog<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: Arc<K>,
    kind: CatalogKind,
) -> Result<Action, ReconcileError>
where
    K: Reconciled,
{
    let actor = deletion_actor(ctx, obj.as_ref()).await?;
    let removal = catalog::remove(&ctx.pool, &actor, kind, &obj.name_any()).await;
    removed(ctx, api, obj.as_ref(), removal).await
}

async fn apply_namespace(
    obj: Arc<VmNamespace>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    let result = catalog::register_namespace(
        &ctx.pool,
        &change_actor(ctx, "VmNamespace", obj.as_ref(), &obj.spec).await?,
        &obj.name_any(),
        &obj.spec,
        &uid_of(obj.as_ref())?,
    )
    .await;
    report(ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await
}

async fn apply_cluster(obj: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    let name = obj.name_any();
    let result = catalog::register_cluster(
        &ctx.pool,
        &change_actor(ctx, "Cluster", obj.as_ref(), &obj.spec).await?,
        &name,
        &obj.spec,
        &uid_of(obj.as_ref())?,
    )
    .await;
    if result.is_err() {
        return report(ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await;
    }
    let (mut conditions, client_generation) = credentials_condition(ctx, obj.as_ref()).await?;
    request_probe(ctx, obj.as_ref(), client_generation).await?;
    let (probe_status, healthy) = probe_status(ctx, obj.as_ref()).await?;
    conditions.extend(healthy);
    report_with(
        ctx,
        obj.as_ref(),
        result.map(|c| (c, probe_status)),
        conditions,
        Action::requeue(CREDENTIALS_RECHECK),
    )
    .await
}

/// Asks for a probe at once when the Cluster's spec or its kubeconfig Secret (hence the
/// client built from it) changed since this process last asked; the periodic probe covers
/// the rest. River keeps at most one probe per cluster waiting.
async fn request_probe(
    ctx: &Context,
    obj: &Cluster,
    client_generation: Option<u64>,
) -> Result<(), ReconcileError> {
    let fingerprint = (obj.meta().generation, client_generation);
    let name = obj.name_any();
    if ctx
        .probe_fingerprints
        .lock()
        .expect("probe fingerprints")
        .get(&name)
        == Some(&fingerprint)
    {
        return Ok(());
    }
    let id = {
        let mut conn = ctx.pool.acquire().await.map_err(AppError::from)?;
        crate::db::catalog::live_cluster(&mut conn, &name)
            .await
            .map_err(AppError::from)?
            .map(|row| row.id)
    };
    if let Some(cluster_id) = id {
        ctx.river
            .insert(ProbeCluster { cluster_id })
            .await
            .map_err(AppError::from)?;
        ctx.probe_fingerprints
            .lock()
            .expect("probe fingerprints")
            .insert(name, fingerprint);
    }
    Ok(())
}

/// The probe's findings as status fields, and the `Healthy` condition. A changed KubeVirt
/// version is announced with an Event.
async fn probe_status(
    ctx: &Context,
    obj: &Cluster,
) -> Result<(Value, Vec<Condition>), ReconcileError> {
    let state = {
        let mut conn = ctx.pool.acquire().await.map_err(AppError::from)?;
        crate::db::catalog::probe_state(&mut conn, &obj.name_any())
            .await
            .map_err(AppError::from)?
    };
    let Some(state) = state else {
        return Ok((json!({}), Vec::new()));
    };
    let scan = {
        let mut conn = ctx.pool.acquire().await.map_err(AppError::from)?;
        crate::db::catalog::scan_state(&mut conn, &obj.name_any())
            .await
            .map_err(AppError::from)?
    };
    let generation = obj.meta().generation;
    let capabilities: Capabilities =
        serde_json::from_value(state.capabilities.clone()).unwrap_or_default();
    let healthy = match state.health_reason.as_deref() {
        Some(reason) => condition(
            "Healthy",
            state.health == "Healthy",
            reason,
            state.health_message.as_deref().unwrap_or_default(),
            generation,
        ),
        None => condition(
            "Healthy",
            false,
            "NotProbed",
            "the cluster has not been probed yet",
            generation,
        ),
    };
    let shown = obj.status.as_ref().and_then(|s| s.kubevirt_version.clone());
    if let (Some(before), Some(now)) = (&shown, &state.kubevirt_version)
        && before != now
    {
        publish(
            ctx,
            obj,
            false,
            "KubeVirtVersionChanged",
            format!("KubeVirt changed from {before} to {now}"),
        )
        .await;
    }
    let mut conditions = vec![healthy];
    if let Some(scan) = &scan {
        conditions.push(consistent_condition(scan, generation));
    }
    let status = json!({
        "orphans": scan.as_ref().filter(|s| s.last_scan_at.is_some()).map(|s| s.orphan_count),
        "driftedVms": scan.as_ref().filter(|s| s.last_scan_at.is_some()).map(|s| s.drifted_count),
        "health": state.health,
        "kubevirtVersion": state.kubevirt_version,
        "storageClasses": capabilities.storage_classes,
        "capabilities": capabilities.summary(),
        "lastProbeTime": state.health_changed_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    });
    Ok((status, conditions))
}

/// `Consistent`: whether the last drift scan found the cluster as PostgreSQL records it.
fn consistent_condition(scan: &ScanState, generation: Option<i64>) -> Condition {
    if scan.last_scan_at.is_none() {
        // Not known either way yet: Unknown, not False.
        return Condition {
            status: ConditionStatus::Unknown,
            ..condition(
                "Consistent",
                false,
                "NotScanned",
                "the cluster has not been scanned for drift yet",
                generation,
            )
        };
    }
    if let Some(why) = &scan.scan_suspect {
        return condition("Consistent", false, "Suspect", why, generation);
    }
    if scan.orphan_count > 0 || scan.drifted_count > 0 {
        let message = format!(
            "{} VMs with the platform's label are unknown to it (orphans); {} recorded VMs were \
             changed by another field manager (drift)",
            scan.orphan_count, scan.drifted_count
        );
        return condition("Consistent", false, "Drift", &message, generation);
    }
    condition(
        "Consistent",
        true,
        "Consistent",
        "the cluster holds the VMs recorded for it, unchanged",
        generation,
    )
}

/// `CredentialsReady`: whether a client can be built from the kubeconfig Secret the Cluster
/// names. Looked at again every few seconds (a GET of the Secret; status is written only
/// when it changes), so a Secret that appears, changes or disappears shows here soon
/// without watching Secrets cluster-wide.
async fn credentials_condition(
    ctx: &Context,
    obj: &Cluster,
) -> Result<(Vec<Condition>, Option<u64>), ReconcileError> {
    let generation = obj.meta().generation;
    let row = {
        let mut conn = ctx.pool.acquire().await.map_err(AppError::from)?;
        crate::db::catalog::live_cluster(&mut conn, &obj.name_any())
            .await
            .map_err(AppError::from)?
    };
    let Some(row) = row else {
        return Ok((Vec::new(), None));
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
        Ok(target) => (
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
            Some(target.generation),
        ),
        Err(err) => (
            vec![condition(
                "CredentialsReady",
                false,
                err.reason(),
                &err.to_string(),
                generation,
            )],
            None,
        ),
    })
}

/// How often a Cluster's credentials (and the probe's findings) are looked at again.
const CREDENTIALS_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

async fn apply_instance_size(
    obj: Arc<InstanceSize>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    let result = catalog::register_instance_size(
        &ctx.pool,
        &change_actor(ctx, "InstanceSize", obj.as_ref(), &obj.spec).await?,
        &obj.name_any(),
        &obj.spec,
        &uid_of(obj.as_ref())?,
    )
    .await;
    report(ctx, obj.as_ref(), result.map(|c| (c, json!({})))).await
}

async fn apply_template(obj: Arc<VmTemplate>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    let previous = obj.status.as_ref().and_then(|s| s.current_version);
    let result = catalog::register_template(
        &ctx.pool,
        &change_actor(ctx, "VmTemplate", obj.as_ref(), &obj.spec).await?,
        &obj.name_any(),
        &obj.spec,
        &uid_of(obj.as_ref())?,
    )
    .await;
    report(
        ctx,
        obj.as_ref(),
        result.map(|v| (previous != Some(v), json!({"currentVersion": v}))),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(suspect: Option<&str>, orphans: i32, drifted: i32, scanned: bool) -> ScanState {
        ScanState {
            scan_suspect: suspect.map(String::from),
            orphan_count: orphans,
            drifted_count: drifted,
            last_scan_at: scanned.then(chrono::Utc::now),
        }
    }

    #[test]
    fn the_consistent_condition_names_what_the_last_scan_found() {
        let cases = [
            (scan(None, 0, 0, false), "Unknown", "NotScanned"),
            (scan(Some("2 of the 2 VMs"), 3, 0, true), "False", "Suspect"),
            (scan(None, 1, 0, true), "False", "Drift"),
            (scan(None, 0, 2, true), "False", "Drift"),
            (scan(None, 0, 0, true), "True", "Consistent"),
        ];
        for (state, status, reason) in cases {
            let c = consistent_condition(&state, Some(3));
            assert_eq!(c.type_, "Consistent");
            let shown = serde_json::to_value(&c).unwrap();
            assert_eq!(
                (shown["status"].as_str(), c.reason.as_str()),
                (Some(status), reason)
            );
        }
        let suspect = consistent_condition(&scan(Some("2 of the 2 VMs"), 0, 0, true), None);
        assert_eq!(suspect.message, "2 of the 2 VMs");
    }
}
