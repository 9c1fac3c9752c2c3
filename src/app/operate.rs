//! Carrying out approved day-2 operations (docs/architecture.md#day-2-operations): what the
//! `vm_operate` job records. Functions taking a connection write in the caller's
//! transaction (the worker completes its River job in that same transaction); the others own
//! theirs. None of them calls Kubernetes.

use super::provisioning::{DELETE_REQUESTED, PROVISIONER, ticket_event};
use super::{AppError, parse_stored};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::tickets::OperationTarget;
use crate::db::vms::NewClone;
use crate::domain::operation::check_admissible;
use crate::domain::render::{VmLabels, vm_labels};
use crate::domain::ticket::{Operation, TicketStatus};
use crate::domain::vm_name::vm_name;
use crate::domain::vm_state::{PowerState, VmState};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An operation's ticket with its parsed operation and states.
#[derive(Debug, Clone)]
pub struct Operating {
    pub target: OperationTarget,
    pub operation: Operation,
    pub vm_state: VmState,
}

impl Operating {
    fn audit(&self, action: &str) -> AuditEntry {
        AuditEntry::new(
            action,
            PROVISIONER,
            "vm",
            self.target.vm_id,
            &self.target.vm_name,
        )
        .parent("ticket", self.target.ticket_id)
        .environment(&self.target.environment)
    }

    /// `vm.<operation>.<step>`, the dotted name of the audit rows and events of one step.
    fn action(&self, step: &str) -> String {
        format!("vm.{}.{step}", self.operation.as_str())
    }

    /// A value the operation recorded in its ticket's result.
    pub fn recorded(&self, key: &str) -> Option<&Value> {
        self.target.result.as_ref().and_then(|r| r.get(key))
    }
}

/// What an attempt of the `vm_operate` job should do.
#[derive(Debug)]
pub enum Begin {
    /// Nothing: the ticket is final or gone. The text says why.
    Skip(String),
    /// Not yet: another operation on the same VM is executing.
    Wait(String),
    Operate(Box<Operating>),
}

