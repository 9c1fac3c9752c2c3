//! Provisioning and following approved VMs (docs/architecture.md#vms, docs/architecture.md#jobs):
//! what the `vm_provision` job and the clusters' status watchers record. Functions taking a
//! connection write in the caller's transaction, because the worker completes its River job in that
//! same transaction; the others own theirs. None of them calls Kubernetes.

use super::{AppError, parse_stored};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::vms::{ProvisionTarget, VmObservation, WatchedVm};
use crate::domain::ticket::{Operation, TicketStatus};
use crate::domain::vm_state::{Observed, PowerState, VmState, create_outcome};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Who the platform's own changes are attributed to.
pub const PROVISIONER: &str = "system:kubevirt-shepherd";
/// The reason of a VM whose name is taken on its cluster by an object we did not create.
pub const NAME_CONFLICT: &str = "NameConflict";
/// The reason of a VM the platform itself is deleting (an approved delete operation); any
/// other deletion seen on a cluster happened behind the platform's back.
pub const DELETE_REQUESTED: &str = "DeleteRequested";

/// What a provisioning attempt should do.
#[derive(Debug)]
pub enum Begin {
    /// Nothing: the VM is past `Creating` or its ticket is final. The reason says which.
    Skip(String),
    Provision(Box<ProvisionTarget>),
}

