//! Writing status and Events: conditions by the Kubernetes API conventions, a `phase` for
//! humans, an Event on every transition.

use super::{Context, ReconcileError};
use crate::app::{AppError, ErrorKind};
use crate::crd::conditions::{Condition, ConditionStatus};
use crate::crd::phase::RequestPhase;
use crate::domain::TicketStatus;
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

/// Merges `desired` into the object's status subresource, but only when it differs from
/// what `obj` shows (an idle system writes nothing). A condition whose status is unchanged
/// keeps its `lastTransitionTime` (Kubernetes API conventions). True when it wrote.
pub async fn patch_status<K>(api: &Api<K>, obj: &K, desired: Value) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    Ok(patch_status_since(api, obj, desired).await?.is_some())
}

fn status_of<K: Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj)
        .ok()
        .and_then(|o| o.get("status").cloned())
        .unwrap_or(Value::Null)
}

/// `patch_status`, returning the status it replaced when it wrote. When the cached object
/// differs from `desired`, the object is read from the API server first: the cache can lag
/// behind this controller's own last write, and comparing with it would write again and
/// report the same change twice (one Event per transition).
pub async fn patch_status_since<K>(
    api: &Api<K>,
    obj: &K,
    mut desired: Value,
) -> Result<Option<Value>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let cached = status_of(obj);
    let mut against_cache = desired.clone();
    keep_transition_times(&cached, &mut against_cache);
    if !differs(&cached, &against_cache) {
        return Ok(None);
    }
    let name = obj.meta().name.clone().unwrap_or_default();
    let current = status_of(&api.get_status(&name).await?);
    keep_transition_times(&current, &mut desired);
    if !differs(&current, &desired) {
        return Ok(None);
    }
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": desired})),
    )
    .await?;
    Ok(Some(current))
}

/// Copies each condition's `lastTransitionTime` from `current` when its status is the same.
fn keep_transition_times(current: &Value, desired: &mut Value) {
    let Some(conditions) = desired.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    let previous = current.get("conditions").and_then(Value::as_array);
    for condition in conditions {
        let before =
            previous.and_then(|p| p.iter().find(|c| c.get("type") == condition.get("type")));
        if let Some(before) = before
            && before.get("status") == condition.get("status")
            && let Some(time) = before.get("lastTransitionTime")
        {
            condition["lastTransitionTime"] = time.clone();
        }
    }
}

/// Whether merging `desired` would change `current`: a key of `desired` whose value
/// differs (null and absent are the same, as in a merge patch).
fn differs(current: &Value, desired: &Value) -> bool {
    let Some(desired) = desired.as_object() else {
        return true;
    };
    desired.iter().any(|(key, value)| {
        let now = current.get(key).unwrap_or(&Value::Null);
        match (now, value) {
            (Value::Object(_), Value::Object(_)) => differs(now, value),
            _ => now != value,
        }
    })
}

/// Records an Event on the object; failing to record one is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    publish_related(ctx, obj, warning, reason, note, None).await;
}

/// `publish`, naming a related object (e.g. the VM on its cluster a VmRequest's Event is
/// about), so Events about different VMs are not folded into one series.
pub async fn publish_related<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
    related: Option<k8s_openapi::api::core::v1::ObjectReference>,
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
        secondary: related,
    };
    if let Err(err) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %err, reason, "could not record an Event");
    }
}

/// The reason a use-case refusal shows in status; None for errors worth retrying.
pub fn denial_reason(err: &AppError) -> Option<&'static str> {
    match err.kind() {
        ErrorKind::Invalid => Some("InvalidSpec"),
        ErrorKind::Forbidden => Some("Forbidden"),
        ErrorKind::NotFound => Some("NotFound"),
        ErrorKind::Conflict => Some("Conflict"),
        ErrorKind::Unavailable | ErrorKind::Internal => None,
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
    // Denied and Pending are spelled alike in RegistrationPhase and RequestPhase, the phases
    // of the kinds these helpers serve (tested in api::phase).
    let status = json!({
        "phase": RequestPhase::Denied,
        "observedGeneration": generation,
        "message": message,
        "conditions": [
            condition("Accepted", false, reason, message, generation),
            condition("Denied", true, reason, message, generation),
        ],
    });
    if patch_status(api, obj, status).await? {
        publish(ctx, obj, true, reason, message.to_string()).await;
    }
    Ok(())
}

/// True when the object was denied for its current generation: nothing to do again.
pub fn denied_for_generation(status: Option<&Value>, generation: Option<i64>) -> bool {
    status.is_some_and(|s| {
        s.get("phase") == Some(&json!(RequestPhase::Denied))
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
    patch_status(api, obj, json!({
        "phase": RequestPhase::Pending,
        "observedGeneration": generation,
        "message": format!("waiting: {message}"),
        "conditions": [condition("Accepted", false, "WaitingForReference", message, generation)],
    }))
    .await?;
    Ok(kube::runtime::controller::Action::requeue(
        std::time::Duration::from_secs(5),
    ))
}

/// A request shows its ticket's state under the same spelling.
impl From<TicketStatus> for RequestPhase {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::PendingApproval => RequestPhase::PendingApproval,
            TicketStatus::Approved => RequestPhase::Approved,
            TicketStatus::Rejected => RequestPhase::Rejected,
            TicketStatus::Cancelled => RequestPhase::Cancelled,
            TicketStatus::Executing => RequestPhase::Executing,
            TicketStatus::Succeeded => RequestPhase::Succeeded,
            TicketStatus::PartiallySucceeded => RequestPhase::PartiallySucceeded,
            TicketStatus::Failed => RequestPhase::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time_and_nothing_is_written() {
        let current = json!({"phase": "Ready", "conditions": [
            {"type": "Ready", "status": "True", "reason": "Mirrored", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let mut desired = json!({"phase": "Ready", "conditions": [
            {"type": "Ready", "status": "True", "reason": "Mirrored", "lastTransitionTime": "2026-11-30T10:00:00Z"}]});
        keep_transition_times(&current, &mut desired);
        assert_eq!(
            desired["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert!(!differs(&current, &desired));
    }

    #[test]
    fn a_changed_condition_status_moves_its_transition_time() {
        let current = json!({"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let mut desired = json!({"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-30T10:00:00Z"}]});
        keep_transition_times(&current, &mut desired);
        assert_eq!(
            desired["conditions"][0]["lastTransitionTime"],
            "2026-11-30T10:00:00Z"
        );
        assert!(differs(&current, &desired));
    }

    #[test]
    fn differences_are_found_in_nested_values_and_null_equals_absent() {
        let current = json!({"phase": "Ready", "vms": [{"name": "a", "phase": "Starting"}]});
        assert!(differs(
            &current,
            &json!({"vms": [{"name": "a", "phase": "Running"}]})
        ));
        assert!(!differs(
            &current,
            &json!({"phase": "Ready", "approver": null})
        ));
        assert!(differs(&current, &json!({"phase": "Error"})));
        assert!(differs(&Value::Null, &json!({"phase": "Ready"})));
    }

    #[test]
    fn every_ticket_status_is_a_request_phase_with_the_same_spelling() {
        for status in TicketStatus::ALL {
            let phase = serde_json::to_value(RequestPhase::from(status)).unwrap();
            assert_eq!(phase, status.as_str());
        }
    }
}