/// An attempt begins: the ticket moves `Approved -> Executing` (audited once), unless
/// another operation on the same VM is executing: operations on one VM run one at a time.
pub async fn begin(pool: &PgPool, ticket_id: Uuid) -> Result<Begin, AppError> {
    let mut tx = pool.begin().await?;
    // Lock order everywhere: ticket, then VM, then (last, before commit) the audit chain.
    if db::tickets::lock_status(&mut tx, ticket_id)
        .await?
        .is_none()
    {
        return Ok(Begin::Skip(format!("ticket {ticket_id} does not exist")));
    }
    let Some(target) = db::tickets::operation_target(&mut tx, ticket_id).await? else {
        return Ok(Begin::Skip(format!("ticket {ticket_id} names no VM")));
    };
    let status: TicketStatus = parse_stored("tickets.status", &target.ticket_status)?;
    if !matches!(status, TicketStatus::Approved | TicketStatus::Executing) {
        return Ok(Begin::Skip(format!("ticket {ticket_id} is {status}")));
    }
    db::vms::lock(&mut tx, target.vm_id).await?;
    if let Some(other) =
        db::tickets::other_executing_on_vm(&mut tx, target.vm_id, ticket_id).await?
    {
        return Ok(Begin::Wait(format!(
            "ticket {other} is executing on VM {}",
            target.vm_name
        )));
    }
    let operating = Operating {
        operation: parse_stored("tickets.operation", &target.operation)?,
        vm_state: parse_stored("vms.status", &target.vm_status)?,
        target,
    };
    if status == TicketStatus::Approved {
        db::tickets::advance(&mut tx, ticket_id, "Approved", "Executing", None).await?;
        ticket_event(&mut tx, ticket_id, TicketStatus::Executing).await?;
        db::tickets::notify_changed(&mut tx, ticket_id).await?;
        db::audit::append(
            &mut tx,
            &operating
                .audit(&operating.action("started"))
                .details(json!({
                    "cluster": operating.target.cluster, "namespace": operating.target.namespace,
                    "request": operating.target.request,
                })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Begin::Operate(Box::new(operating)))
}

/// Whether the VM still accepts the operation (it may have changed since admission, e.g. a
/// delete was approved meanwhile): the same rule admission applied. The refusal's text
/// when it does not.
pub fn still_admissible(op: &Operating) -> Result<(), String> {
    // An approved delete has already moved its VM to Deleting.
    if op.operation == Operation::Delete {
        return Ok(());
    }
    check_admissible(&op.target.vm_name, op.vm_state, None, op.operation).map_err(|r| r.to_string())
}

async fn vm_event(
    conn: &mut PgConnection,
    op: &Operating,
    step: &str,
    status: &str,
    details: &Value,
) -> Result<(), AppError> {
    db::events::insert(
        conn,
        "vm",
        op.target.vm_id,
        &op.action(step),
        status,
        &json!({"vm_id": op.target.vm_id, "ticket_id": op.target.ticket_id, "details": details}),
    )
    .await?;
    Ok(())
}

/// Records a step of the operation (e.g. the restart was requested) in the ticket's result,
/// with its audit row, so that a retried attempt knows what was already done.
pub async fn record_step(
    pool: &PgPool,
    op: &Operating,
    step: &str,
    fields: Value,
) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    db::tickets::lock_status(&mut tx, op.target.ticket_id).await?;
    db::tickets::merge_result(&mut tx, op.target.ticket_id, &fields).await?;
    vm_event(&mut tx, op, step, "Processing", &fields).await?;
    db::audit::append(&mut tx, &op.audit(&op.action(step)).details(fields)).await?;
    tx.commit().await?;
    Ok(())
}

/// The power state users asked for changes with start, stop and restart, before the cluster
/// is asked, so a later render (and a crash right after the request) keeps it.
pub async fn record_desired_power(
    pool: &PgPool,
    op: &Operating,
    power: PowerState,
) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    db::vms::lock(&mut tx, op.target.vm_id).await?;
    if db::vms::set_desired_power(&mut tx, op.target.vm_id, power.as_str()).await? {
        db::audit::append(
            &mut tx,
            &op.audit("vm.power.desired").details(json!({
                "from": op.target.desired_power_state, "to": power.as_str(),
            })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The snapshot object exists on the cluster: it is recorded (once) so that it can be
/// listed and restored.
pub async fn record_snapshot(
    pool: &PgPool,
    op: &Operating,
    cluster_id: Uuid,
    name: &str,
) -> Result<(), AppError> {
    let mut conn = pool.acquire().await?;
    db::snapshots::insert_once(
        &mut conn,
        &db::snapshots::NewSnapshot {
            vm_id: op.target.vm_id,
            ticket_id: op.target.ticket_id,
            cluster_id,
            namespace: &op.target.namespace,
            name,
        },
    )
    .await?;
    Ok(())
}

/// A clone as the worker makes it: its name and the platform's labels.
#[derive(Debug, Clone)]
pub struct CloneTarget {
    pub name: String,
    pub labels: serde_json::Map<String, Value>,
}

/// The clone's name and row, allocated once per ticket: the Service's next index, in the
/// source's namespace, on the source's cluster. A retried attempt gets the same clone.
pub async fn allocate_clone(pool: &PgPool, op: &Operating) -> Result<CloneTarget, AppError> {
    let mut tx = pool.begin().await?;
    db::tickets::lock_status(&mut tx, op.target.ticket_id).await?;
    // The clone shares its source's namespace, System and Service.
    let names = db::services::names_for_vm(&mut tx, op.target.vm_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "vm",
            id: op.target.vm_name.clone(),
        })?;
    let target = |name: String, instance_index: i32| CloneTarget {
        name,
        labels: vm_labels(&VmLabels {
            system: &names.system,
            service: &names.service,
            instance_index,
            ticket_id: op.target.ticket_id,
            created_by: &op.target.requester,
        }),
    };
    if let Some((name, index)) = db::vms::clone_of_ticket(&mut tx, op.target.ticket_id).await? {
        return Ok(target(name, index));
    }
    let index = db::services::allocate_instance_indexes(&mut tx, op.target.service_id, 1)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "service",
            id: names.service.clone(),
        })?;
    let name = vm_name(
        &names.namespace,
        &names.system,
        &names.service,
        index as u32,
    )
    .map_err(|e| AppError::invalid("vm name", e))?;
    let clone_id = db::vms::insert_clone(
        &mut tx,
        &NewClone {
            source_id: op.target.vm_id,
            name: &name,
            ticket_id: op.target.ticket_id,
            instance_index: index,
            created_by: &op.target.requester,
        },
    )
    .await?
    .ok_or_else(|| AppError::NotFound {
        what: "vm",
        id: op.target.vm_name.clone(),
    })?;
    db::tickets::merge_result(&mut tx, op.target.ticket_id, &json!({"clone": name})).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new("vm.create", PROVISIONER, "vm", clone_id, &name)
            .parent("ticket", op.target.ticket_id)
            .environment(&op.target.environment)
            .details(
                json!({"cloneOf": op.target.vm_name, "requester": op.target.requester,
                            "approver": op.target.approver}),
            ),
    )
    .await?;
    tx.commit().await?;
    Ok(target(name, index))
}

