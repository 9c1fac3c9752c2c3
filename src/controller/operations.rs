//! The VmOperation reconciler: verify who asked, record the operation's ticket (once per
//! object uid; auto-approved when the policy says so), report it in status, cancel it when a
//! pending operation is deleted.

use super::requests::{report_ticket, resync_after};
use super::status::{denial_reason, denied_for_generation, deny, publish};
use super::{CONTROLLER_ACTOR, Context, FINALIZER, ReconcileError, verified_caller};
use crate::api::VmOperation;
use crate::app::operations::{VmOperationInput, submit_vm_operation};
use crate::app::requests::cancel_for_deleted_object;
use crate::domain::ticket::TicketStatus;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, ResourceExt};
use std::sync::Arc;

pub async fn reconcile(obj: Arc<VmOperation>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = obj
        .namespace()
        .ok_or(ReconcileError::MissingField("metadata.namespace"))?;
    let api: Api<VmOperation> = Api::namespaced(ctx.client.clone(), &ns);
    let action = finalizer(&api, FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(op) => apply(&api, op, &ctx).await,
            Event::Cleanup(op) => cleanup(op, &ctx).await,
        }
    })
    .await?;
    Ok(action)
}

pub fn input(op: &VmOperation) -> Result<VmOperationInput, ReconcileError> {
    Ok(VmOperationInput {
        uid: op
            .uid()
            .ok_or(ReconcileError::MissingField("metadata.uid"))?,
        object_namespace: op.namespace().unwrap_or_default(),
        object_name: op.name_any(),
        vm: op.spec.vm.clone(),
        operation: op.spec.operation.into(),
        reason: op.spec.reason.clone(),
        snapshot: op.spec.snapshot.clone(),
        clone_name: op.spec.clone_name.clone(),
    })
}

async fn apply(
    api: &Api<VmOperation>,
    op: Arc<VmOperation>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let current = op
        .status
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    if denied_for_generation(current.as_ref(), op.metadata.generation) {
        return Ok(Action::await_change());
    }
    let caller = match verified_caller(&ctx.identity_key, op.as_ref()) {
        Ok(caller) => caller,
        Err(err) => {
            deny(
                ctx,
                api,
                op.as_ref(),
                "UnverifiedIdentity",
                &err.to_string(),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    let submission = match submit_vm_operation(&ctx.pool, &ctx.river, &caller, &input(&op)?).await {
        Ok(s) => s,
        Err(err) => match denial_reason(&err) {
            Some(reason) => {
                deny(ctx, api, op.as_ref(), reason, &err.to_string()).await?;
                return Ok(Action::await_change());
            }
            None => return Err(err.into()),
        },
    };
    let status = report_ticket(
        ctx,
        api,
        op.as_ref(),
        &caller.username,
        submission.ticket_id,
    )
    .await?;
    Ok(resync_after(status))
}

async fn cleanup(op: Arc<VmOperation>, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = op
        .uid()
        .ok_or(ReconcileError::MissingField("metadata.uid"))?;
    if cancel_for_deleted_object(&ctx.pool, CONTROLLER_ACTOR, &uid, "VmOperation").await?
        == Some(TicketStatus::Cancelled)
    {
        publish(
            ctx,
            op.as_ref(),
            false,
            "Cancelled",
            "the VmOperation was deleted; its ticket is cancelled".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}
