//! System and Service reconcilers: mirror into PostgreSQL (creator becomes owner), and hold
//! deletion with a finalizer until the database agrees (no live children).

use super::status::{
    condition, denial_reason, denied_for_generation, deny, patch_status, publish,
    wait_for_reference,
};
use super::{CONTROLLER_ACTOR, Context, FINALIZER, ReconcileError, verified_caller};
use crate::api::phase::RegistrationPhase;
use crate::api::{Service, System};
use crate::app::AppError;
use crate::app::systems::{
    register_service, register_system, remove_service, remove_system, split_service_name,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

pub async fn reconcile_system(
    obj: Arc<System>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api: Api<System> = Api::all(ctx.client.clone());
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(system) => {
                let status = system
                    .status
                    .as_ref()
                    .map(|s| serde_json::to_value(s).unwrap_or_default());
                if denied_for_generation(status.as_ref(), system.metadata.generation) {
                    return Ok(Action::await_change());
                }
                let caller = match verified_caller(&ctx.identity_key, system.as_ref()) {
                    Ok(c) => c,
                    Err(e) => {
                        return denied(
                            &ctx,
                            &api,
                            system.as_ref(),
                            "UnverifiedIdentity",
                            &e.to_string(),
                        )
                        .await;
                    }
                };
                let uid = system
                    .uid()
                    .ok_or(ReconcileError::MissingField("metadata.uid"))?;
                match register_system(
                    &ctx.pool,
                    &caller,
                    &system.name_any(),
                    &system.spec.description,
                    &uid,
                )
                .await
                {
                    Ok(r) => {
                        registered(
                            json!({"owner": caller.username}),
                            &ctx,
                            &api,
                            system.as_ref(),
                            r.created,
                            &format!("owned by {}", caller.username),
                        )
                        .await
                    }
                    Err(e) => refused(&ctx, &api, system.as_ref(), e).await,
                }
            }
            Event::Cleanup(system) => {
                let uid = system
                    .uid()
                    .ok_or(ReconcileError::MissingField("metadata.uid"))?;
                removed(
                    &ctx,
                    &api,
                    system.as_ref(),
                    remove_system(&ctx.pool, CONTROLLER_ACTOR, &uid).await,
                )
                .await
            }
        }
    })
    .await?;
    Ok(action)
}

pub async fn reconcile_service(
    obj: Arc<Service>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api: Api<Service> = Api::all(ctx.client.clone());
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(service) => {
                let status = service
                    .status
                    .as_ref()
                    .map(|s| serde_json::to_value(s).unwrap_or_default());
                if denied_for_generation(status.as_ref(), service.metadata.generation) {
                    return Ok(Action::await_change());
                }
                let caller = match verified_caller(&ctx.identity_key, service.as_ref()) {
                    Ok(c) => c,
                    Err(e) => {
                        return denied(
                            &ctx,
                            &api,
                            service.as_ref(),
                            "UnverifiedIdentity",
                            &e.to_string(),
                        )
                        .await;
                    }
                };
                let uid = service
                    .uid()
                    .ok_or(ReconcileError::MissingField("metadata.uid"))?;
                let object_name = service.name_any();
                let registered_service = match split_service_name(&object_name) {
                    Ok((system, name)) if system == service.spec.system => {
                        register_service(
                            &ctx.pool,
                            &caller,
                            system,
                            name,
                            &service.spec.description,
                            &uid,
                        )
                        .await
                    }
                    Ok(_) => Err(AppError::Invalid {
                        field: "metadata.name".into(),
                        rule: "must start with spec.system followed by '.'".into(),
                    }),
                    Err(e) => Err(e),
                };
                match registered_service {
                    Ok(r) => {
                        registered(
                            json!({}),
                            &ctx,
                            &api,
                            service.as_ref(),
                            r.created,
                            &format!("in system {}", service.spec.system),
                        )
                        .await
                    }
                    Err(e) => refused(&ctx, &api, service.as_ref(), e).await,
                }
            }
            Event::Cleanup(service) => {
                let uid = service
                    .uid()
                    .ok_or(ReconcileError::MissingField("metadata.uid"))?;
                removed(
                    &ctx,
                    &api,
                    service.as_ref(),
                    remove_service(&ctx.pool, CONTROLLER_ACTOR, &uid).await,
                )
                .await
            }
        }
    })
    .await?;
    Ok(action)
}

trait Reconciled:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug
{
}
impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug>
    Reconciled for K
{
}

async fn denied<K: Reconciled>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    reason: &str,
    message: &str,
) -> Result<Action, ReconcileError> {
    deny(ctx, api, obj, reason, message).await?;
    Ok(Action::await_change())
}

/// `extra` adds kind-specific status fields (a System's owner).
async fn registered<K: Reconciled>(
    extra: serde_json::Value,
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    created: bool,
    note: &str,
) -> Result<Action, ReconcileError> {
    let generation = obj.meta().generation;
    let message = format!("registered, {note}");
    let mut status = json!({
        "phase": RegistrationPhase::Active,
        "observedGeneration": generation,
        "conditions": [condition("Ready", true, "Registered", &message, generation)],
    });
    if let (Some(status), serde_json::Value::Object(extra)) = (status.as_object_mut(), extra) {
        status.extend(extra);
    }
    patch_status(api, obj, status).await?;
    if created {
        publish(ctx, obj, false, "Registered", message).await;
    }
    Ok(Action::await_change())
}

async fn refused<K: Reconciled>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    err: AppError,
) -> Result<Action, ReconcileError> {
    if matches!(err, AppError::NotFound { .. }) {
        return wait_for_reference(api, obj, &err.to_string()).await;
    }
    match denial_reason(&err) {
        Some(reason) => denied(ctx, api, obj, reason, &err.to_string()).await,
        None => Err(err.into()),
    }
}

/// Deletion: released once the row is gone; a refusal (live children) keeps the finalizer,
/// says why in status, and retries with backoff.
async fn removed<K: Reconciled>(
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