/// A provisioning attempt begins: the ticket moves `Approved -> Executing` on the first
/// one, and the first attempt for a VM is audited.
pub async fn begin(pool: &PgPool, vm_id: Uuid, first_attempt: bool) -> Result<Begin, AppError> {
    let mut tx = pool.begin().await?;
    let Some(target) = db::vms::provision_target(&mut tx, vm_id).await? else {
        return Ok(Begin::Skip(format!("VM {vm_id} does not exist")));
    };
    let state: VmState = parse_stored("vms.status", &target.status)?;
    let ticket: TicketStatus = parse_stored("tickets.status", &target.ticket_status)?;
    // Past Creating (or with a final ticket) the work is done, unless the watcher saw the VM
    // before this job could record its apply (a crash in between): then the apply is
    // repeated (it is idempotent) so that the applied spec is recorded.
    let on_cluster = matches!(
        state,
        VmState::Starting
            | VmState::Running
            | VmState::Stopping
            | VmState::Stopped
            | VmState::Migrating
    );
    let unrecorded = on_cluster && !db::vms::has_revision(&mut tx, vm_id).await?;
    if !unrecorded && state != VmState::Creating {
        return Ok(Begin::Skip(format!(
            "VM {} is already {state}",
            target.name
        )));
    }
    if !unrecorded && ticket.is_terminal() {
        return Ok(Begin::Skip(format!(
            "the ticket of VM {} is {ticket}",
            target.name
        )));
    }
    if db::tickets::advance(
        &mut tx,
        target.ticket_id,
        TicketStatus::Approved.as_str(),
        TicketStatus::Executing.as_str(),
        None,
    )
    .await?
    {
        ticket_event(&mut tx, target.ticket_id, TicketStatus::Executing).await?;
        db::tickets::notify_changed(&mut tx, target.ticket_id).await?;
    }
    if first_attempt {
        db::audit::append(
            &mut tx,
            &vm_audit("vm.provision.started", &target).details(json!({
                "cluster": target.cluster, "namespace": target.namespace,
            })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Begin::Provision(Box::new(target)))
}

fn vm_audit(action: &str, target: &ProvisionTarget) -> AuditEntry {
    AuditEntry::new(action, PROVISIONER, "vm", target.id, &target.name)
        .parent("ticket", target.ticket_id)
        .environment(&target.environment)
}

/// The domain event of a ticket reaching `status` (`ticket.<status>`).
pub(crate) async fn ticket_event(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    status: TicketStatus,
) -> Result<(), AppError> {
    db::events::insert(
        conn,
        "ticket",
        ticket_id,
        &format!("ticket.{}", snake(status.as_str())),
        "Completed",
        &json!({"ticket_id": ticket_id, "status": status.as_str()}),
    )
    .await?;
    Ok(())
}

/// `PartiallySucceeded` -> `partially_succeeded`, for dotted action names.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The VM was applied to its cluster: it leaves `Creating` (for `Starting`, or `Stopped`
/// when it was asked to stay off), its uid and a revision of the applied spec are kept, and
/// the ticket is settled. In the caller's transaction.
pub async fn record_applied(
    conn: &mut PgConnection,
    target: &ProvisionTarget,
    spec: &Value,
    k8s_uid: Option<&str>,
) -> Result<(), AppError> {
    // Locks in one order everywhere (ticket, then VM, then the audit chain) so that jobs and
    // watchers of one ticket's VMs cannot deadlock.
    db::tickets::lock_status(conn, target.ticket_id).await?;
    let power: PowerState = parse_stored("vms.desired_power_state", &target.desired_power_state)?;
    let next = match power {
        PowerState::Running => VmState::Starting,
        PowerState::Stopped => VmState::Stopped,
    };
    // The watcher may have seen the VM first; then the row is already past Creating.
    let moved = db::vms::set_observation(
        conn,
        target.id,
        VmState::Creating.as_str(),
        &VmObservation {
            status: next.as_str(),
            status_reason: None,
            ip_address: None,
            node: None,
            last_error: None,
            not_migratable: None,
        },
    )
    .await?;
    if let Some(uid) = k8s_uid {
        db::vms::set_k8s_uid(conn, target.id, uid).await?;
    }
    let revised = db::vms::append_revision_if_changed(conn, target.id, spec, "provisioned").await?;
    let mut audit = vec![vm_audit("vm.provision.applied", target).details(json!({
        "cluster": target.cluster, "namespace": target.namespace, "uid": k8s_uid,
        "newRevision": revised,
    }))];
    if moved {
        vm_event(conn, target.id, next, None).await?;
    }
    settle_ticket(conn, target.ticket_id, &target.environment, &mut audit).await?;
    db::tickets::notify_changed(conn, target.ticket_id).await?;
    db::audit::append_all(conn, &audit).await?;
    Ok(())
}

/// The VM cannot be provisioned (its last attempt failed, or the failure is permanent): it
/// ends `Failed` with the reason, audited, and the ticket is settled. In the caller's
/// transaction.
pub async fn record_failure(
    conn: &mut PgConnection,
    target: &ProvisionTarget,
    reason: &str,
    message: &str,
) -> Result<(), AppError> {
    db::tickets::lock_status(conn, target.ticket_id).await?;
    let failed = db::vms::set_observation(
        conn,
        target.id,
        &target.status,
        &VmObservation {
            status: VmState::Failed.as_str(),
            status_reason: Some(reason),
            ip_address: None,
            node: None,
            last_error: Some(message),
            not_migratable: None,
        },
    )
    .await?;
    if !failed {
        return Ok(());
    }
    let mut audit = vec![vm_audit("vm.provision.failed", target).details(json!({
        "cluster": target.cluster, "namespace": target.namespace,
        "reason": reason, "error": message,
    }))];
    vm_event(conn, target.id, VmState::Failed, Some(reason)).await?;
    // A failure before the ticket started executing still ends it.
    db::tickets::advance(
        conn,
        target.ticket_id,
        TicketStatus::Approved.as_str(),
        TicketStatus::Executing.as_str(),
        None,
    )
    .await?;
    settle_ticket(conn, target.ticket_id, &target.environment, &mut audit).await?;
    db::tickets::notify_changed(conn, target.ticket_id).await?;
    db::audit::append_all(conn, &audit).await?;
    Ok(())
}

/// Notes on a VM still in `Creating` why it waits (e.g. its cluster's credentials), so
/// status shows more than silence. Writes only when the note changes.
pub async fn note_waiting(pool: &PgPool, vm_id: Uuid, message: &str) -> Result<(), AppError> {
    let mut conn = pool.acquire().await?;
    sqlx::query!(
        "UPDATE vms SET last_error = $2 WHERE id = $1 AND status = 'Creating' AND last_error IS DISTINCT FROM $2",
        vm_id,
        message
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn vm_event(
    conn: &mut PgConnection,
    vm_id: Uuid,
    state: VmState,
    reason: Option<&str>,
) -> Result<(), AppError> {
    db::events::insert(
        conn,
        "vm",
        vm_id,
        &format!("vm.state.{}", snake(state.as_str())),
        "Completed",
        &json!({"vm_id": vm_id, "state": state.as_str(), "reason": reason}),
    )
    .await?;
    Ok(())
}

/// Moves an executing create ticket to its outcome once every VM is final (Succeeded,
/// Failed or PartiallySucceeded). The ticket row is locked first so that two VMs settling
/// at once cannot both miss the other's change. The outcome's audit row is pushed onto
/// `audit`, for the caller to append after its last other write.
pub async fn settle_ticket(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    environment: &str,
    audit: &mut Vec<AuditEntry>,
) -> Result<Option<TicketStatus>, AppError> {
    let Some(status) = db::tickets::lock_status(conn, ticket_id).await? else {
        return Ok(None);
    };
    // A clone's VM row belongs to the clone's operation ticket, which its job settles.
    if db::tickets::operation(conn, ticket_id).await?.as_deref() != Some(Operation::Create.as_str())
    {
        return Ok(None);
    }
    let mut current: TicketStatus = parse_stored("tickets.status", &status)?;
    let states = db::vms::states_for_ticket(conn, ticket_id).await?;
    let vms = states
        .iter()
        .map(|(s, p)| {
            Ok((
                parse_stored("vms.status", s)?,
                parse_stored("vms.desired_power_state", p)?,
            ))
        })
        .collect::<Result<Vec<(VmState, PowerState)>, AppError>>()?;
    if current == TicketStatus::Approved && vms.iter().any(|(s, _)| *s != VmState::Creating) {
        db::tickets::advance(conn, ticket_id, "Approved", "Executing", None).await?;
        ticket_event(conn, ticket_id, TicketStatus::Executing).await?;
        current = TicketStatus::Executing;
    }
    if current != TicketStatus::Executing {
        return Ok(None);
    }
    let Some(outcome) = create_outcome(&vms) else {
        return Ok(None);
    };
    let failed = vms
        .iter()
        .filter(|(s, _)| matches!(s, VmState::Failed | VmState::Missing))
        .count();
    let error = (failed > 0).then(|| format!("{failed} of {} VMs failed", vms.len()));
    if !db::tickets::advance(
        conn,
        ticket_id,
        TicketStatus::Executing.as_str(),
        outcome.as_str(),
        error.as_deref(),
    )
    .await?
    {
        return Ok(None);
    }
    ticket_event(conn, ticket_id, outcome).await?;
    audit.push(
        AuditEntry::new(
            &format!("ticket.{}", snake(outcome.as_str())),
            PROVISIONER,
            "ticket",
            ticket_id,
            "create",
        )
        .environment(environment)
        .details(json!({"vms": vms.len(), "failed": failed})),
    );
    Ok(Some(outcome))
}

/// What a cluster's watcher saw for one VM name: the ticket label of the VirtualMachine
/// there and its objects mapped to a state, or nothing. A VirtualMachine labelled for
/// another ticket is not this VM. True when the row changed.
pub async fn record_observation(
    pool: &PgPool,
    cluster_id: Uuid,
    name: &str,
    seen: Option<(&str, &Observed)>,
) -> Result<bool, AppError> {
    let mut tx = pool.begin().await?;
    let Some(ticket_id) = db::vms::live_ticket_on_cluster(&mut tx, cluster_id, name).await? else {
        return Ok(false);
    };
    // Most watch events change nothing (a VM's objects are rewritten several times on the
    // way to Running): they are recognised without locks, so that they do not queue behind
    // the ticket's lock (the provisioning benchmark found ten such waits per VM).
    match db::vms::watched(&mut tx, cluster_id, name).await? {
        Some(row) if may_change(&mut tx, &row, seen).await? => {}
        _ => return Ok(false),
    }
    db::tickets::lock_status(&mut tx, ticket_id).await?;
    let Some(row) = db::vms::watched_for_update(&mut tx, cluster_id, name).await? else {
        return Ok(false);
    };
    let observed = observed_for(&row, seen);
    // A VM the platform deletes is gone once its cluster no longer has it.
    if observed.is_none()
        && row.status == VmState::Deleting.as_str()
        && row.status_reason.as_deref() == Some(DELETE_REQUESTED)
    {
        let deleted =
            record_deleted(&mut tx, row.id, &row.name, row.ticket_id, &row.environment).await?;
        tx.commit().await?;
        return Ok(deleted);
    }
    let Some(next) = next_observation(&row, observed)? else {
        return Ok(false);
    };
    let changed =
        db::vms::set_observation(&mut tx, row.id, &row.status, &observation(&next)).await?;
    if !changed {
        return Ok(false);
    }
    let previous: VmState = parse_stored("vms.status", &row.status)?;
    let mut audit = Vec::new();
    if previous != next.state {
        vm_event(&mut tx, row.id, next.state, next.reason.as_deref()).await?;
        let action = match next.state {
            VmState::Missing => Some("vm.missing"),
            VmState::Failed => Some("vm.failed"),
            VmState::Running if previous == VmState::Starting => Some("vm.provision.running"),
            _ => None,
        };
        if let Some(action) = action {
            audit.push(
                AuditEntry::new(action, PROVISIONER, "vm", row.id, &row.name)
                    .parent("ticket", row.ticket_id)
                    .environment(&row.environment)
                    .details(json!({
                        "from": previous.as_str(), "to": next.state.as_str(),
                        "reason": next.reason, "message": next.message, "node": next.node,
                    })),
            );
        }
        settle_ticket(&mut tx, row.ticket_id, &row.environment, &mut audit).await?;
    }
    db::tickets::notify_changed(&mut tx, row.ticket_id).await?;
    db::audit::append_all(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(true)
}

/// What the watcher saw of `row`'s VM: an object labelled for another ticket is not it.
fn observed_for<'a>(row: &WatchedVm, seen: Option<(&str, &'a Observed)>) -> Option<&'a Observed> {
    let ticket = row.ticket_id.to_string();
    seen.filter(|(t, _)| *t == ticket).map(|(_, o)| o)
}

fn observation(next: &Observed) -> VmObservation<'_> {
    VmObservation {
        status: next.state.as_str(),
        status_reason: next.reason.as_deref(),
        ip_address: next.ip.as_deref(),
        node: next.node.as_deref(),
        last_error: next.message.as_deref(),
        not_migratable: next.not_migratable.as_deref(),
    }
}

/// Whether an observation may change `row` (read without locks): [`record_observation`]
/// decides again under them.
async fn may_change(
    conn: &mut PgConnection,
    row: &WatchedVm,
    seen: Option<(&str, &Observed)>,
) -> Result<bool, AppError> {
    let observed = observed_for(row, seen);
    if observed.is_none()
        && row.status == VmState::Deleting.as_str()
        && row.status_reason.as_deref() == Some(DELETE_REQUESTED)
    {
        return Ok(true);
    }
    Ok(match next_observation(row, observed)? {
        Some(next) => {
            db::vms::observation_differs(conn, row.id, &row.status, &observation(&next)).await?
        }
        None => false,
    })
}

/// The row's next state from an observation; None when the row must stay as it is.
fn next_observation(
    row: &WatchedVm,
    observed: Option<&Observed>,
) -> Result<Option<Observed>, AppError> {
    let current: VmState = parse_stored("vms.status", &row.status)?;
    let deleted_by_us = row.status_reason.as_deref() == Some(DELETE_REQUESTED);
    if current == VmState::Deleted || (current == VmState::Deleting && deleted_by_us) {
        return Ok(None);
    }
    // A name held by someone else's object stays a conflict whatever that object does.
    if current == VmState::Failed && row.status_reason.as_deref() == Some(NAME_CONFLICT) {
        return Ok(None);
    }
    Ok(match observed {
        Some(o) => Some(o.clone()),
        // Not applied yet, or already known to be gone.
        None if matches!(current, VmState::Creating | VmState::Missing) => None,
        None => Some(Observed {
            state: VmState::Missing,
            reason: Some("DeletedOutOfBand".into()),
            message: Some(
                "the VirtualMachine disappeared from its cluster without the platform deleting it"
                    .into(),
            ),
            ip: None,
            node: None,
            not_migratable: None,
        }),
    })
}

/// A VM the platform is deleting is gone from its cluster: it becomes `Deleted`, audited,
/// with its event. Called by the delete job and by the cluster's watcher, whichever sees it
/// first; the second changes nothing. In the caller's transaction. True when it changed.
pub async fn record_deleted(
    conn: &mut PgConnection,
    vm_id: Uuid,
    vm_name: &str,
    ticket_id: Uuid,
    environment: &str,
) -> Result<bool, AppError> {
    if !db::vms::mark_deleted(conn, vm_id).await? {
        return Ok(false);
    }
    db::events::insert(
        conn,
        "vm",
        vm_id,
        "vm.state.deleted",
        "Completed",
        &json!({"vm_id": vm_id, "state": "Deleted"}),
    )
    .await?;
    db::tickets::notify_changed(conn, ticket_id).await?;
    db::audit::append(
        conn,
        &AuditEntry::new("vm.deleted", PROVISIONER, "vm", vm_id, vm_name)
            .parent("ticket", ticket_id)
            .environment(environment),
    )
    .await?;
    Ok(true)
}
