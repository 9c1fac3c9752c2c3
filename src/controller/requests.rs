//! The VmRequest reconciler: verify who asked, record the ticket (once per object uid),
//! report it in status, cancel it when a pending request is deleted.

use super::stamped::{deletion_actor, uid_of, verified_requester, with_finalizer};
use super::status::{
    condition, denial_reason, deny, patch_status_since, publish, publish_related,
    wait_for_reference,
};
use super::{Context, RESYNC, ReconcileError};
use crate::app::AppError;
use crate::app::requests::{
    VmRequestInput, cancel_for_deleted_object, submit_vm_request, ticket_view,
};
use crate::crd::VmRequest;
use crate::crd::phase::RequestPhase;
use crate::crd::vm_operation::OperationResult;
use crate::crd::vm_request::VmRef;
use crate::domain::ticket::TicketStatus;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

pub async fn reconcile(obj: Arc<VmRequest>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = obj
        .namespace()
        .ok_or(ReconcileError::MissingField("metadata.namespace"))?;
    let api: Api<VmRequest> = Api::namespaced(ctx.client.clone(), &ns);
    with_finalizer(
        &api,
        obj,
        |req| apply(&api, req, &ctx),
        |req| cleanup(req, &ctx),
    )
    .await
}

fn input(req: &VmRequest) -> Result<VmRequestInput, ReconcileError> {
    Ok(VmRequestInput {
        uid: uid_of(req)?,
        object_namespace: req.namespace().unwrap_or_default(),
        object_name: req.name_any(),
        system: req.spec.system.clone(),
        service: req.spec.service.clone(),
        target_namespace: req.spec.target_namespace.clone(),
        template: req.spec.template.clone(),
        instance_size: req.spec.instance_size.clone(),
        count: req.spec.count,
        disk_gib: req.spec.disk_gib,
        reason: req.spec.reason.clone(),
    })
}

/// What happens next, for a ticket that creates VMs or one that operates on a VM.
fn next_step(status: TicketStatus, creates: bool) -> &'static str {
    match (status, creates) {
        (TicketStatus::PendingApproval, _) => {
            "waiting for a holder of approval:approve for this system and environment to decide"
        }
        (TicketStatus::Approved, true) => "approved: the VMs will be created",
        (TicketStatus::Approved, false) => "approved: the operation is queued",
        (TicketStatus::Rejected, _) => "rejected by an approver",
        (TicketStatus::Cancelled, _) => "cancelled",
        (TicketStatus::Executing, true) => "creating the VMs",
        (TicketStatus::Executing, false) => "carrying out the operation",
        (TicketStatus::Succeeded, true) => "all VMs created",
        (TicketStatus::Succeeded, false) => "done",
        (TicketStatus::PartiallySucceeded, _) => "some VMs could not be created",
        (TicketStatus::Failed, true) => "the VMs could not be created",
        (TicketStatus::Failed, false) => "the operation failed",
    }
}

/// The requeue after reporting a ticket: a safety net only, since every change of a ticket
/// (a decision through the REST API, a VM's state) reaches the object through PostgreSQL
/// NOTIFY (`controller::tickets`). A final ticket's VMs still change (one may go missing),
/// so it is looked at too, but rarely.
pub(crate) fn resync_after(status: TicketStatus) -> Action {
    if status.is_terminal() {
        Action::requeue(RESYNC * 10)
    } else {
        Action::requeue(RESYNC)
    }
}

async fn apply(
    api: &Api<VmRequest>,
    req: Arc<VmRequest>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let Some((caller, _)) = verified_requester(ctx, api, req.as_ref(), req.status.as_ref()).await?
    else {
        return Ok(Action::await_change());
    };
    let submission = match submit_vm_request(&ctx.pool, &ctx.river, &caller, &input(&req)?).await {
        Ok(s) => s,
        Err(err @ AppError::NotFound { .. }) => {
            return wait_for_reference(api, req.as_ref(), &err.to_string()).await;
        }
        Err(err) => match denial_reason(&err) {
            Some(reason) => {
                deny(ctx, api, req.as_ref(), reason, &err.to_string()).await?;
                return Ok(Action::await_change());
            }
            None => return Err(err.into()),
        },
    };
    let status = report_ticket(
        ctx,
        api,
        req.as_ref(),
        &caller.username,
        submission.ticket_id,
    )
    .await?;
    Ok(resync_after(status))
}

