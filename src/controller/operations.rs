//! The VmOperation reconciler: verify who asked, record the operation's ticket (once per
//! object uid; auto-approved when the policy says so), report it in status, cancel it when a
//! pending operation is deleted.

use super::requests::{report_ticket, resync_after};
use super::stamped::{deletion_actor, uid_of, verified_requester, with_finalizer};
use super::status::{denial_reason, deny, publish};
use super::{Context, ReconcileError};
use crate::app::operations::{VmOperationInput, submit_vm_operation};
use crate::app::requests::cancel_for_deleted_object;
use crate::crd::VmOperation;
use crate::domain::ticket::TicketStatus;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

pub async fn reconcile(obj: Arc<VmOperation>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = obj
        .namespace()
        .ok_or(ReconcileError::MissingField("metadata.namespace"))?;
    let api: Api<VmOperation> = Api::namespaced(ctx.client.clone(), &ns);
    with_finalizer(
        &api,
        obj,
        |op| apply(&api, op, &ctx),
        |op| cleanup(op, &ctx),
    )
    .await
}

pub fn input(op: &VmOperation) -> Result<VmOperationInput, ReconcileError> {
    Ok(VmOperationInput {
        uid: uid_of(op)?,
        object_namespace: op.namespace().unwrap_or_default(),
        object_name: op.name_any(),
        spec: op.spec.clone(),
    })
}

async fn apply(
    api: &Api<VmOperation>,
    op: Arc<VmOperation>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let Some((caller, _)) = verified_requester(ctx, api, op.as_ref(), op.status.as_ref()).await?
    else {
        return Ok(Action::await_change());
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
    let uid = uid_of(op.as_ref())?;
    let actor = deletion_actor(ctx, op.as_ref()).await?;
    if cancel_for_deleted_object(&ctx.pool, &actor, &uid, "VmOperation").await?
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
