//! The one path that records a ticket, for a VmRequest (create) and a VmOperation (day-2)
//! alike: the ticket, its domain event and its audit row in the caller's transaction, and,
//! when the approval policy exempts the operation in that environment, the approval too
//! (through the same path a person's approval takes). Keyed by the object's uid: a restart
//! or a re-delivered event finds the ticket instead of opening a second one.

use super::AppError;
use super::access::Caller;
use super::approvals::{AUTO_APPROVAL_REASON, Decider, record_approval};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::tickets::NewTicket;
use crate::domain::Environment;
use crate::domain::policy::default_requires_approval;
use crate::domain::ticket::{Operation, TicketStatus};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

/// The recorded ticket of a VmRequest or VmOperation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub ticket_id: Uuid,
    pub status: TicketStatus,
    pub environment: Environment,
    /// False when the ticket already existed (a repeated call).
    pub created: bool,
}

/// A validated ticket, ready to be recorded.
pub(crate) struct TicketDraft<'a> {
    /// The uid of the object that asked.
    pub uid: &'a str,
    pub object_namespace: &'a str,
    pub object_name: &'a str,
    pub operation: Operation,
    pub environment: Environment,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    /// The VM a day-2 operation acts on; None for a create.
    pub vm_id: Option<Uuid>,
    pub vm_count: i32,
    pub reason: &'a str,
    /// What is asked, as stored on the ticket.
    pub request: Value,
}

/// The ticket an object (by uid) recorded already: a repeated submission finds it and
/// writes nothing.
pub(crate) async fn recorded_submission(
    conn: &mut PgConnection,
    uid: &str,
) -> Result<Option<Submission>, AppError> {
    let Some(existing) = db::tickets::by_request_uid(conn, uid).await? else {
        return Ok(None);
    };
    Ok(Some(Submission {
        ticket_id: existing.id,
        status: parse(&existing.status, "tickets.status")?,
        environment: parse(&existing.environment, "tickets.environment")?,
        created: false,
    }))
}

fn parse<T: std::str::FromStr>(s: &str, field: &str) -> Result<T, AppError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| AppError::Invalid {
        field: field.into(),
        rule: e.to_string(),
    })
}

/// Records `draft` in `tx` and approves it there when the policy exempts it. A second
/// pending ticket for the same VM and operation is refused with a conflict. The audit rows
/// (the request's, then the approval's) are its last writes: the caller commits next.
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    river: &riverqueue::Client,
    caller: &Caller,
    draft: TicketDraft<'_>,
) -> Result<Submission, AppError> {
    let (op, env) = (draft.operation, draft.environment);
    let needs_approval = db::policies::requires_approval(tx, op.as_str(), env.as_str())
        .await?
        .unwrap_or_else(|| default_requires_approval(op, env));
    let inserted = db::tickets::insert(
        tx,
        &NewTicket {
            operation: op.as_str(),
            requester: &caller.username,
            request_uid: Some(draft.uid),
            service_id: draft.service_id,
            namespace_id: draft.namespace_id,
            environment: env.as_str(),
            vm_id: draft.vm_id,
            vm_count: draft.vm_count,
            reason: draft.reason,
            request: &draft.request,
            status: TicketStatus::PendingApproval.as_str(),
        },
    )
    .await;
    let ticket_id = match inserted {
        Ok(id) => id,
        Err(e) if draft.vm_id.is_some() && db::is_unique_violation(&e) => {
            return Err(AppError::Conflict(format!(
                "VM {:?} already has a pending {} ticket; wait for its decision or cancel it",
                draft.request["vm"].as_str().unwrap_or_default(),
                op.as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // A create is a VM request; anything else an operation on one VM.
    let (action, parent) = match draft.vm_id {
        None => ("vm.request", ("service", draft.service_id)),
        Some(vm_id) => ("operation.request", ("vm", vm_id)),
    };
    let object = format!("{}/{}", draft.object_namespace, draft.object_name);
    let event_status = if needs_approval {
        "Pending"
    } else {
        "Processing"
    };
    db::events::insert(
        tx,
        "ticket",
        ticket_id,
        action,
        event_status,
        &json!({"ticket_id": ticket_id, "request": draft.request, "requester": caller.username,
                "object": object}),
    )
    .await?;
    db::rbac::touch_subject(tx, &caller.subject()).await?;
    let mut audit = vec![
        AuditEntry::new(
            action,
            &caller.username,
            "ticket",
            ticket_id,
            draft.object_name,
        )
        .parent(parent.0, parent.1)
        .environment(env.as_str())
        .details(json!({"request": draft.request, "reason": draft.reason,
                            "groups": caller.groups, "object": object})),
    ];
    let status = if needs_approval {
        TicketStatus::PendingApproval
    } else {
        let ticket =
            db::tickets::detail(tx, ticket_id)
                .await?
                .ok_or_else(|| AppError::NotFound {
                    what: "ticket",
                    id: ticket_id.to_string(),
                })?;
        let (_, approval_audit) = record_approval(
            tx,
            river,
            Decider::Policy,
            &ticket,
            env,
            AUTO_APPROVAL_REASON,
            &Default::default(),
        )
        .await?
        .ok_or_else(|| AppError::Conflict(format!("ticket {ticket_id} was decided meanwhile")))?;
        audit.extend(approval_audit);
        TicketStatus::Approved
    };
    db::audit::append_all(tx, &audit).await?;
    Ok(Submission {
        ticket_id,
        status,
        environment: env,
        created: true,
    })
}
