//! The Approval reconciler: a signed decision by an approver on the ticket of a VmRequest or
//! VmOperation in the same namespace. Applied once; the outcome stays in status (the spec is
//! immutable).

use super::requests::report_ticket;
use super::status::{condition, denial_reason, patch_status, publish};
use super::{Context, ReconcileError, stamped_caller, verified_stamp};
use crate::app::AppError;
use crate::app::approvals::{approve, reject};
use crate::crd::approval::{DecisionName, TargetKind};
use crate::crd::phase::ApprovalPhase;
use crate::crd::{Approval, VmOperation, VmRequest};
use crate::domain::ticket::TicketStatus;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;

pub async fn reconcile(obj: Arc<Approval>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let action = apply(&obj, &ctx).await?;
    Ok(action)
}

async fn finish(
    ctx: &Context,
    api: &Api<Approval>,
    obj: &Approval,
    outcome: Outcome,
) -> Result<Action, ReconcileError> {
    let generation = obj.metadata.generation;
    let (phase, ok, reason, message) = match &outcome {
        Outcome::Applied { message, .. } => {
            (ApprovalPhase::Applied, true, "Applied", message.clone())
        }
        Outcome::Refused { reason, message } => {
            (ApprovalPhase::Refused, false, *reason, message.clone())
        }
    };
    let warnings = match &outcome {
        Outcome::Applied { warnings, .. } => warnings.clone(),
        Outcome::Refused { .. } => Vec::new(),
    };
    patch_status(
        api,
        obj,
        json!({
            "phase": phase,
            "message": message,
            "warnings": warnings,
            "conditions": [condition("Applied", ok, reason, &message, generation)],
        }),
    )
    .await?;
    publish(ctx, obj, !ok, reason, message).await;
    Ok(Action::await_change())
}

/// Whether the ticket already carries `decision` by `approver`.
async fn decided_as(
    ctx: &Context,
    ticket: uuid::Uuid,
    approver: &str,
    decision: DecisionName,
) -> Result<bool, ReconcileError> {
    let view = crate::app::requests::ticket_view(&ctx.pool, ticket).await?;
    let matches = match decision {
        DecisionName::Approve => !matches!(
            view.status,
            TicketStatus::PendingApproval | TicketStatus::Rejected | TicketStatus::Cancelled
        ),
        DecisionName::Reject => view.status == TicketStatus::Rejected,
    };
    Ok(matches && view.approver.as_deref() == Some(approver))
}

enum Outcome {
    Applied {
        message: String,
        warnings: Vec<String>,
    },
    Refused {
        reason: &'static str,
        message: String,
    },
}

