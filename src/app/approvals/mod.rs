//! Deciding tickets with authority (docs/architecture.md#tickets-and-approval). Approval is
//! one transaction: the decision, snapshots of the template version and instance size,
//! final resources, one VM row per VM with its generated name and placement, one River job
//! per VM, domain events and, last, audit rows. Rejection creates no VM and no job. Of
//! concurrent decisions one wins.

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use super::job_args::{OperateVm, ProvisionVm};
use super::provisioning::DELETE_REQUESTED;
use crate::crd::approval::Overrides;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::tickets::{ApprovalRecord, TicketDetail, TicketRow};
use crate::db::vms::{NewVm, VmSummary};
use crate::domain::Environment;
use crate::domain::permissions::{Permission, can_decide};
use crate::domain::ticket::{Operation, TicketStatus, check_transition};
use crate::domain::vm_name::vm_name;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

mod plan;

use crate::domain::placement;
pub use plan::Plan;
use plan::plan;

/// A plan and the names its VMs would get if approved now.
#[derive(Debug, Clone)]
pub struct PreviewResult {
    pub plan: Plan,
    pub vm_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Approved {
    pub ticket_id: Uuid,
    pub cluster: String,
    pub vms: Vec<VmSummary>,
    pub warnings: Vec<String>,
}

async fn load(conn: &mut PgConnection, ticket_id: Uuid) -> Result<TicketDetail, AppError> {
    db::tickets::detail(conn, ticket_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "ticket",
            id: ticket_id.to_string(),
        })
}

/// The approver may decide: authority for the ticket's System and environment, and not
/// their own ticket.
async fn authorize_decision(
    conn: &mut PgConnection,
    caller: &Caller,
    ticket: &TicketDetail,
) -> Result<Environment, AppError> {
    let env: Environment = ticket
        .environment
        .parse()
        .map_err(|e| AppError::invalid("tickets.environment", e))?;
    // Separation of duties first: it holds whatever roles the requester has.
    can_decide(&ticket.requester, &caller.username)
        .map_err(|e| AppError::Forbidden(e.to_string()))?;
    let system = SystemRef {
        id: ticket.system_id,
        name: ticket.system_name.clone(),
    };
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::ApprovalApprove,
            action: "decide tickets",
            system: Some(&system),
            environment: Some(env),
        },
    )
    .await?;
    Ok(env)
}

/// What approving would do, without writing anything.
pub async fn preview(
    pool: &PgPool,
    caller: &Caller,
    ticket_id: Uuid,
    overrides: &Overrides,
) -> Result<PreviewResult, AppError> {
    let mut conn = pool.acquire().await?;
    let ticket = load(&mut conn, ticket_id).await?;
    let env = authorize_decision(&mut conn, caller, &ticket).await?;
    ensure_pending(&mut conn, &ticket).await?;
    let plan = plan(&mut conn, &ticket, env, overrides).await?;
    let first = db::services::next_instance_index(&mut conn, ticket.service_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "service",
            id: ticket.service_name.clone(),
        })?;
    let vm_names = vm_names(&ticket, first)?;
    Ok(PreviewResult { plan, vm_names })
}

/// The names of a ticket's VMs from the first allocated index on.
fn vm_names(ticket: &TicketDetail, first: i32) -> Result<Vec<String>, AppError> {
    (first..first + ticket.vm_count)
        .map(|index| {
            vm_name(
                &ticket.namespace_name,
                &ticket.system_name,
                &ticket.service_name,
                index as u32,
            )
            .map_err(|e| AppError::invalid("vm name", e))
        })
        .collect()
}

/// Who decides a ticket: a person, or the approval policy for an operation it exempts.
/// The audit row and the domain event say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decider<'a> {
    Person(&'a str),
    Policy,
}

impl Decider<'_> {
    /// The name recorded as the ticket's approver.
    pub fn name(&self) -> &str {
        match self {
            Decider::Person(name) => name,
            Decider::Policy => AUTO_APPROVER,
        }
    }

    /// The audit action and domain event of the approval.
    pub fn approval_action(&self) -> &'static str {
        match self {
            Decider::Person(_) => "approval.approve",
            Decider::Policy => "approval.auto",
        }
    }
}

/// The approver recorded for a policy-exempt ticket.
pub const AUTO_APPROVER: &str = "system:approval-policy";
/// The decision reason recorded for a policy-exempt operation.
pub const AUTO_APPROVAL_REASON: &str = "approval policy exempts this operation";

