//! Day-2 operations on an existing VM: a `VmOperation` opens a ticket for one VM and one
//! operation, through the one submission path (`submission`). Whether it needs an approver
//! is data (the approval policy). At most one pending ticket exists per (VM, operation).

use super::access::{Caller, Check, SystemRef, authorize};
use super::submission::{Submission, TicketDraft, record, recorded_submission};
use super::{AppError, parse_stored};
use crate::crd::VmOperationSpec;
use crate::db;
use crate::db::vms::VmTarget;
use crate::domain::Environment;
use crate::domain::operation::{Refusal, check_admissible};
use crate::domain::permissions::Permission;
use crate::domain::ticket::Operation;
use crate::domain::vm_state::VmState;
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// A VmOperation as the use case needs it: the object that asked and its spec.
#[derive(Debug, Clone)]
pub struct VmOperationInput {
    pub uid: String,
    pub object_namespace: String,
    pub object_name: String,
    pub spec: VmOperationSpec,
}

/// The VM exists, accepts the operation in its state (`domain::operation`), the operation's
/// own fields hold (a restore's snapshot, a prod delete's confirmation), and the caller may
/// perform it in the VM's System and environment. Used by admission and again by the
/// reconciler.
pub async fn validate_vm_operation(
    conn: &mut PgConnection,
    caller: &Caller,
    input: &VmOperationInput,
) -> Result<(VmTarget, Environment), AppError> {
    let spec = &input.spec;
    if spec.operation == Operation::Create {
        return Err(AppError::invalid(
            "spec.operation",
            Refusal::CreateIsARequest,
        ));
    }
    let vm = db::vms::live_by_name(conn, &spec.vm)
        .await?
        .ok_or_else(|| AppError::NotFound {
            what: "vm",
            id: spec.vm.clone(),
        })?;
    let env: Environment = parse_stored("namespaces.environment", &vm.environment)?;
    let action = format!("{} VMs", spec.operation.as_str());
    authorize(
        conn,
        caller,
        &Check {
            permission: Permission::for_operation(spec.operation),
            action: &action,
            system: Some(&SystemRef {
                id: vm.system_id,
                name: vm.system_name.clone(),
            }),
            environment: Some(env),
        },
    )
    .await?;
    let state: VmState = parse_stored("vms.status", &vm.status)?;
    check_admissible(
        &vm.name,
        state,
        vm.not_migratable.as_deref(),
        spec.operation,
    )
    .map_err(|refusal| AppError::Conflict(refusal.to_string()))?;
    check_fields(conn, &vm, env, spec).await?;
    Ok((vm, env))
}

/// The fields only some operations take.
async fn check_fields(
    conn: &mut PgConnection,
    vm: &VmTarget,
    env: Environment,
    spec: &VmOperationSpec,
) -> Result<(), AppError> {
    match spec.operation {
        Operation::Restore => {
            let name = spec.snapshot.as_deref().ok_or_else(|| {
                AppError::invalid("spec.snapshot", "a restore names the snapshot to restore")
            })?;
            match db::snapshots::readiness(conn, vm.id, name).await? {
                Some(true) => Ok(()),
                Some(false) => Err(AppError::invalid(
                    "spec.snapshot",
                    format!(
                        "snapshot {name:?} of VM {} is not ready to use yet",
                        vm.name
                    ),
                )),
                None => Err(AppError::invalid(
                    "spec.snapshot",
                    format!(
                        "VM {} has no snapshot {name:?} (`kubectl shepherd snapshots {}` lists them)",
                        vm.name, vm.name
                    ),
                )),
            }
        }
        Operation::Snapshot => match spec.snapshot.as_deref() {
            Some(name) if db::snapshots::readiness(conn, vm.id, name).await?.is_some() => {
                Err(AppError::Conflict(format!(
                    "VM {} already has a snapshot named {name:?}",
                    vm.name
                )))
            }
            _ => Ok(()),
        },
        Operation::Delete => match spec.confirm_name.as_deref() {
            Some(name) if name != vm.name => Err(AppError::invalid(
                "spec.confirmName",
                format!("must equal the VM's name {:?}", vm.name),
            )),
            None if env == Environment::Prod => Err(AppError::invalid(
                "spec.confirmName",
                format!(
                    "a delete in prod must repeat the VM's name: set spec.confirmName to {:?}",
                    vm.name
                ),
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
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
    let spec = &input.spec;
    let op = spec.operation;
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
        reason: &spec.reason,
        request: json!({"vm": vm.name, "operation": op.as_str(), "snapshot": spec.snapshot,
                        "confirmName": spec.confirm_name}),
    };
    let submission = record(&mut tx, river, caller, draft).await?;
    tx.commit().await?;
    Ok(submission)
}
