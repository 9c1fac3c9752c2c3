//! Deciding tickets with authority (DESIGN §4, §5). Approval is one transaction: the
//! decision, snapshots of the template version and instance size, final resources, one VM
//! row per VM with its generated name and placement, one River job per VM, audit rows and
//! domain events. Rejection creates no VM and no job. Of concurrent decisions one wins.

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use crate::api::approval::Overrides;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::catalog::{ClusterCandidate, InstanceSizeDetail, TemplateVersionRow};
use crate::db::tickets::{ApprovalRecord, TicketDetail, TicketRow};
use crate::db::vms::{NewVm, VmSummary};
use crate::domain::Environment;
use crate::domain::permissions::{Permission, can_decide};
use crate::domain::placement::{self, ClusterFacts, Health, Needs};
use crate::domain::resources::{FinalResources, ResourceOverrides, SizeShape, final_resources};
use crate::domain::ticket::{Operation, TicketStatus, check_transition};
use crate::domain::vm_name::vm_name;
use crate::jobs::args::{OperateVm, ProvisionVm};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What an approval would create; `preview` returns it without writing.
#[derive(Debug, Clone)]
pub struct Plan {
    pub eligible_clusters: Vec<String>,
    pub cluster: ClusterCandidate,
    pub template: TemplateVersionRow,
    pub size: InstanceSizeDetail,
    pub resources: FinalResources,
    pub storage_class: Option<String>,
    pub warnings: Vec<String>,
}

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

fn invalid(field: &str, rule: impl ToString) -> AppError {
    AppError::Invalid {
        field: field.into(),
        rule: rule.to_string(),
    }
}

fn request_str<'a>(request: &'a Value, key: &str) -> Result<&'a str, AppError> {
    request
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("tickets.request", format!("{key} is missing")))
}