pub async fn approve(
    pool: &PgPool,
    river: &riverqueue::Client,
    caller: &Caller,
    ticket_id: Uuid,
    reason: &str,
    overrides: &Overrides,
) -> Result<Approved, AppError> {
    let mut tx = pool.begin().await?;
    let ticket = load(&mut tx, ticket_id).await?;
    let env = authorize_decision(&mut tx, caller, &ticket).await?;
    ensure_pending(&mut tx, &ticket).await?;
    let decider = Decider::Person(&caller.username);
    let Some((approved, audit)) =
        record_approval(&mut tx, river, decider, &ticket, env, reason, overrides).await?
    else {
        drop(tx);
        return Err(super::tickets::lost_race(pool, ticket_id).await);
    };
    db::audit::append_all(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(approved)
}

/// Everything approving `ticket` writes, in the caller's transaction, for every decider and
/// every operation: the one approval path. None when the ticket was no longer pending (a
/// concurrent decision won; the caller rolls back). Authorisation is the caller's job:
/// `approve` checks the person; a policy-exempt ticket is approved as it is submitted.
///
/// The approval's audit rows are returned, not appended: the caller appends them after its
/// last other write, right before commit (`db::audit::append` says why).
pub(crate) async fn record_approval(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    river: &riverqueue::Client,
    decider: Decider<'_>,
    ticket: &TicketDetail,
    env: Environment,
    reason: &str,
    overrides: &Overrides,
) -> Result<Option<(Approved, Vec<AuditEntry>)>, AppError> {
    if ticket.operation == Operation::Create.as_str() {
        record_create_approval(tx, river, decider, ticket, env, reason, overrides).await
    } else if overrides != &Overrides::default() {
        Err(AppError::invalid(
            "overrides",
            format!(
                "overrides apply to create tickets; this is a {} ticket",
                ticket.operation
            ),
        ))
    } else {
        record_operation_approval(tx, river, decider, ticket, env, reason).await
    }
}

/// Placement looked at the clusters without locks; the chosen cluster's row is locked now
/// and the rules checked again, so two approvals racing for its last `maxVms` slots (or an
/// approval racing a change of its environment or health) cannot both pass: the second
/// waits for the first to commit and then sees its VMs. It runs after the approval's other
/// writes, just before the audit rows and the commit, because every approval placing on the
/// cluster waits for this lock: the shorter it is held, the more approvals per second (the
/// use-case benchmark measured 0.6 as many approvals per second with the lock taken first).
async fn recheck_under_lock(
    tx: &mut PgConnection,
    plan: &Plan,
    env: Environment,
    ticket_id: Uuid,
) -> Result<(), AppError> {
    let locked = db::catalog::lock_cluster_candidate(tx, plan.cluster.id, ticket_id)
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!("cluster {:?} was deleted", plan.cluster.name))
        })?;
    placement::check(&plan::facts(&locked)?, env, &plan.needs)
        .map_err(|e| AppError::Conflict(format!("placement changed meanwhile: {e}")))
}

/// Moves the ticket from pending to approved: the conditional UPDATE that serialises
/// concurrent decisions (a concurrent decider waits on the row lock, then finds the ticket
/// decided: false).
async fn mark_approved(
    tx: &mut PgConnection,
    ticket_id: Uuid,
    approver: &str,
    reason: &str,
) -> Result<bool, AppError> {
    let decided = db::tickets::decide(
        tx,
        ticket_id,
        TicketStatus::PendingApproval.as_str(),
        TicketStatus::Approved.as_str(),
        approver,
        reason,
    )
    .await?;
    Ok(decided.is_some())
}

