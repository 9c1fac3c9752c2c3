//! The validating admission checks: the same use-case validations the reconcilers run,
//! answered early so `kubectl apply` shows the reason. Nothing here writes.

use super::{AdmissionInput, AdmissionOperation as Operation, AdmissionPolicy, BoxFuture, Denial};
use crate::app::AppError;
use crate::app::access::{Caller, Check, authorize};
use crate::app::catalog::{CatalogKind, check_removal};
use crate::app::requests::{VmRequestInput, check_duplicate, validate_vm_request};
use crate::app::systems::{
    check_service_creation, check_service_deletion, check_system_deletion, split_service_name,
};
use crate::crd::VmRequestSpec;
use crate::domain::names::{NameKind, validate_name};
use crate::domain::permissions::Permission;
use serde_json::Value;
use sqlx::PgPool;

/// Shepherd's admission policy over PostgreSQL. With a client of the management cluster it
/// also accepts references to objects that exist there but are not mirrored yet (a System
/// and its Services applied together), leaving the final check to the reconciler.
#[derive(Clone)]
pub struct ShepherdPolicy {
    pub pool: PgPool,
    pub client: Option<kube::Client>,
}

impl AdmissionPolicy for ShepherdPolicy {
    fn check<'a>(
        &'a self,
        input: &'a AdmissionInput,
    ) -> BoxFuture<'a, Result<Vec<String>, Denial>> {
        Box::pin(async move {
            match self.check_input(input).await {
                Err(AppError::NotFound { what, id }) => match self.pending_reference(input).await {
                    Some(object) => Ok(vec![format!(
                        "{object} exists but is not registered yet; Shepherd checks this {} when it is",
                        input.kind
                    )]),
                    None => Err(Denial::from(AppError::NotFound { what, id })),
                },
                other => other.map_err(Denial::from),
            }
        })
    }
}

fn caller(input: &AdmissionInput) -> Caller {
    Caller {
        username: input.identity.username.clone(),
        groups: input.identity.groups.clone(),
    }
}

fn spec_of<T: serde::de::DeserializeOwned>(object: Option<&Value>) -> Result<T, AppError> {
    let spec = object
        .and_then(|o| o.get("spec"))
        .cloned()
        .unwrap_or(Value::Null);
    serde_json::from_value(spec).map_err(|e| AppError::Invalid {
        field: "spec".into(),
        rule: e.to_string(),
    })
}

