//! What reconcilers do around their own work, in one place: the finalizer that holds
//! deletion until PostgreSQL agrees (every kind that mirrors a row), the answer to a refused
//! deletion, and, for the kinds the webhook stamps (System, Service, VmRequest,
//! VmOperation), the preamble that never trusts the webhook ran (a generation already denied
//! stays denied; the identity stamp must verify).

use super::status::{condition, denied_for_generation, deny, patch_status, publish};
use super::{Context, FINALIZER, ReconcileError, stamped_caller, verified_stamp};
use crate::app::AppError;
use crate::app::access::Caller;
use crate::crd::phase::RegistrationPhase;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

/// A management-cluster object a reconciler patches and records Events for.
pub(crate) trait Reconciled:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug
{
}

impl<K> Reconciled for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug
{
}

/// Runs `apply` for a live object and `cleanup` for one being deleted, with the finalizer
/// added before the first apply and removed after a successful cleanup.
pub(crate) async fn with_finalizer<K, A, AF, C, CF>(
    api: &Api<K>,
    obj: Arc<K>,
    apply: A,
    cleanup: C,
) -> Result<Action, ReconcileError>
where
    K: Reconciled + Send + Sync + 'static,
    A: FnOnce(Arc<K>) -> AF,
    AF: Future<Output = Result<Action, ReconcileError>>,
    C: FnOnce(Arc<K>) -> CF,
    CF: Future<Output = Result<Action, ReconcileError>>,
{
    let action = finalizer(api, FINALIZER, obj, |event| async move {
        match event {
            Event::Apply(obj) => apply(obj).await,
            Event::Cleanup(obj) => cleanup(obj).await,
        }
    })
    .await?;
    Ok(action)
}

/// The object's uid; every stamped object has one once stored.
pub(crate) fn uid_of<K: Resource>(obj: &K) -> Result<String, ReconcileError> {
    obj.uid()
        .ok_or(ReconcileError::MissingField("metadata.uid"))
}

/// The preamble of an apply. `None` ends the reconcile: this generation was denied already,
/// or the identity stamp does not verify or was used by another object (denied now,
/// `UnverifiedIdentity`). Otherwise the
/// verified requester and the object's uid.
pub(crate) async fn verified_requester<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    status: Option<&S>,
) -> Result<Option<(Caller, String)>, ReconcileError>
where
    K: Reconciled,
    S: Serialize,
{
    let status = status.map(|s| serde_json::to_value(s).unwrap_or_default());
    if denied_for_generation(status.as_ref(), obj.meta().generation) {
        return Ok(None);
    }
    match verified_stamp(ctx, obj).await? {
        Ok(stamp) => Ok(Some((stamped_caller(&stamp), uid_of(obj)?))),
        Err(reason) => {
            deny(ctx, api, obj, "UnverifiedIdentity", &reason).await?;
            Ok(None)
        }
    }
}

/// Who the audit rows of a deletion name: the person admission saw asking for it, or the
/// controller when nobody was recorded.
pub(crate) async fn deletion_actor<K: Resource>(
    ctx: &Context,
    obj: &K,
) -> Result<String, ReconcileError> {
    let uid = uid_of(obj)?;
    Ok(crate::app::stamps::deletion_actor(&ctx.pool, &uid, super::CONTROLLER_ACTOR).await?)
}

/// Deletion: released once the row is gone; a refusal (still in use) keeps the finalizer,
/// says why in status (phase `DeletionBlocked`, spelled alike for registrations and catalog
/// objects) and with a Warning Event, and retries with backoff.
pub(crate) async fn removed<K: Reconciled>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    result: Result<(), AppError>,
) -> Result<Action, ReconcileError> {
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(err @ AppError::Conflict(_)) => {
            let generation = obj.meta().generation;
            let message = err.to_string();
            patch_status(api, obj, json!({
                "phase": RegistrationPhase::DeletionBlocked,
                "conditions": [condition("Ready", false, "DeletionBlocked", &message, generation)],
            }))
            .await?;
            publish(ctx, obj, true, "DeletionBlocked", message).await;
            Err(err.into())
        }
        Err(err) => Err(err.into()),
    }
}