/// Approving a create ticket: the decision, snapshots, final resources, VM rows with names
/// and placement, one River job per VM and domain events; the audit rows (one per VM, then
/// the decision's) are returned for the caller to append last.
async fn record_create_approval(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    river: &riverqueue::Client,
    decider: Decider<'_>,
    ticket: &TicketDetail,
    env: Environment,
    reason: &str,
    overrides: &Overrides,
) -> Result<Option<(Approved, Vec<AuditEntry>)>, AppError> {
    let ticket_id = ticket.id;
    let approver = decider.name();
    let plan = plan(tx, ticket, env, overrides).await?;
    if !mark_approved(tx, ticket_id, approver, reason).await? {
        return Ok(None);
    }
    let overrides_json = serde_json::to_value(overrides).unwrap_or(Value::Null);
    let resources_json = serde_json::to_value(&plan.resources).unwrap_or(Value::Null);
    let size_json = json!({
        "name": plan.size.name, "cpuCores": plan.size.cpu_cores, "memoryMiB": plan.size.memory_mib,
        "cpuOvercommit": plan.size.cpu_overcommit, "memoryOvercommit": plan.size.memory_overcommit,
        "dedicatedCpu": plan.size.dedicated_cpu, "hugepages": plan.size.hugepages_size, "gpus": plan.size.gpus,
        "specOverrides": plan.size.spec_overrides,
    });
    let template_json = json!({"version": plan.template.version, "spec": plan.template.spec});
    db::tickets::record_approval(
        tx,
        ticket_id,
        &ApprovalRecord {
            cluster_id: plan.cluster.id,
            template_version_id: plan.template.id,
            template_snapshot: &template_json,
            instance_size_snapshot: &size_json,
            final_resources: &resources_json,
            overrides: &overrides_json,
        },
    )
    .await?;
    let first = db::services::allocate_instance_indexes(tx, ticket.service_id, ticket.vm_count)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "service",
            id: ticket.service_name.clone(),
        })?;
    let mut audit = Vec::new();
    for (index, name) in (first..).zip(vm_names(ticket, first)?) {
        let vm_id = db::vms::insert(
            tx,
            &NewVm {
                name: &name,
                ticket_id,
                service_id: ticket.service_id,
                namespace_id: ticket.namespace_id,
                cluster_id: plan.cluster.id,
                instance_index: index,
                instance_size_id: plan.size.id,
                template_version_id: plan.template.id,
                storage_class: plan.storage_class.as_deref(),
                created_by: &ticket.requester,
            },
        )
        .await?;
        river.insert(ProvisionVm { vm_id }).tx(&mut *tx).await?;
        db::events::insert(
            tx,
            "vm",
            vm_id,
            "vm.create",
            "Pending",
            &json!({"vm_id": vm_id, "name": name, "ticket_id": ticket_id}),
        )
        .await?;
        audit.push(
            AuditEntry::new("vm.create", approver, "vm", vm_id, &name)
                .parent("ticket", ticket_id)
                .environment(env.as_str())
                .details(json!({"cluster": plan.cluster.name, "requester": ticket.requester})),
        );
    }
    db::events::insert(
        tx,
        "ticket",
        ticket_id,
        decider.approval_action(),
        "Completed",
        &json!({"ticket_id": ticket_id, "approver": approver}),
    )
    .await?;
    audit.push(
        AuditEntry::new(
            decider.approval_action(),
            approver,
            "ticket",
            ticket_id,
            &ticket.operation,
        )
        .parent("service", ticket.service_id)
        .environment(env.as_str())
        .details(json!({
            "reason": reason, "requester": ticket.requester, "cluster": plan.cluster.name,
            "resources": resources_json, "templateVersion": plan.template.version,
            "overrides": overrides_json, "warnings": plan.warnings,
        })),
    );
    let vms = db::vms::for_ticket(tx, ticket_id).await?;
    recheck_under_lock(tx, &plan, env, ticket_id).await?;
    let approved = Approved {
        ticket_id,
        cluster: plan.cluster.name,
        vms,
        warnings: plan.warnings,
    };
    Ok(Some((approved, audit)))
}

/// Approving a day-2 operation: the decision, its River job (the ticket id only) and a domain
/// event; the audit row is returned for the caller to append last.
async fn record_operation_approval(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    river: &riverqueue::Client,
    decider: Decider<'_>,
    ticket: &TicketDetail,
    env: Environment,
    reason: &str,
) -> Result<Option<(Approved, Vec<AuditEntry>)>, AppError> {
    let ticket_id = ticket.id;
    let approver = decider.name();
    if !mark_approved(tx, ticket_id, approver, reason).await? {
        return Ok(None);
    }
    river.insert(OperateVm { ticket_id }).tx(&mut *tx).await?;
    // An approved delete takes its VM out of service at once: no new operation is accepted
    // on it, and the watcher does not call its disappearance "missing".
    if ticket.operation == Operation::Delete.as_str()
        && let Some(vm_id) = ticket.vm_id
        && let Some(state) = db::vms::lock(tx, vm_id).await?
        && db::vms::mark_deleting(tx, vm_id, &state, DELETE_REQUESTED).await?
    {
        db::events::insert(
            tx,
            "vm",
            vm_id,
            "vm.state.deleting",
            "Completed",
            &json!({"vm_id": vm_id, "state": "Deleting", "reason": DELETE_REQUESTED}),
        )
        .await?;
    }
    db::events::insert(
        tx,
        "ticket",
        ticket_id,
        decider.approval_action(),
        "Processing",
        &json!({"ticket_id": ticket_id, "approver": approver, "operation": ticket.operation}),
    )
    .await?;
    let mut entry = AuditEntry::new(
        decider.approval_action(),
        approver,
        "ticket",
        ticket_id,
        &ticket.operation,
    )
    .environment(env.as_str())
    .details(json!({"reason": reason, "requester": ticket.requester, "request": ticket.request}));
    if let Some(vm_id) = ticket.vm_id {
        entry = entry.parent("vm", vm_id);
    }
    let vms = match ticket.vm_id {
        Some(vm_id) => db::vms::summary(tx, vm_id).await?.into_iter().collect(),
        None => Vec::new(),
    };
    let approved = Approved {
        ticket_id,
        cluster: vms
            .first()
            .and_then(|v: &VmSummary| v.cluster.clone())
            .unwrap_or_default(),
        vms,
        warnings: Vec::new(),
    };
    Ok(Some((approved, vec![entry])))
}