/// The operation succeeded: the ticket becomes `Succeeded` with its result, audited, with
/// events. In the caller's transaction.
pub async fn record_success(
    conn: &mut PgConnection,
    op: &Operating,
    result: Value,
) -> Result<(), AppError> {
    let ticket_id = op.target.ticket_id;
    db::tickets::lock_status(conn, ticket_id).await?;
    if op.operation == Operation::Snapshot {
        db::snapshots::mark_ready(conn, ticket_id).await?;
    }
    db::tickets::merge_result(conn, ticket_id, &result).await?;
    if !db::tickets::advance(conn, ticket_id, "Executing", "Succeeded", None).await? {
        return Ok(());
    }
    ticket_event(conn, ticket_id, TicketStatus::Succeeded).await?;
    vm_event(conn, op, "succeeded", "Completed", &result).await?;
    db::tickets::notify_changed(conn, ticket_id).await?;
    db::audit::append(conn, &op.audit(&op.action("succeeded")).details(result)).await?;
    Ok(())
}

/// The operation failed for good: the ticket becomes `Failed` with the reason, the VM's
/// last error says what failed, audited, with a `Failed` event. The VM's state keeps
/// following its cluster: a failed snapshot does not make a running VM `Failed`. In the
/// caller's transaction.
pub async fn record_failure(
    conn: &mut PgConnection,
    op: &Operating,
    reason: &str,
    message: &str,
) -> Result<(), AppError> {
    let ticket_id = op.target.ticket_id;
    db::tickets::lock_status(conn, ticket_id).await?;
    let error = format!("{reason}: {message}");
    // A failure before the ticket started executing still ends it.
    db::tickets::advance(conn, ticket_id, "Approved", "Executing", None).await?;
    if !db::tickets::advance(conn, ticket_id, "Executing", "Failed", Some(&error)).await? {
        return Ok(());
    }
    db::tickets::merge_result(conn, ticket_id, &json!({"failureReason": reason})).await?;
    db::vms::set_last_error(
        conn,
        op.target.vm_id,
        &format!("{} failed: {error}", op.operation.as_str()),
    )
    .await?;
    // A delete that could not be carried out gives its VM back: the watcher shows its state
    // again, and a new delete may be asked for.
    if op.operation == Operation::Delete {
        db::vms::set_observation(
            conn,
            op.target.vm_id,
            VmState::Deleting.as_str(),
            &db::vms::VmObservation {
                status: VmState::Failed.as_str(),
                status_reason: Some("DeleteFailed"),
                ip_address: None,
                node: None,
                last_error: Some(&error),
                not_migratable: None,
            },
        )
        .await?;
    }
    // A clone that never came to be leaves no live row behind.
    if let Some(clone) = db::vms::made_by_ticket(conn, ticket_id).await?
        && clone.status == VmState::Creating.as_str()
    {
        db::vms::mark_deleting(conn, clone.id, VmState::Creating.as_str(), DELETE_REQUESTED)
            .await?;
        db::vms::mark_deleted(conn, clone.id).await?;
    }
    let details = json!({"reason": reason, "message": message});
    ticket_event(conn, ticket_id, TicketStatus::Failed).await?;
    vm_event(conn, op, "failed", "Failed", &details).await?;
    db::tickets::notify_changed(conn, ticket_id).await?;
    db::audit::append(conn, &op.audit(&op.action("failed")).details(details)).await?;
    Ok(())
}
