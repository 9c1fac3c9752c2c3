//! The validating admission checks: the same use-case validations the reconcilers run,
//! answered early so `kubectl apply` shows the reason. Nothing here writes.

use super::{
    AdmissionInput, AdmissionOperation as Operation, AdmissionPolicy, BoxFuture, Denial,
    StampRequest,
};
use crate::app::AppError;
use crate::app::access::{Caller, Check, authorize};
use crate::app::catalog::{CatalogKind, check_removal};
use crate::app::requests::{VmRequestInput, check_duplicate, validate_vm_request};
use crate::app::stamps;
use crate::app::systems::{
    check_service_creation, check_service_deletion, check_system_deletion, split_service_name,
};
use crate::crd::VmRequestSpec;
use crate::db::stamps::ObjectRef;
use crate::domain::identity::ApprovalTarget;
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
    fn prepare_stamp<'a>(
        &'a self,
        request: &'a StampRequest,
    ) -> BoxFuture<'a, Result<Option<ApprovalTarget>, Denial>> {
        Box::pin(async move {
            let target = match request.kind.as_str() {
                "Approval" => Some(self.approval_target(request).await?),
                _ => None,
            };
            if !request.dry_run {
                let object = ObjectRef {
                    kind: &request.kind,
                    namespace: request.namespace.as_deref().unwrap_or_default(),
                    name: &request.name,
                };
                stamps::issue(&self.pool, &request.nonce, object, &request.username).await?;
            }
            Ok(target)
        })
    }

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

/// The spec hash of a catalog object being created, or updated with a different spec
/// (metadata and status writes change nothing); None for other kinds.
fn catalog_spec_change(input: &AdmissionInput) -> Result<Option<String>, AppError> {
    use crate::crd::{cluster, instance_size, vm_namespace, vm_template};
    fn sha<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: Option<&Value>,
    ) -> Result<String, AppError> {
        Ok(stamps::spec_sha256(&spec_of::<T>(object)?))
    }
    let hash = |object: Option<&Value>| -> Result<Option<String>, AppError> {
        Ok(Some(match input.kind.as_str() {
            "Cluster" => sha::<cluster::ClusterSpec>(object)?,
            "VmNamespace" => sha::<vm_namespace::VmNamespaceSpec>(object)?,
            "InstanceSize" => sha::<instance_size::InstanceSizeSpec>(object)?,
            "VmTemplate" => sha::<vm_template::VmTemplateSpec>(object)?,
            _ => return Ok(None),
        }))
    };
    let new = hash(input.object.as_ref())?;
    if input.operation == Operation::Update && new == hash(input.old_object.as_ref())? {
        return Ok(None);
    }
    Ok(new)
}