async fn apply(obj: &Approval, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = obj
        .namespace()
        .ok_or(ReconcileError::MissingField("metadata.namespace"))?;
    let api: Api<Approval> = Api::namespaced(ctx.client.clone(), &ns);
    if matches!(
        obj.status.as_ref().and_then(|s| s.phase),
        Some(ApprovalPhase::Applied | ApprovalPhase::Refused)
    ) {
        return Ok(Action::await_change());
    }
    let refused = |reason: &'static str, message: String| Outcome::Refused { reason, message };
    let stamp = match verified_stamp(ctx, obj).await? {
        Ok(stamp) => stamp,
        Err(reason) => {
            return finish(ctx, &api, obj, refused("UnverifiedIdentity", reason)).await;
        }
    };
    let caller = stamped_caller(&stamp);
    let target = &obj.spec.target.name;
    let kind = obj.spec.target.kind.as_str();
    // Admission resolved the target to one object and one ticket and signed both: a target
    // deleted or recreated under the same name since is not what the approver decided on.
    let Some(bound) = stamp.approval_target else {
        let message = "the Approval carries no resolved target: it was admitted without \
                       Shepherd's webhook; delete it and create it again"
            .to_string();
        return finish(ctx, &api, obj, refused("UnverifiedIdentity", message)).await;
    };
    let Ok(ticket) = bound.ticket_id.parse::<uuid::Uuid>() else {
        let message = format!(
            "the Approval's ticket id {:?} is malformed",
            bound.ticket_id
        );
        return finish(ctx, &api, obj, refused("UnverifiedIdentity", message)).await;
    };
    let current = match obj.spec.target.kind {
        TargetKind::VmRequest => Api::<VmRequest>::namespaced(ctx.client.clone(), &ns)
            .get_opt(target)
            .await?
            .map(|o| {
                (
                    o.metadata.uid.clone(),
                    serde_json::to_value(o.status).unwrap_or_default(),
                )
            }),
        TargetKind::VmOperation => Api::<VmOperation>::namespaced(ctx.client.clone(), &ns)
            .get_opt(target)
            .await?
            .map(|o| {
                (
                    o.metadata.uid.clone(),
                    serde_json::to_value(o.status).unwrap_or_default(),
                )
            }),
    };
    let target_status = match current {
        Some((Some(uid), status)) if uid == bound.uid => status,
        Some(_) => {
            let message = format!(
                "{kind} {ns}/{target} was deleted and created again since this Approval was \
                 admitted (it was for uid {}); decide on the new one with a new Approval",
                bound.uid
            );
            return finish(ctx, &api, obj, refused("Stale", message)).await;
        }
        None => {
            let message = format!(
                "{kind} {ns}/{target} (uid {}) no longer exists; its ticket {ticket} is cancelled",
                bound.uid
            );
            return finish(ctx, &api, obj, refused("Stale", message)).await;
        }
    };
    let requester = target_status
        .get("requester")
        .and_then(|r| r.as_str())
        .unwrap_or_default()
        .to_string();
    let result = match obj.spec.decision {
        DecisionName::Approve => {
            let overrides = obj.spec.overrides.clone().unwrap_or_default();
            approve(
                &ctx.pool,
                &ctx.river,
                &caller,
                ticket,
                &obj.spec.reason,
                &overrides,
            )
            .await
            .map(|a| {
                let names: Vec<&str> = a.vms.iter().map(|v| v.name.as_str()).collect();
                Outcome::Applied {
                    message: format!(
                        "ticket {ticket} approved: {} on cluster {}",
                        names.join(", "),
                        if a.cluster.is_empty() {
                            "-"
                        } else {
                            &a.cluster
                        }
                    ),
                    warnings: a.warnings,
                }
            })
        }
        DecisionName::Reject => reject(&ctx.pool, &caller, ticket, &obj.spec.reason)
            .await
            .map(|_| Outcome::Applied {
                message: format!("ticket {ticket} rejected"),
                warnings: Vec::new(),
            }),
    };
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => match (denial_reason(&err), &err) {
            // A retry after this Approval's own decision was committed (say, a status write
            // failed) finds the ticket decided as this Approval says, by this approver.
            (_, AppError::Conflict(_))
                if decided_as(ctx, ticket, &caller.username, obj.spec.decision).await? =>
            {
                Outcome::Applied {
                    message: format!(
                        "ticket {ticket} {} by {}",
                        obj.spec.decision.past_tense(),
                        caller.username
                    ),
                    warnings: Vec::new(),
                }
            }
            (_, AppError::Conflict(_)) => Outcome::Refused {
                reason: "AlreadyDecided",
                message: err.to_string(),
            },
            (Some(reason), _) => Outcome::Refused {
                reason,
                message: err.to_string(),
            },
            (None, _) => return Err(err.into()),
        },
    };
    if matches!(outcome, Outcome::Applied { .. }) {
        // Show the decision on the target right away rather than at its next resync.
        match obj.spec.target.kind {
            TargetKind::VmRequest => {
                let api = Api::<VmRequest>::namespaced(ctx.client.clone(), &ns);
                if let Some(o) = api.get_opt(target).await? {
                    report_ticket(ctx, &api, &o, &requester, ticket).await?;
                }
            }
            TargetKind::VmOperation => {
                let api = Api::<VmOperation>::namespaced(ctx.client.clone(), &ns);
                if let Some(o) = api.get_opt(target).await? {
                    report_ticket(ctx, &api, &o, &requester, ticket).await?;
                }
            }
        }
    }
    finish(ctx, &api, obj, outcome).await
}