fn uid_of(object: Option<&Value>) -> String {
    object
        .and_then(|o| o.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl ShepherdPolicy {
    /// For a Service or VmRequest whose System or Service is missing from PostgreSQL: the
    /// referenced object, if it exists in the management cluster (not being deleted).
    async fn pending_reference(&self, input: &AdmissionInput) -> Option<String> {
        let client = self.client.clone()?;
        let (system, service) = match (input.kind.as_str(), input.operation) {
            ("Service", Operation::Create) => {
                (split_service_name(&input.name).ok()?.0.to_string(), None)
            }
            ("VmRequest", Operation::Create) => {
                let spec: VmRequestSpec = spec_of(input.object.as_ref()).ok()?;
                (
                    spec.system.clone(),
                    Some(format!("{}.{}", spec.system, spec.service)),
                )
            }
            _ => return None,
        };
        let alive = |meta: &kube::api::ObjectMeta| meta.deletion_timestamp.is_none();
        let systems: kube::Api<crate::crd::System> = kube::Api::all(client.clone());
        let system_object = systems.get_opt(&system).await.ok()??;
        if !alive(&system_object.metadata) {
            return None;
        }
        match service {
            None => Some(format!("system {system:?}")),
            Some(service) => {
                let services: kube::Api<crate::crd::Service> = kube::Api::all(client);
                let object = services.get_opt(&service).await.ok()??;
                alive(&object.metadata).then(|| format!("service {service:?}"))
            }
        }
    }

    /// The ticket an Approval targets, when its VmRequest or VmOperation exists and has one
    /// already (otherwise the reconciler decides later).
    async fn approval_ticket(&self, input: &AdmissionInput) -> Option<uuid::Uuid> {
        use crate::crd::approval::TargetKind;
        let spec: crate::crd::ApprovalSpec = spec_of(input.object.as_ref()).ok()?;
        let (client, ns) = (self.client.clone()?, input.namespace.as_deref()?);
        let ticket_id = match spec.target.kind {
            TargetKind::VmRequest => {
                kube::Api::<crate::crd::VmRequest>::namespaced(client, ns)
                    .get_opt(&spec.target.name)
                    .await
                    .ok()??
                    .status?
                    .ticket_id
            }
            TargetKind::VmOperation => {
                kube::Api::<crate::crd::VmOperation>::namespaced(client, ns)
                    .get_opt(&spec.target.name)
                    .await
                    .ok()??
                    .status?
                    .ticket_id
            }
        };
        ticket_id?.parse().ok()
    }

    async fn check_input(&self, input: &AdmissionInput) -> Result<Vec<String>, AppError> {
        let mut conn = self.pool.acquire().await?;
        let caller = caller(input);
        let mut warnings = Vec::new();
        match (input.kind.as_str(), input.operation) {
            ("System", Operation::Create) => {
                let check = validate_name(NameKind::System, &input.name).map_err(|e| {
                    AppError::Invalid {
                        field: "metadata.name".into(),
                        rule: e.to_string(),
                    }
                })?;
                warnings.extend(check.warnings);
            }
            ("System", Operation::Delete) => {
                check_system_deletion(&mut conn, &caller, &input.name).await?
            }
            ("Service", Operation::Create) => {
                let (system, service) = split_service_name(&input.name)?;
                check_service_creation(&mut conn, &caller, system, service).await?;
            }
            ("Service", Operation::Delete) => {
                let (system, service) = split_service_name(&input.name)?;
                check_service_deletion(&mut conn, &caller, system, service).await?;
            }
            ("VmRequest", Operation::Create) => {
                let spec: VmRequestSpec = spec_of(input.object.as_ref())?;
                let request = VmRequestInput {
                    uid: uid_of(input.object.as_ref()),
                    object_namespace: input.namespace.clone().unwrap_or_default(),
                    object_name: input.name.clone(),
                    system: spec.system,
                    service: spec.service,
                    target_namespace: spec.target_namespace,
                    template: spec.template,
                    instance_size: spec.instance_size,
                    count: spec.count,
                    disk_gib: spec.disk_gib,
                    reason: spec.reason,
                };
                let resolved = validate_vm_request(&mut conn, &caller, &request).await?;
                check_duplicate(&mut conn, &caller, &request, &resolved).await?;
            }
            ("VmOperation", Operation::Create) => {
                let operation = crate::app::operations::VmOperationInput {
                    uid: uid_of(input.object.as_ref()),
                    object_namespace: input.namespace.clone().unwrap_or_default(),
                    object_name: input.name.clone(),
                    spec: spec_of(input.object.as_ref())?,
                };
                crate::app::operations::validate_vm_operation(&mut conn, &caller, &operation)
                    .await?;
            }
            (
                "Cluster" | "VmNamespace",
                Operation::Create | Operation::Update | Operation::Delete,
            ) => {
                authorize(
                    &mut conn,
                    &caller,
                    &Check {
                        permission: Permission::ClusterManage,
                        action: "manage clusters and namespaces",
                        system: None,
                        environment: None,
                    },
                )
                .await?;
            }
            (
                "InstanceSize" | "VmTemplate",
                Operation::Create | Operation::Update | Operation::Delete,
            ) => {
                authorize(
                    &mut conn,
                    &caller,
                    &Check {
                        permission: Permission::TemplateManage,
                        action: "manage templates and instance sizes",
                        system: None,
                        environment: None,
                    },
                )
                .await?;
            }
            ("Approval", Operation::Create) => {
                if let Some(ticket) = self.approval_ticket(input).await {
                    crate::app::approvals::check_decision(&mut conn, &caller, ticket).await?;
                }
            }
            // Updates of Systems, Services, VmRequests and VmOperations are status writes or
            // immutable specs (CEL); deleting a VmRequest or VmOperation cancels its ticket.
            _ => {}
        }
        // A catalog object in use cannot go: the refusal says by how much it is used.
        if input.operation == Operation::Delete
            && let Some(kind) = CatalogKind::from_kind(&input.kind)
        {
            check_removal(&mut conn, kind, &input.name).await?;
        }
        Ok(warnings)
    }
}