pub async fn reject(
    pool: &PgPool,
    caller: &Caller,
    ticket_id: Uuid,
    reason: &str,
) -> Result<TicketRow, AppError> {
    {
        let mut conn = pool.acquire().await?;
        let ticket = load(&mut conn, ticket_id).await?;
        authorize_decision(&mut conn, caller, &ticket).await?;
    }
    super::tickets::decide(
        pool,
        ticket_id,
        super::tickets::Verdict::Reject,
        &caller.username,
        reason,
    )
    .await
}

/// Whether `caller` may decide the ticket at all (authority, not their own, still pending):
/// the admission webhook's early answer for an Approval.
pub async fn check_decision(
    conn: &mut PgConnection,
    caller: &Caller,
    ticket_id: Uuid,
) -> Result<(), AppError> {
    let ticket = load(conn, ticket_id).await?;
    authorize_decision(conn, caller, &ticket).await?;
    ensure_pending(conn, &ticket).await
}

/// A decision needs a pending ticket; otherwise the answer says what became of it.
async fn ensure_pending(conn: &mut PgConnection, ticket: &TicketDetail) -> Result<(), AppError> {
    let current: TicketStatus = ticket
        .status
        .parse()
        .map_err(|e| AppError::invalid("tickets.status", e))?;
    match check_transition(current, TicketStatus::Approved) {
        Ok(()) => Ok(()),
        Err(_) => Err(super::tickets::already_decided(conn, ticket.id).await),
    }
}

/// Kubernetes' own clean-up (a namespace being deleted, owner references) deletes objects
/// as these service accounts; refusing them would leave a namespace stuck terminating.
const KUBERNETES_CLEANUP: [&str; 2] = [
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
];

/// Who may delete a VmRequest or VmOperation (`what`, e.g. "VmRequest apps/web"), which
/// cancels its pending ticket: its requester, an approver of its ticket, a platform admin
/// for its environment, or Kubernetes' own clean-up. Without a ticket yet the requester is
/// the one the identity stamp names.
pub async fn check_request_deletion(
    conn: &mut PgConnection,
    caller: &Caller,
    object_uid: &str,
    stamped_requester: Option<&str>,
    what: &str,
) -> Result<(), AppError> {
    if KUBERNETES_CLEANUP.contains(&caller.username.as_str()) {
        return Ok(());
    }
    let ticket = match db::tickets::by_request_uid(conn, object_uid).await? {
        Some(row) => Some(load(conn, row.id).await?),
        None => None,
    };
    let requester = ticket
        .as_ref()
        .map(|t| t.requester.as_str())
        .or(stamped_requester);
    if requester == Some(caller.username.as_str()) {
        return Ok(());
    }
    let viewer = super::access::Viewer::load(conn, caller).await?;
    let environment = match &ticket {
        Some(t) => Some(super::parse_stored::<Environment>(
            "tickets.environment",
            &t.environment,
        )?),
        None => None,
    };
    let approves = ticket.as_ref().is_some_and(|t| {
        let system = SystemRef {
            id: t.system_id,
            name: t.system_name.clone(),
        };
        viewer.allows(Permission::ApprovalApprove, Some(&system), environment)
    });
    if approves || viewer.allows(Permission::PlatformAdmin, None, environment) {
        return Ok(());
    }
    Err(AppError::Forbidden(format!(
        "user {:?} may not delete {what}, requested by {:?}: only its requester, an approver of \
         its ticket or a platform admin may delete it (deleting cancels a pending ticket)",
        caller.username,
        requester.unwrap_or("an unknown user")
    )))
}