/// The ticket id the mutating webhook stamped on an Approval.
fn stamped_approval_ticket(object: Option<&Value>) -> Option<uuid::Uuid> {
    let target = object?
        .pointer("/metadata/annotations")?
        .get(crate::crd::identity::APPROVAL_TARGET)?
        .as_str()?;
    serde_json::from_str::<ApprovalTarget>(target)
        .ok()?
        .ticket_id
        .parse()
        .ok()
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

    /// The VmRequest or VmOperation an Approval being created decides on: it must exist
    /// (not being deleted) and have a ticket. Its uid and ticket id are signed into the
    /// Approval's stamp, so a target recreated under the same name later is not approved.
    async fn approval_target(&self, request: &StampRequest) -> Result<ApprovalTarget, Denial> {
        use crate::crd::approval::TargetKind;
        let spec: crate::crd::ApprovalSpec =
            spec_of(Some(&request.object)).map_err(Denial::from)?;
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let what = format!(
            "{} {namespace}/{}",
            spec.target.kind.as_str(),
            spec.target.name
        );
        let client = self.client.clone().ok_or_else(|| {
            Denial::internal(format!("Shepherd cannot look up {what}: no cluster client"))
        })?;
        let lookup = |e: kube::Error| {
            tracing::error!(target = %what, error = %e, "looking up an Approval's target");
            Denial::internal(format!("Shepherd could not look up {what}; retry shortly"))
        };
        let meta = match spec.target.kind {
            TargetKind::VmRequest => {
                kube::Api::<crate::crd::VmRequest>::namespaced(client, namespace)
                    .get_opt(&spec.target.name)
                    .await
                    .map_err(lookup)?
                    .map(|o| o.metadata)
            }
            TargetKind::VmOperation => {
                kube::Api::<crate::crd::VmOperation>::namespaced(client, namespace)
                    .get_opt(&spec.target.name)
                    .await
                    .map_err(lookup)?
                    .map(|o| o.metadata)
            }
        };
        let Some(meta) = meta.filter(|m| m.deletion_timestamp.is_none()) else {
            return Err(Denial::not_found(format!(
                "spec.target: {what} does not exist: an Approval decides on an existing \
                 request; create the {} first and approve it once it shows a ticket",
                spec.target.kind.as_str()
            )));
        };
        let uid = meta.uid.unwrap_or_default();
        let mut conn = self.pool.acquire().await.map_err(AppError::from)?;
        let ticket = crate::db::tickets::by_request_uid(&mut conn, &uid)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| {
                Denial::conflict(format!(
                    "spec.target: {what} has no ticket yet (Shepherd is still checking it); \
                     retry in a few seconds"
                ))
            })?;
        Ok(ApprovalTarget {
            uid,
            ticket_id: ticket.id.to_string(),
        })
    }

    async fn check_input(&self, input: &AdmissionInput) -> Result<Vec<String>, AppError> {
        let mut conn = self.pool.acquire().await?;
        let caller = caller(input);
        let mut warnings = Vec::new();
        // Only a change of a catalog spec needs the catalog permission: the controller's
        // finalizer and metadata writes (as its ServiceAccount) change no spec.
        let catalog_change = match input.operation {
            Operation::Create | Operation::Update => catalog_spec_change(input)?,
            _ => None,
        };
        let catalog_write = input.operation != Operation::Update || catalog_change.is_some();
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
            ) if catalog_write => {
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
            ) if catalog_write => {
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
                // The mutating webhook resolved and stamped the target; decide on that ticket.
                if let Some(ticket) = stamped_approval_ticket(input.object.as_ref()) {
                    crate::app::approvals::check_decision(&mut conn, &caller, ticket).await?;
                }
            }
            ("VmRequest" | "VmOperation", Operation::Delete) => {
                let old = input.old_object.as_ref();
                let requester = old
                    .and_then(|o| o.pointer("/metadata/annotations"))
                    .and_then(|a| a.get(crate::crd::identity::USERNAME))
                    .and_then(Value::as_str);
                let what = format!(
                    "{} {}/{}",
                    input.kind,
                    input.namespace.as_deref().unwrap_or_default(),
                    input.name
                );
                crate::app::approvals::check_request_deletion(
                    &mut conn,
                    &caller,
                    &uid_of(old),
                    requester,
                    &what,
                )
                .await?;
            }
            // Updates of Systems, Services, VmRequests and VmOperations are status writes or
            // immutable specs (CEL).
            _ => {}
        }
        // A catalog object in use cannot go: the refusal says by how much it is used.
        if input.operation == Operation::Delete
            && let Some(kind) = CatalogKind::from_kind(&input.kind)
        {
            check_removal(&mut conn, kind, &input.name).await?;
        }
        // The reconciler audits a catalog change in the name of whoever made it.
        if matches!(input.operation, Operation::Create | Operation::Update)
            && !input.dry_run
            && let Some(sha) = catalog_change
        {
            stamps::record_catalog_change(
                &self.pool,
                &input.kind,
                &input.name,
                &sha,
                &caller.username,
            )
            .await?;
        }
        // The reconciler's clean-up names whoever asked for the deletion in its audit rows.
        if input.operation == Operation::Delete && !input.dry_run {
            let uid = uid_of(input.old_object.as_ref());
            if !uid.is_empty() {
                let object = ObjectRef {
                    kind: &input.kind,
                    namespace: input.namespace.as_deref().unwrap_or_default(),
                    name: &input.name,
                };
                drop(conn);
                stamps::record_deletion(&self.pool, &uid, object, &caller.username).await?;
            }
        }
        Ok(warnings)
    }
}
