//! System and Service reconcilers: mirror into PostgreSQL (creator becomes owner), and hold
//! deletion with a finalizer until the database agrees (no live children).

use super::stamped::{
    Reconciled, deletion_actor, removed, uid_of, verified_requester, with_finalizer,
};
use super::status::{condition, denial_reason, deny, patch_status, publish, wait_for_reference};
use super::{Context, ReconcileError};
use crate::app::AppError;
use crate::app::systems::{
    register_service, register_system, remove_service, remove_system, split_service_name,
};
use crate::crd::phase::RegistrationPhase;
use crate::crd::{Service, System};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;

pub async fn reconcile_system(
    obj: Arc<System>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api: Api<System> = Api::all(ctx.client.clone());
    with_finalizer(
        &api,
        obj,
        |system| apply_system(&api, system, &ctx),
        |system| cleanup_system(&api, system, &ctx),
    )
    .await
}

async fn cleanup_system(
    api: &Api<System>,
    system: Arc<System>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let uid = uid_of(system.as_ref())?;
    let actor = deletion_actor(ctx, system.as_ref()).await?;
    let removal = remove_system(&ctx.pool, &actor, &uid).await;
    removed(ctx, api, system.as_ref(), removal).await
}

async fn apply_system(
    api: &Api<System>,
    system: Arc<System>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let obj = system.as_ref();
    let Some((caller, uid)) = verified_requester(ctx, api, obj, obj.status.as_ref()).await? else {
        return Ok(Action::await_change());
    };
    let name = obj.name_any();
    match register_system(&ctx.pool, &caller, &name, &obj.spec.description, &uid).await {
        Ok(r) => {
            let note = format!("owned by {}", caller.username);
            let owner = json!({"owner": caller.username});
            registered(owner, ctx, api, obj, r.created, &note).await
        }
        Err(e) => refused(ctx, api, obj, e).await,
    }
}

pub async fn reconcile_service(
    obj: Arc<Service>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let api: Api<Service> = Api::all(ctx.client.clone());
    with_finalizer(
        &api,
        obj,
        |service| apply_service(&api, service, &ctx),
        |service| cleanup_service(&api, service, &ctx),
    )
    .await
}

async fn cleanup_service(
    api: &Api<Service>,
    service: Arc<Service>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let uid = uid_of(service.as_ref())?;
    let actor = deletion_actor(ctx, service.as_ref()).await?;
    let removal = remove_service(&ctx.pool, &actor, &uid).await;
    removed(ctx, api, service.as_ref(), removal).await
}

async fn apply_service(
    api: &Api<Service>,
    service: Arc<Service>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let obj = service.as_ref();
    let Some((caller, uid)) = verified_requester(ctx, api, obj, obj.status.as_ref()).await? else {
        return Ok(Action::await_change());
    };
    let object_name = obj.name_any();
    let registration = match split_service_name(&object_name) {
        Ok((system, name)) if system == obj.spec.system => {
            register_service(
                &ctx.pool,
                &caller,
                system,
                name,
                &obj.spec.description,
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
    match registration {
        Ok(r) => {
            let note = format!("in system {}", obj.spec.system);
            registered(json!({}), ctx, api, obj, r.created, &note).await
        }
        Err(e) => refused(ctx, api, obj, e).await,
    }
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