fn facts(c: &ClusterCandidate) -> Result<ClusterFacts, AppError> {
    let strings = |key: &str| -> Vec<String> {
        c.capabilities
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ClusterFacts {
        name: c.name.clone(),
        environment: c
            .environment
            .parse()
            .map_err(|e| invalid("clusters.environment", e))?,
        enabled: c.enabled,
        health: match c.health.as_str() {
            "Healthy" => Health::Healthy,
            "Unhealthy" => Health::Unhealthy,
            _ => Health::Unknown,
        },
        weight: c.scheduling_weight,
        max_vms: c.max_vms.map(i64::from),
        live_vms: c.live_vms,
        gpu_devices: strings("gpus"),
        hugepage_sizes: strings("hugepages"),
    })
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
        .map_err(|e| invalid("tickets.environment", e))?;
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

/// Computes placement, snapshots and final resources for a create ticket.
async fn plan(
    conn: &mut PgConnection,
    ticket: &TicketDetail,
    env: Environment,
    overrides: &Overrides,
) -> Result<Plan, AppError> {
    if ticket.operation != Operation::Create.as_str() {
        return Err(invalid(
            "ticket",
            format!(
                "a {} ticket has no placement or resources to preview; approve or reject it",
                ticket.operation
            ),
        ));
    }
    let request = &ticket.request;
    let template_name = request_str(request, "template")?;
    let template = db::catalog::template_version(conn, template_name, overrides.template_version)
        .await?
        .ok_or_else(|| {
            invalid(
                "overrides.templateVersion",
                format!("template {template_name:?} has no such version"),
            )
        })?;
    let size_name = request_str(request, "instanceSize")?;
    let size = db::catalog::instance_size_detail(conn, size_name)
        .await?
        .ok_or_else(|| {
            invalid(
                "spec.instanceSize",
                format!("instance size {size_name:?} no longer exists"),
            )
        })?;
    let disk = overrides
        .disk_gib
        .or_else(|| {
            request
                .get("diskGiB")
                .and_then(Value::as_i64)
                .map(|d| d as i32)
        })
        .unwrap_or(size.disk_min_gib);
    if disk < size.disk_min_gib || disk > size.disk_max_gib {
        return Err(invalid(
            "overrides.diskGib",
            format!(
                "{disk} GiB is outside {:?}'s range {}..={} GiB",
                size.name, size.disk_min_gib, size.disk_max_gib
            ),
        ));
    }
    let shape = SizeShape {
        cpu_cores: size.cpu_cores,
        memory_mib: size.memory_mib,
        cpu_overcommit: size.cpu_overcommit,
        memory_overcommit: size.memory_overcommit,
        dedicated_cpu: size.dedicated_cpu,
    };
    let resource_overrides = ResourceOverrides {
        cpu_request_millis: overrides.cpu_request_millis,
        cpu_limit_millis: overrides.cpu_limit_millis,
        memory_request_mib: overrides.memory_request_mib,
        memory_limit_mib: overrides.memory_limit_mib,
    };
    let (resources, mut warnings) = final_resources(&shape, &resource_overrides, disk, env)
        .map_err(|e| invalid("overrides", e))?;
    let candidates = db::catalog::cluster_candidates(conn).await?;
    let all_facts = candidates
        .iter()
        .map(facts)
        .collect::<Result<Vec<_>, _>>()?;
    let needs = Needs {
        gpu_devices: size
            .gpus
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|x| {
                        x.get("deviceName")
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        hugepages: size.hugepages_size.clone(),
        count: i64::from(ticket.vm_count),
    };
    let chosen = placement::choose(&all_facts, env, &needs, overrides.cluster.as_deref())
        .map_err(|e| invalid("overrides.cluster", e))?;
    let eligible_clusters = all_facts
        .iter()
        .filter(|c| placement::check(c, env, &needs).is_ok())
        .map(|c| c.name.clone())
        .collect();
    let cluster = candidates
        .into_iter()
        .find(|c| c.name == chosen.name)
        .expect("chosen from candidates");
    if chosen.health == Health::Unknown {
        warnings.push(format!(
            "cluster {:?} has not been probed yet; its health is unknown",
            cluster.name
        ));
    }
    let storage_class = overrides
        .storage_class
        .clone()
        .or_else(|| cluster.default_storage_class.clone());
    Ok(Plan {
        eligible_clusters,
        cluster,
        template,
        size,
        resources,
        storage_class,
        warnings,
    })
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
            .map_err(|e| invalid("vm name", e))
        })
        .collect()
}

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
    if ticket.operation != Operation::Create.as_str() {
        return approve_operation(pool, river, tx, caller, &ticket, env, reason, overrides).await;
    }
    let Some(approved) = record_create_approval(
        &mut tx,
        river,
        &caller.username,
        &ticket,
        env,
        reason,
        overrides,
    )
    .await?
    else {
        drop(tx);
        return Err(super::tickets::lost_race(pool, ticket_id).await);
    };
    tx.commit().await?;
    Ok(approved)
}

