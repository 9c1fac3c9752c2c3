//! Writing status and Events: conditions by the Kubernetes API conventions, a `phase` for
//! humans, an Event on every transition.

use super::{Context, ReconcileError};
use crate::api::conditions::{Condition, ConditionStatus};
use crate::app::AppError;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now(),
    }
}

/// Merges `status` into the object's status subresource.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: Value) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

/// Records an Event on the object; failing to record one is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %err, reason, "could not record an Event");
    }
}

/// The reason a use-case refusal shows in status; None for errors worth retrying.
pub fn denial_reason(err: &AppError) -> Option<&'static str> {
    match err {
        AppError::Invalid { .. } => Some("InvalidSpec"),
        AppError::Forbidden(_) => Some("Forbidden"),
        AppError::NotFound { .. } => Some("NotFound"),
        AppError::Conflict(_) => Some("Conflict"),
        _ => None,
    }
}

/// Sets phase `Denied` with the reason and message and records a Warning Event. A denied
/// object is not retried until its spec changes (or, for immutable kinds, ever).
pub async fn deny<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    reason: &str,
    message: &str,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let generation = obj.meta().generation;
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(ReconcileError::MissingField("metadata.name"))?;
    let status = json!({
        "phase": "Denied",
        "observedGeneration": generation,
        "message": message,
        "conditions": [
            condition("Accepted", false, reason, message, generation),
            condition("Denied", true, reason, message, generation),
        ],
    });
    patch_status(api, &name, status).await?;
    publish(ctx, obj, true, reason, message.to_string()).await;
    Ok(())
}

/// True when the object was denied for its current generation: nothing to do again.
pub fn denied_for_generation(status: Option<&Value>, generation: Option<i64>) -> bool {
    status.is_some_and(|s| {
        s.get("phase").and_then(Value::as_str) == Some("Denied")
            && s.get("observedGeneration").and_then(Value::as_i64) == generation
    })
}

/// A referenced object (System, Service) is not registered yet, e.g. applied in the same
/// batch: say so in status and look again later instead of denying.
pub async fn wait_for_reference<K>(
    api: &Api<K>,
    obj: &K,
    message: &str,
) -> Result<kube::runtime::controller::Action, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let generation = obj.meta().generation;
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(ReconcileError::MissingField("metadata.name"))?;
    patch_status(api, &name, json!({
        "phase": "Pending",
        "observedGeneration": generation,
        "message": format!("waiting: {message}"),
        "conditions": [condition("Accepted", false, "WaitingForReference", message, generation)],
    }))
    .await?;
    Ok(kube::runtime::controller::Action::requeue(
        std::time::Duration::from_secs(5),
    ))
}
