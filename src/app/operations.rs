//! Day-2 operations on an existing VM: a `VmOperation` opens a ticket for one VM and one
//! operation, through the one submission path (`submission`). Whether it needs an approver
//! is data (the approval policy). At most one pending ticket exists per (VM, operation).

use super::AppError;
use super::access::{Caller, Check, SystemRef, authorize};
use super::submission::{Submission, TicketDraft, record, recorded_submission};
use crate::db;
use crate::db::vms::VmTarget;
use crate::domain::Environment;
use crate::domain::permissions::Permission;
use crate::domain::ticket::Operation;
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

/// Records the operation's ticket once per object uid (see [`super::submission`]); the
/// approval policy may approve it at once, with its job.
pub async fn submit_vm_operation(
    pool: &PgPool,
    river: &riverqueue::Client,
    caller: &Caller,
    input: &VmOperationInput,
) -> Result<Submission, AppError> {
    let mut tx = pool.begin().await?;
    if let Some(existing) = recorded_submission(&mut tx, &input.uid).await? {
        return Ok(existing);
    }
    let (vm, env) = validate_vm_operation(&mut tx, caller, input).await?;
    let op = input.operation;
    let draft = TicketDraft {
        uid: &input.uid,
        object_namespace: &input.object_namespace,
        object_name: &input.object_name,
        operation: op,
        environment: env,
        service_id: vm.service_id,
        namespace_id: vm.namespace_id,
        vm_id: Some(vm.id),
        vm_count: 1,
        reason: &input.reason,
        request: json!({"vm": vm.name, "operation": op.as_str(),
                        "snapshot": input.snapshot, "cloneName": input.clone_name}),
    };
    let submission = record(&mut tx, river, caller, draft).await?;
    tx.commit().await?;
    Ok(submission)
}
