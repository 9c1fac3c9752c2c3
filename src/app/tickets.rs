//! Deciding tickets. Of concurrent decisions on one ticket exactly one wins; the others get
//! `AppError::Conflict` naming the state the winner left.

use super::AppError;
use super::access::{Caller, Viewer};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::tickets::TicketRow;
use crate::domain::permissions::{Permission, can_decide};
use crate::domain::ticket::{TicketStatus, check_transition};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    fn target(self) -> TicketStatus {
        match self {
            Self::Approve => TicketStatus::Approved,
            Self::Reject => TicketStatus::Rejected,
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            Self::Approve => "approval.approve",
            Self::Reject => "approval.reject",
        }
    }
}

fn parse_status(s: &str) -> Result<TicketStatus, AppError> {
    s.parse().map_err(|e| AppError::Invalid {
        field: "tickets.status".into(),
        rule: format!("{e}"),
    })
}

/// Records a decision in one transaction: the ticket's new state, a domain event and an
/// audit row. Authorisation of `approver` for the ticket's System and environment is the
/// caller's job; separation of duties is checked here because it holds everywhere.
pub async fn decide(
    pool: &PgPool,
    ticket_id: Uuid,
    verdict: Verdict,
    approver: &str,
    reason: &str,
) -> Result<TicketRow, AppError> {
    let mut tx = pool.begin().await?;
    let ticket = db::tickets::get(&mut tx, ticket_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "ticket",
            id: ticket_id.to_string(),
        })?;
    can_decide(&ticket.requester, approver).map_err(|e| AppError::Forbidden(e.to_string()))?;
    let current = parse_status(&ticket.status)?;
    if check_transition(current, verdict.target()).is_err() {
        return Err(already_decided(&mut tx, ticket_id).await);
    }
    let Some(decided) = db::tickets::decide(
        &mut tx,
        ticket_id,
        TicketStatus::PendingApproval.as_str(),
        verdict.target().as_str(),
        approver,
        reason,
    )
    .await?
    else {
        drop(tx);
        return Err(lost_race(pool, ticket_id).await);
    };
    let payload = json!({"ticket_id": ticket_id, "verdict": verdict.target().as_str(),
                         "approver": approver, "reason": reason});
    db::events::insert(
        &mut tx,
        "ticket",
        ticket_id,
        verdict.audit_action(),
        "Completed",
        &payload,
    )
    .await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new(
            verdict.audit_action(),
            approver,
            "ticket",
            ticket_id,
            &decided.operation,
        )
        .environment(&decided.environment)
        .parent("service", decided.service_id)
        .details(json!({"reason": reason, "requester": decided.requester})),
    )
    .await?;
    tx.commit().await?;
    Ok(decided)
}

/// The error for a decider that lost to a concurrent decision: what the winner did, read
/// after the winner's commit (the caller's transaction must be closed first).
pub(crate) async fn lost_race(pool: &PgPool, ticket_id: Uuid) -> AppError {
    match pool.acquire().await {
        Ok(mut conn) => already_decided(&mut conn, ticket_id).await,
        Err(e) => e.into(),
    }
}

/// The one answer for a decision on a ticket that is not pending any more, whether the
/// decider found it decided or lost the race to decide it: its state and who decided.
pub(crate) async fn already_decided(conn: &mut PgConnection, ticket_id: Uuid) -> AppError {
    let now = match db::tickets::get(conn, ticket_id).await {
        Ok(now) => now,
        Err(e) => return e.into(),
    };
    let detail = match now {
        Some(t) => match t.approver {
            Some(approver) => format!("is already {} (by {approver})", t.status),
            None => format!("is already {}", t.status),
        },
        None => "no longer exists".into(),
    };
    AppError::Conflict(format!("ticket {ticket_id} {detail}"))
}

/// The requester withdraws a pending ticket (a platform admin may too). Creates no VM and
/// no job; of a cancellation and a concurrent decision exactly one wins.
pub async fn cancel(
    pool: &PgPool,
    caller: &Caller,
    ticket_id: Uuid,
    reason: &str,
) -> Result<TicketRow, AppError> {
    if reason.trim().is_empty() {
        return Err(AppError::Invalid {
            field: "reason".into(),
            rule: "a cancellation needs a reason".into(),
        });
    }
    let (ticket, _) = super::listings::ticket(pool, caller, ticket_id).await?;
    if ticket.requester != caller.username {
        let viewer = Viewer::load(&mut *pool.acquire().await?, caller).await?;
        let env = ticket.environment.parse().ok();
        if !viewer.allows(Permission::PlatformAdmin, None, env) {
            return Err(AppError::Forbidden(format!(
                "user {:?} may not cancel ticket {ticket_id}: only its requester {:?} or a \
                 platform admin may; approvers reject instead",
                caller.username, ticket.requester
            )));
        }
    }
    let mut tx = pool.begin().await?;
    let Some(cancelled) = db::tickets::cancel(&mut tx, ticket_id, reason).await? else {
        drop(tx);
        return Err(lost_race(pool, ticket_id).await);
    };
    record_cancellation(&mut tx, &cancelled, &caller.username, reason).await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// The domain event and audit row of a cancellation, in the cancelling transaction.
pub(crate) async fn record_cancellation(
    conn: &mut sqlx::PgConnection,
    cancelled: &TicketRow,
    actor: &str,
    reason: &str,
) -> Result<(), AppError> {
    db::events::insert(
        conn,
        "ticket",
        cancelled.id,
        "ticket.cancel",
        "Cancelled",
        &json!({"ticket_id": cancelled.id}),
    )
    .await?;
    db::audit::append(
        conn,
        &AuditEntry::new(
            "approval.cancel",
            actor,
            "ticket",
            cancelled.id,
            &cancelled.operation,
        )
        .parent("service", cancelled.service_id)
        .environment(&cancelled.environment)
        .details(json!({"reason": reason, "requester": cancelled.requester})),
    )
    .await?;
    Ok(())
}
