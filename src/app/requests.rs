//! VmRequests: validation against the catalog and the caller's rights, then the one
//! submission path (`submission`) that records the ticket.

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use super::submission::{Submission, TicketDraft, record, recorded_submission};
use crate::db;
use crate::domain::Environment;
use crate::domain::permissions::Permission;
use crate::domain::ticket::{Operation, TicketStatus};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A VmRequest as the platform reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRequestInput {
    pub uid: String,
    pub object_namespace: String,
    pub object_name: String,
    pub system: String,
    pub service: String,
    pub target_namespace: String,
    pub template: String,
    pub instance_size: String,
    pub count: i32,
    pub disk_gib: Option<i32>,
    pub reason: String,
}

/// What validation resolved.
#[derive(Debug, Clone)]
pub struct ResolvedRequest {
    pub system: SystemRef,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    pub environment: Environment,
    pub disk_gib: i32,
}

/// Every check a VmRequest must pass, without writing anything. Used by the admission
/// webhook (early, with a good message) and again by the reconciler (which never trusts
/// that the webhook ran).
pub async fn validate_vm_request(
    conn: &mut PgConnection,
    caller: &Caller,
    input: &VmRequestInput,
) -> Result<ResolvedRequest, AppError> {
    if !(1..=10).contains(&input.count) {
        return Err(AppError::invalid(
            "spec.count",
            format!("must be between 1 and 10, got {}", input.count),
        ));
    }
    // One round trip for every name (the webhook answers each VmRequest with this); the
    // checks below still run, and answer, in order.
    let found = db::catalog::request_references(
        conn,
        &input.system,
        &input.target_namespace,
        &input.service,
        &input.template,
        &input.instance_size,
    )
    .await?;
    let system = match (found.system_id, found.system_name) {
        (Some(id), Some(name)) => SystemRef { id, name },
        _ => {
            return Err(AppError::NotFound {
                what: "system",
                id: input.system.clone(),
            });
        }
    };
    let (Some(namespace_id), Some(namespace_environment)) =
        (found.namespace_id, found.namespace_environment)
    else {
        return Err(AppError::invalid(
            "spec.targetNamespace",
            format!(
                "namespace {:?} is not registered: a platform admin must create a VmNamespace for it",
                input.target_namespace
            ),
        ));
    };
    let environment: Environment = namespace_environment
        .parse()
        .map_err(|e| AppError::invalid("spec.targetNamespace", format!("{e}")))?;
    // Permission before anything else about the System, so an invisible System's
    // Services cannot be probed.
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::VmCreate,
            action: "request VMs",
            system: Some(&system),
            environment: Some(environment),
        },
    )
    .await?;
    let service_id = found.service_id.ok_or_else(|| AppError::NotFound {
        what: "service",
        id: format!("{}.{}", input.system, input.service),
    })?;
    if !found.template_exists {
        return Err(AppError::invalid(
            "spec.template",
            format!("template {:?} does not exist", input.template),
        ));
    }
    let (Some(size_name), Some(disk_min_gib), Some(disk_max_gib)) =
        (found.size_name, found.disk_min_gib, found.disk_max_gib)
    else {
        return Err(AppError::invalid(
            "spec.instanceSize",
            format!("instance size {:?} does not exist", input.instance_size),
        ));
    };
    let disk_gib = input.disk_gib.unwrap_or(disk_min_gib);
    if disk_gib < disk_min_gib || disk_gib > disk_max_gib {
        return Err(AppError::invalid(
            "spec.diskGib",
            format!(
                "{disk_gib} GiB is outside instance size {size_name:?}'s range {disk_min_gib}..={disk_max_gib} GiB"
            ),
        ));
    }
    Ok(ResolvedRequest {
        system,
        service_id,
        namespace_id,
        environment,
        disk_gib,
    })
}

fn request_document(input: &VmRequestInput, disk_gib: i32) -> Value {
    json!({
        "system": input.system, "service": input.service, "targetNamespace": input.target_namespace,
        "template": input.template, "instanceSize": input.instance_size, "count": input.count,
        "diskGiB": disk_gib,
    })
}

