//! The VmRequest reconciler: verify who asked, record the ticket (once per object uid),
//! report it in status, cancel it when a pending request is deleted.

use super::status::{
    condition, denial_reason, denied_for_generation, deny, patch_status, publish,
    wait_for_reference,
};
use super::{CONTROLLER_ACTOR, Context, FINALIZER, RESYNC, ReconcileError, done, verified_caller};
use crate::api::VmRequest;
use crate::app::AppError;
use crate::app::requests::{VmRequestInput, cancel_vm_request, submit_vm_request, ticket_view};
use crate::domain::ticket::TicketStatus;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;

pub async fn reconcile(obj: Arc<VmRequest>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = obj
        .namespace()
        .ok_or(ReconcileError::MissingField("metadata.namespace"))?;
    let api: Api<VmRequest> = Api::namespaced(ctx.client.clone(), &ns);
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(req) => apply(&api, req, &ctx).await,
            Event::Cleanup(req) => cleanup(req, &ctx).await,
        }
    })
    .await?;
    done(&ctx, obj.as_ref(), action)
}

fn input(req: &VmRequest) -> Result<VmRequestInput, ReconcileError> {
    Ok(VmRequestInput {
        uid: req
            .uid()
            .ok_or(ReconcileError::MissingField("metadata.uid"))?,
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

fn next_step(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::PendingApproval => {
            "waiting for a holder of approval:approve for this system and environment to decide"
        }
        TicketStatus::Approved => "approved: the VMs will be created",
        TicketStatus::Rejected => "rejected by an approver",
        TicketStatus::Cancelled => "cancelled",
        TicketStatus::Executing => "creating the VMs",
        TicketStatus::Succeeded => "all VMs created",
        TicketStatus::PartiallySucceeded => "some VMs could not be created",
        TicketStatus::Failed => "the VMs could not be created",
    }
}

/// How soon a VmRequest whose ticket is pending is looked at again.
const PENDING_RESYNC: std::time::Duration = std::time::Duration::from_secs(3);

async fn apply(
    api: &Api<VmRequest>,
    req: Arc<VmRequest>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let generation = req.metadata.generation;
    let current = req
        .status
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    if denied_for_generation(current.as_ref(), generation) {
        return Ok(Action::await_change());
    }
    let caller = match verified_caller(&ctx.identity_key, req.as_ref()) {
        Ok(caller) => caller,
        Err(err) => {
            deny(
                ctx,
                api,
                req.as_ref(),
                "UnverifiedIdentity",
                &err.to_string(),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let submission = match submit_vm_request(&ctx.pool, &caller, &input(&req)?).await {
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
    // A decision may come through the REST API, which does not touch this object: look
    // again soon while the ticket waits for one.
    Ok(Action::requeue(
        if status == TicketStatus::PendingApproval {
            PENDING_RESYNC
        } else {
            RESYNC
        },
    ))
}

async fn cleanup(req: Arc<VmRequest>, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = req
        .uid()
        .ok_or(ReconcileError::MissingField("metadata.uid"))?;
    if cancel_vm_request(&ctx.pool, CONTROLLER_ACTOR, &uid).await? == Some(TicketStatus::Cancelled)
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

/// Shows the ticket in the VmRequest's status (phase, approver, reason, VM names and
/// placement) and records an Event when the phase changes. Used after submission and by the
/// Approval reconciler right after a decision. Returns the ticket's state.
pub(crate) async fn report_ticket(
    ctx: &Context,
    api: &Api<VmRequest>,
    req: &VmRequest,
    requester: &str,
    ticket_id: uuid::Uuid,
) -> Result<TicketStatus, ReconcileError> {
    let view = ticket_view(&ctx.pool, ticket_id).await?;
    let generation = req.metadata.generation;
    let phase = view.status.as_str();
    let mut message = format!("ticket {ticket_id}: {}", next_step(view.status));
    if let (Some(approver), Some(reason)) = (&view.approver, &view.decision_reason) {
        message.push_str(&format!(" (by {approver}: {reason})"));
    }
    let current = req.status.as_ref();
    let unchanged = current.is_some_and(|s| {
        s.phase.as_deref() == Some(phase)
            && s.ticket_id.as_deref() == Some(ticket_id.to_string().as_str())
            && s.vms.len() == view.vms.len()
            && s.vms
                .iter()
                .zip(&view.vms)
                .all(|(a, b)| a.phase.as_deref() == Some(b.status.as_str()))
    });
    if unchanged {
        return Ok(view.status);
    }
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
    let vms: Vec<serde_json::Value> = view
        .vms
        .iter()
        .map(|v| json!({"name": v.name, "cluster": v.cluster, "phase": v.status}))
        .collect();
    patch_status(
        api,
        &req.name_any(),
        json!({
            "phase": phase,
            "observedGeneration": generation,
            "ticketId": ticket_id.to_string(),
            "environment": view.environment.as_str(),
            "requester": requester,
            "approver": view.approver,
            "decisionReason": view.decision_reason,
            "vms": vms,
            "message": message,
            "conditions": conditions,
        }),
    )
    .await?;
    let warning = view.status == TicketStatus::Rejected;
    publish(ctx, req, warning, phase, message).await;
    Ok(view.status)
}
