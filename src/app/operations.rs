//! Day-2 operations on an existing VM (DESIGN §4): a `VmOperation` opens a ticket for one
//! VM and one operation. Whether it needs an approver is data (the approval policy); one
//! that needs none is approved in the transaction that records it, and its River job is
//! inserted with it. At most one pending ticket exists per (VM, operation).

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use super::requests::{AUTO_APPROVAL_REASON, AUTO_APPROVER, Submission};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::tickets::NewTicket;
use crate::db::vms::VmTarget;
use crate::domain::Environment;
use crate::domain::permissions::Permission;
use crate::domain::policy::default_requires_approval;
use crate::domain::ticket::{Operation, TicketStatus};
use crate::jobs::args::OperateVm;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// A VmOperation as the use case needs it.
#[derive(Debug, Clone)]
pub struct VmOperationInput {
    pub uid: String,
    pub object_namespace: String,
    pub object_name: String,
    pub vm: String,
    pub operation: Operation,
    pub reason: String,
    pub snapshot: Option<String>,
    pub clone_name: Option<String>,
}

/// VM states in which no further operation is accepted.
const GONE: [&str; 2] = ["Deleting", "Deleted"];

/// The VM exists and is not going away, and the caller may perform the operation on it in
/// its System and environment. Used by admission and again by the reconciler.
pub async fn validate_vm_operation(
    conn: &mut PgConnection,
    caller: &Caller,
    input: &VmOperationInput,
) -> Result<(VmTarget, Environment), AppError> {
    if input.operation == Operation::Create {
        return Err(AppError::Invalid {
            field: "spec.operation".into(),
            rule: "VMs are created with a VmRequest".into(),
        });
    }
    let vm = db::vms::live_by_name(conn, &input.vm)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "vm",
            id: input.vm.clone(),
        })?;
    if GONE.contains(&vm.status.as_str()) {
        return Err(AppError::Conflict(format!(
            "VM {:?} is {} and accepts no operation",
            vm.name, vm.status
        )));
    }
    let env: Environment = vm.environment.parse().map_err(|e| AppError::Invalid {
        field: "namespaces.environment".into(),
        rule: format!("{e}"),
    })?;
    let action = format!("{} VMs", input.operation.as_str());
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::for_operation(input.operation),
            action: &action,
            system: Some(&SystemRef {
                id: vm.system_id,
                name: vm.system_name.clone(),
            }),
            environment: Some(env),
        },
    )
    .await?;
    Ok((vm, env))
}

/// Records the operation's ticket once per object uid; auto-approves it (with its job) when
/// the policy exempts the operation in the VM's environment.
pub async fn submit_vm_operation(
    pool: &PgPool,
    river: &riverqueue::Client,
    caller: &Caller,
    input: &VmOperationInput,
) -> Result<Submission, AppError> {
    let mut tx = pool.begin().await?;
    if let Some(existing) = super::requests::recorded_submission(&mut tx, &input.uid).await? {
        return Ok(existing);
    }
    let (vm, env) = validate_vm_operation(&mut tx, caller, input).await?;
    let op = input.operation;
    let needs_approval = db::policies::requires_approval(&mut tx, op.as_str(), env.as_str())
        .await?
        .unwrap_or_else(|| default_requires_approval(op, env));
    let request = json!({"vm": vm.name, "operation": op.as_str(),
                         "snapshot": input.snapshot, "cloneName": input.clone_name});
    let inserted = db::tickets::insert(
        &mut tx,
        &NewTicket {
            operation: op.as_str(),
            requester: &caller.username,
            request_uid: Some(&input.uid),
            service_id: vm.service_id,
            namespace_id: vm.namespace_id,
            environment: env.as_str(),
            vm_id: Some(vm.id),
            vm_count: 1,
            reason: &input.reason,
            request: &request,
            status: TicketStatus::PendingApproval.as_str(),
        },
    )
    .await;
    let ticket_id = match inserted {
        Ok(id) => id,
        Err(e) if db::is_unique_violation(&e) => {
            return Err(AppError::Conflict(format!(
                "VM {:?} already has a pending {} ticket; wait for its decision or cancel it",
                vm.name,
                op.as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let object = format!("{}/{}", input.object_namespace, input.object_name);
    db::events::insert(
        &mut tx,
        "ticket",
        ticket_id,
        "operation.request",
        if needs_approval {
            "Pending"
        } else {
            "Processing"
        },
        &json!({"ticket_id": ticket_id, "request": request, "requester": caller.username,
                "object": object}),
    )
    .await?;
    db::rbac::touch_subject(&mut tx, &caller.subject()).await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new(
            "operation.request",
            &caller.username,
            "ticket",
            ticket_id,
            &input.object_name,
        )
        .parent("vm", vm.id)
        .environment(env.as_str())
        .details(json!({"request": request, "reason": input.reason, "object": object})),
    )
    .await?;
    let status = if needs_approval {
        TicketStatus::PendingApproval
    } else {
        db::tickets::decide(
            &mut tx,
            ticket_id,
            TicketStatus::PendingApproval.as_str(),
            TicketStatus::Approved.as_str(),
            AUTO_APPROVER,
            AUTO_APPROVAL_REASON,
        )
        .await?;
        river.insert(OperateVm { ticket_id }).tx(&mut tx).await?;
        db::audit::append(
            &mut tx,
            &AuditEntry::new(
                "approval.auto",
                AUTO_APPROVER,
                "ticket",
                ticket_id,
                op.as_str(),
            )
            .parent("vm", vm.id)
            .environment(env.as_str()),
        )
        .await?;
        TicketStatus::Approved
    };
    tx.commit().await?;
    Ok(Submission {
        ticket_id,
        status,
        environment: env,
        created: true,
    })
}