/// A pending ticket of the same requester asking for exactly the same thing blocks a new one.
pub async fn check_duplicate(
    conn: &mut PgConnection,
    caller: &Caller,
    input: &VmRequestInput,
    resolved: &ResolvedRequest,
) -> Result<(), AppError> {
    let request = request_document(input, resolved.disk_gib);
    if let Some(existing) = db::tickets::pending_duplicate(
        conn,
        Operation::Create.as_str(),
        &caller.username,
        resolved.service_id,
        resolved.namespace_id,
        &request,
    )
    .await?
    {
        return Err(AppError::Conflict(format!(
            "an identical request by {:?} is already pending approval as ticket {existing}; wait for its decision or delete it",
            caller.username
        )));
    }
    Ok(())
}

fn parse_status(s: &str) -> Result<TicketStatus, AppError> {
    s.parse()
        .map_err(|e| AppError::invalid("tickets.status", format!("{e}")))
}

fn parse_env(s: &str) -> Result<Environment, AppError> {
    s.parse()
        .map_err(|e| AppError::invalid("tickets.environment", format!("{e}")))
}

/// Records the VmRequest's ticket once per object uid (see [`super::submission`]).
pub async fn submit_vm_request(
    pool: &PgPool,
    river: &riverqueue::Client,
    caller: &Caller,
    input: &VmRequestInput,
) -> Result<Submission, AppError> {
    let mut tx = pool.begin().await?;
    if let Some(existing) = recorded_submission(&mut tx, &input.uid).await? {
        return Ok(existing);
    }
    let resolved = validate_vm_request(&mut tx, caller, input).await?;
    check_duplicate(&mut tx, caller, input, &resolved).await?;
    let draft = TicketDraft {
        uid: &input.uid,
        object_namespace: &input.object_namespace,
        object_name: &input.object_name,
        operation: Operation::Create,
        environment: resolved.environment,
        service_id: resolved.service_id,
        namespace_id: resolved.namespace_id,
        vm_id: None,
        vm_count: input.count,
        reason: &input.reason,
        request: request_document(input, resolved.disk_gib),
    };
    let submission = record(&mut tx, river, caller, draft).await?;
    tx.commit().await?;
    Ok(submission)
}

/// Cancels the pending ticket of a deleted VmRequest or VmOperation (`kind`). Returns the
/// ticket's state afterwards (None when the object never got a ticket). A decided ticket is
/// left as it is.
pub async fn cancel_for_deleted_object(
    pool: &PgPool,
    actor: &str,
    uid: &str,
    kind: &str,
) -> Result<Option<TicketStatus>, AppError> {
    let mut tx = pool.begin().await?;
    let Some(ticket) = db::tickets::by_request_uid(&mut tx, uid).await? else {
        return Ok(None);
    };
    let reason = format!("the {kind} was deleted");
    let Some(cancelled) = db::tickets::cancel(&mut tx, ticket.id, &reason).await? else {
        return Ok(Some(parse_status(&ticket.status)?));
    };
    super::tickets::record_cancellation(&mut tx, &cancelled, actor, &reason).await?;
    tx.commit().await?;
    Ok(Some(TicketStatus::Cancelled))
}

/// A ticket as its VmRequest's status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    pub ticket_id: Uuid,
    pub status: TicketStatus,
    pub environment: Environment,
    pub approver: Option<String>,
    pub decision_reason: Option<String>,
    pub vms: Vec<db::vms::VmSummary>,
    /// What an operation produced (`tickets.result`), for an operation ticket.
    pub result: Option<serde_json::Value>,
    pub error_message: Option<String>,
}

pub async fn ticket_view(pool: &PgPool, ticket_id: Uuid) -> Result<TicketView, AppError> {
    let mut conn = pool.acquire().await?;
    let ticket = db::tickets::get(&mut conn, ticket_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "ticket",
            id: ticket_id.to_string(),
        })?;
    Ok(TicketView {
        ticket_id,
        status: parse_status(&ticket.status)?,
        environment: parse_env(&ticket.environment)?,
        approver: ticket.approver,
        decision_reason: ticket.decision_reason,
        // A create ticket lists the VMs it made; an operation ticket the VM it acts on (and
        // a clone's the VM it made).
        vms: match ticket.vm_id {
            Some(vm_id) => {
                let mut vms: Vec<_> = db::vms::summary(&mut conn, vm_id)
                    .await?
                    .into_iter()
                    .collect();
                vms.extend(db::vms::made_by_ticket(&mut conn, ticket_id).await?);
                vms
            }
            None => db::vms::for_ticket(&mut conn, ticket_id).await?,
        },
        result: db::tickets::result(&mut conn, ticket_id).await?,
        error_message: ticket.error_message,
    })
}