/// Everything approving a create ticket writes, in the caller's transaction: the decision,
/// snapshots, final resources, VM rows with names and placement, one River job per VM,
/// domain events and audit rows. None when the ticket was no longer pending (a concurrent
/// decision won; the caller rolls back). Authorisation is the caller's job: `approve` checks
/// the approver; a policy-exempt request is approved as the approval policy.
pub(crate) async fn record_create_approval(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    river: &riverqueue::Client,
    approver: &str,
    ticket: &TicketDetail,
    env: Environment,
    reason: &str,
    overrides: &Overrides,
) -> Result<Option<Approved>, AppError> {
    let ticket_id = ticket.id;
    let plan = plan(tx, ticket, env, overrides).await?;
    // The conditional UPDATE is the serialisation point: a concurrent decider waits on the
    // row lock, then finds the ticket decided.
    if db::tickets::decide(
        tx,
        ticket_id,
        TicketStatus::PendingApproval.as_str(),
        TicketStatus::Approved.as_str(),
        approver,
        reason,
    )
    .await?
    .is_none()
    {
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
        db::audit::append(
            tx,
            &AuditEntry::new("vm.create", approver, "vm", vm_id, &name)
                .parent("ticket", ticket_id)
                .environment(env.as_str())
                .details(json!({"cluster": plan.cluster.name, "requester": ticket.requester})),
        )
        .await?;
    }
    db::events::insert(
        tx,
        "ticket",
        ticket_id,
        "approval.approve",
        "Completed",
        &json!({"ticket_id": ticket_id, "approver": approver}),
    )
    .await?;
    // A policy-exempt request is recorded as the policy's decision.
    let action = if approver == super::requests::AUTO_APPROVER {
        "approval.auto"
    } else {
        "approval.approve"
    };
    db::audit::append(
        tx,
        &AuditEntry::new(action, approver, "ticket", ticket_id, &ticket.operation)
            .parent("service", ticket.service_id)
            .environment(env.as_str())
            .details(json!({
                "reason": reason, "requester": ticket.requester, "cluster": plan.cluster.name,
                "resources": resources_json, "templateVersion": plan.template.version,
                "overrides": overrides_json, "warnings": plan.warnings,
            })),
    )
    .await?;
    let vms = db::vms::for_ticket(tx, ticket_id).await?;
    Ok(Some(Approved {
        ticket_id,
        cluster: plan.cluster.name,
        vms,
        warnings: plan.warnings,
    }))
}

/// Approves a day-2 operation: the decision, its River job (the ticket id only), a domain
/// event and the audit row, in the transaction `tx` the caller opened.
#[allow(clippy::too_many_arguments)]
async fn approve_operation(
    pool: &PgPool,
    river: &riverqueue::Client,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    caller: &Caller,
    ticket: &TicketDetail,
    env: Environment,
    reason: &str,
    overrides: &Overrides,
) -> Result<Approved, AppError> {
    if overrides != &Overrides::default() {
        return Err(invalid(
            "overrides",
            format!(
                "overrides apply to create tickets; this is a {} ticket",
                ticket.operation
            ),
        ));
    }
    let ticket_id = ticket.id;
    if db::tickets::decide(
        &mut tx,
        ticket_id,
        TicketStatus::PendingApproval.as_str(),
        TicketStatus::Approved.as_str(),
        &caller.username,
        reason,
    )
    .await?
    .is_none()
    {
        drop(tx);
        return Err(super::tickets::lost_race(pool, ticket_id).await);
    }
    river.insert(OperateVm { ticket_id }).tx(&mut tx).await?;
    db::events::insert(
        &mut tx,
        "ticket",
        ticket_id,
        "approval.approve",
        "Processing",
        &json!({"ticket_id": ticket_id, "approver": caller.username, "operation": ticket.operation}),
    )
    .await?;
    let mut entry = AuditEntry::new(
        "approval.approve",
        &caller.username,
        "ticket",
        ticket_id,
        &ticket.operation,
    )
    .environment(env.as_str())
    .details(json!({"reason": reason, "requester": ticket.requester, "request": ticket.request}));
    if let Some(vm_id) = ticket.vm_id {
        entry = entry.parent("vm", vm_id);
    }
    db::audit::append(&mut tx, &entry).await?;
    let vms = match ticket.vm_id {
        Some(vm_id) => db::vms::summary(&mut tx, vm_id)
            .await?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    tx.commit().await?;
    Ok(Approved {
        ticket_id,
        cluster: vms
            .first()
            .and_then(|v: &VmSummary| v.cluster.clone())
            .unwrap_or_default(),
        vms,
        warnings: Vec::new(),
    })
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
        .map_err(|e| invalid("tickets.status", e))?;
    match check_transition(current, TicketStatus::Approved) {
        Ok(()) => Ok(()),
        Err(_) => Err(super::tickets::already_decided(conn, ticket.id).await),
    }
}