async fn cleanup(req: Arc<VmRequest>, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = uid_of(req.as_ref())?;
    let actor = deletion_actor(ctx, req.as_ref()).await?;
    if cancel_for_deleted_object(&ctx.pool, &actor, &uid, "VmRequest").await?
        == Some(TicketStatus::Cancelled)
    {
        publish(
            ctx,
            req.as_ref(),
            false,
            "Cancelled",
            "the VmRequest was deleted; its ticket is cancelled".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Shows the ticket in a VmRequest's or VmOperation's status (phase, approver, reason, the
/// VMs with their state, IP and node, and for a VmRequest a `Ready` condition that turns
/// True when the ticket succeeded). Writes only when something changed; then records an
/// Event for a new phase and one for each VM that changed state. Returns the ticket's state.
pub(crate) async fn report_ticket<K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    requester: &str,
    ticket_id: uuid::Uuid,
) -> Result<TicketStatus, ReconcileError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    tracing::Span::current().record("ticket", tracing::field::display(ticket_id));
    let view = ticket_view(&ctx.pool, ticket_id).await?;
    let generation = obj.meta().generation;
    let phase = view.status.as_str();
    let shown_phase = RequestPhase::from(view.status);
    let creates = K::kind(&()) == "VmRequest";
    let mut message = format!("ticket {ticket_id}: {}", next_step(view.status, creates));
    if let (Some(approver), Some(reason)) = (&view.approver, &view.decision_reason) {
        message.push_str(&format!(" (by {approver}: {reason})"));
    }
    let vms: Vec<VmRef> = view
        .vms
        .iter()
        .map(|v| VmRef {
            name: v.name.clone(),
            cluster: v.cluster.clone(),
            namespace: Some(v.namespace.clone()),
            phase: Some(v.status.clone()),
            reason: v.status_reason.clone(),
            ip: v.ip_address.clone(),
            node: v.node.clone(),
        })
        .collect();
    let mut conditions = vec![condition(
        "Accepted",
        true,
        "TicketCreated",
        &message,
        generation,
    )];
    match view.status {
        TicketStatus::PendingApproval | TicketStatus::Cancelled => {}
        TicketStatus::Rejected => conditions.push(condition(
            "Approved", false, "Rejected", &message, generation,
        )),
        _ => conditions.push(condition(
            "Approved", true, "Approved", &message, generation,
        )),
    }
    let ready = view.status == TicketStatus::Succeeded;
    if let (TicketStatus::Failed, Some(error)) = (view.status, &view.error_message) {
        message.push_str(&format!(": {error}"));
    }
    conditions.push(condition("Ready", ready, phase, &message, generation));
    // An operation's result: what it made or where it moved the VM, or why it failed.
    let result = (!creates)
        .then(|| view.result.as_ref().and_then(operation_result))
        .flatten();
    let written = patch_status_since(
        api,
        obj,
        json!({
            "phase": shown_phase,
            "observedGeneration": generation,
            "ticketId": ticket_id.to_string(),
            "environment": view.environment.as_str(),
            "requester": requester,
            "approver": view.approver,
            "decisionReason": view.decision_reason,
            "vms": vms,
            "result": result,
            "message": message,
            "conditions": conditions,
        }),
    )
    .await?;
    // Transitions are reported against what the API server held, not a lagging cache.
    let Some(current) = written else {
        return Ok(view.status);
    };
    if current.get("phase").and_then(|p| p.as_str()) != Some(phase) {
        let warning = matches!(
            view.status,
            TicketStatus::Rejected | TicketStatus::Failed | TicketStatus::PartiallySucceeded
        );
        publish(ctx, obj, warning, phase, message).await;
    }
    let shown: Vec<VmRef> = current
        .get("vms")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for vm in &vms {
        let before = shown.iter().find(|s| s.name == vm.name);
        let moved = before.is_none_or(|b| (&b.phase, &b.reason) != (&vm.phase, &vm.reason));
        let Some(vm_phase) = vm.phase.as_deref() else {
            continue;
        };
        // A VM first shown as Creating is the approval's news, already reported above.
        if !moved || (before.is_none() && vm_phase == "Creating") {
            continue;
        }
        let mut note = format!(
            "VM {} on {}: {vm_phase}",
            vm.name,
            vm.cluster.as_deref().unwrap_or("no cluster")
        );
        if let Some(reason) = &vm.reason {
            note.push_str(&format!(" ({reason})"));
        }
        let warning = matches!(vm_phase, "Failed" | "Missing");
        let related = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("kubevirt.io/v1".into()),
            kind: Some("VirtualMachine".into()),
            name: Some(vm.name.clone()),
            namespace: vm.namespace.clone(),
            ..Default::default()
        };
        publish_related(
            ctx,
            obj,
            warning,
            &format!("VM{vm_phase}"),
            note,
            Some(related),
        )
        .await;
    }
    Ok(view.status)
}

/// The fields of a ticket's result a VmOperation shows (progress markers stay inside);
/// None when there is nothing to show.
fn operation_result(result: &serde_json::Value) -> Option<OperationResult> {
    let text = |key: &str| result.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let shown = OperationResult {
        snapshot: text("snapshot"),
        source_node: text("sourceNode"),
        target_node: text("targetNode"),
        clone: text("clone"),
        failure_reason: text("failureReason"),
    };
    (shown != OperationResult::default()).then_some(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_shows_what_it_produced_and_nothing_else() {
        let shown = operation_result(&json!({"snapshot": "s1", "replacedVmi": "uid-1"})).unwrap();
        assert_eq!(shown.snapshot.as_deref(), Some("s1"));
        assert_eq!(
            serde_json::to_value(&shown).unwrap(),
            json!({"snapshot": "s1"})
        );
        assert_eq!(operation_result(&json!({"replacedVmi": "uid-1"})), None);
        let failed = operation_result(&json!({"failureReason": "NotLiveMigratable"})).unwrap();
        assert_eq!(failed.failure_reason.as_deref(), Some("NotLiveMigratable"));
    }

    #[test]
    fn every_ticket_state_says_what_happens_next() {
        for status in TicketStatus::ALL {
            for creates in [true, false] {
                assert!(!next_step(status, creates).is_empty(), "{status:?}");
            }
        }
        assert_eq!(
            next_step(TicketStatus::Approved, true),
            "approved: the VMs will be created"
        );
        assert_eq!(
            next_step(TicketStatus::Approved, false),
            "approved: the operation is queued"
        );
        assert!(next_step(TicketStatus::PendingApproval, true).contains("approval:approve"));
    }

    #[test]
    fn final_tickets_are_looked_at_ten_times_less_often() {
        assert_eq!(
            resync_after(TicketStatus::Succeeded),
            Action::requeue(RESYNC * 10)
        );
        assert_eq!(
            resync_after(TicketStatus::PendingApproval),
            Action::requeue(RESYNC)
        );
    }
}
