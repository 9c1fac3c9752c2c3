//! The `vm_provision` worker: renders one approved VM and applies it to its target cluster.
//! Idempotent: a VM past `Creating` or a final ticket is left alone, the namespace's
//! AlreadyExists is progress, the VirtualMachine is written by server-side apply under a
//! fixed field manager, and the job completes in the transaction that records the apply.
//! No Kubernetes call happens while a transaction is open.

use super::{ClusterUnusable, backoff, is_last_attempt, measured, vm_cluster};
use crate::app::AppError;
use crate::app::job_args::ProvisionVm;
use crate::app::provisioning::{self, Begin, NAME_CONFLICT};
use crate::clusters::{CallError, ClusterClients, CredentialsError, TargetCluster, kubevirt};
use crate::db::vms::ProvisionTarget;
use crate::domain::render::{self, FIELD_MANAGER, RenderInput, TICKET_LABEL};
use crate::domain::resources::FinalResources;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use riverqueue::{Job, WorkContext, WorkError, WorkOutcome, Worker, WorkerTimeout};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How long one attempt may take: target clusters can be slow (docs/architecture.md#jobs: at least
/// 5 min).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How soon a job whose cluster has no usable credentials looks again (without using up
/// an attempt: it waits for an operator to fix the Secret).
const CREDENTIALS_SNOOZE: Duration = Duration::from_secs(5);
/// Test-only fault injection: when set, the process exits right after the apply and before
/// its result is recorded, as a crash (SIGKILL) there would.
pub const EXIT_AFTER_APPLY_ENV: &str = "SHEPHERD_FAULT_EXIT_AFTER_APPLY";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("completing the job: {0}")]
    Queue(#[from] riverqueue::Error),
}

pub struct ProvisionWorker {
    pub pool: PgPool,
    pub clusters: Arc<ClusterClients>,
    pub job_timeout: Duration,
}

impl Worker<ProvisionVm> for ProvisionWorker {
    type Error = ProvisionError;

    fn timeout(&self, _job: &Job<ProvisionVm>) -> WorkerTimeout {
        WorkerTimeout::After(self.job_timeout)
    }

    fn next_retry(
        &self,
        job: &Job<ProvisionVm>,
        _error: &WorkError,
        _now: riverqueue::jiff::Timestamp,
    ) -> Option<Duration> {
        Some(backoff(job.row.attempt))
    }

    async fn work(
        &self,
        context: WorkContext,
        job: Job<ProvisionVm>,
    ) -> Result<WorkOutcome, ProvisionError> {
        measured(KIND, &job.row, self.attempt(&context, &job)).await
    }
}

/// The job kind, as a metrics label.
const KIND: &str = "vm_provision";

impl ProvisionWorker {
    async fn attempt(
        &self,
        context: &WorkContext,
        job: &Job<ProvisionVm>,
    ) -> Result<WorkOutcome, ProvisionError> {
        let vm_id = job.args.vm_id;
        let target = match provisioning::begin(&self.pool, vm_id, job.row.attempt <= 1).await? {
            Begin::Skip(why) => {
                tracing::info!(%vm_id, "vm_provision: nothing to do: {why}");
                return Ok(WorkOutcome::Complete);
            }
            Begin::Provision(target) => target,
        };
        let span = tracing::info_span!("vm_provision", vm = %target.name, ticket = %target.ticket_id,
                                       cluster = target.cluster.as_deref().unwrap_or(""), attempt = job.row.attempt);
        async {
            match self.provision(context, &target).await {
                Ok(outcome) => Ok(outcome),
                Err(err) if is_last_attempt(&job.row) => {
                    // The VM and ticket record the failure; River records the error and
                    // discards the job.
                    tracing::error!(error = %err, "vm_provision: last attempt failed");
                    self.fail(None, &target, "ProvisioningFailed", &err.to_string())
                        .await?;
                    Err(err)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "vm_provision: attempt failed, will retry");
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn provision(
        &self,
        context: &WorkContext,
        target: &ProvisionTarget,
    ) -> Result<WorkOutcome, ProvisionError> {
        let cluster = match vm_cluster(
            &self.pool,
            &self.clusters,
            target.cluster_id,
            &target.environment,
        )
        .await?
        {
            Ok(cluster) => cluster,
            Err(ClusterUnusable::Fails { reason, message }) => {
                return self.fail(Some(context), target, reason, &message).await;
            }
            Err(ClusterUnusable::Credentials(err)) => {
                return self.wait_for_credentials(target, &err).await;
            }
        };
        let spec = match render_spec(target) {
            Ok(spec) => spec,
            Err(message) => {
                return self
                    .fail(Some(context), target, "RenderFailed", &message)
                    .await;
            }
        };
        let _permit = cluster.write_permit().await;
        ensure_namespace(&cluster, &target.namespace, &target.environment).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            cluster.client.clone(),
            &target.namespace,
            &kubevirt::virtual_machine(),
        );
        if let Some(existing) = cluster
            .call("reading the VirtualMachine", api.get_opt(&target.name))
            .await?
            && existing.labels().get(TICKET_LABEL) != Some(&target.ticket_id.to_string())
        {
            let message = format!(
                "a VirtualMachine {}/{} not created for this ticket already exists on cluster {}; it was left untouched",
                target.namespace, target.name, cluster.name
            );
            return self
                .fail(Some(context), target, NAME_CONFLICT, &message)
                .await;
        }
        let applied = cluster
            .call(
                "applying the VirtualMachine",
                api.patch(
                    &target.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&spec),
                ),
            )
            .await?;
        if std::env::var_os(EXIT_AFTER_APPLY_ENV).is_some() {
            tracing::error!("{EXIT_AFTER_APPLY_ENV} is set: exiting after the apply");
            std::process::exit(137);
        }
        let mut tx = riverqueue::database::begin_postgres(&self.pool).await?;
        // The job's own row first: the use case's audit append, which locks the chain head
        // every writer shares, comes last in the transaction.
        context.job_complete_tx(&mut tx).await?;
        provisioning::record_applied(&mut tx, target, &spec, applied.uid().as_deref()).await?;
        tx.commit().await?;
        tracing::info!("vm_provision: applied");
        Ok(WorkOutcome::Complete)
    }

    /// Ends the VM `Failed`; with a job context, also completes the job in that transaction
    /// (a permanent failure: no retry would help).
    async fn fail(
        &self,
        context: Option<&WorkContext>,
        target: &ProvisionTarget,
        reason: &str,
        message: &str,
    ) -> Result<WorkOutcome, ProvisionError> {
        tracing::warn!(reason, "vm_provision: {message}");
        let mut tx = riverqueue::database::begin_postgres(&self.pool).await?;
        if let Some(context) = context {
            context.job_complete_tx(&mut tx).await?;
        }
        provisioning::record_failure(&mut tx, target, reason, message).await?;
        tx.commit().await?;
        Ok(WorkOutcome::Complete)
    }

    async fn wait_for_credentials(
        &self,
        target: &ProvisionTarget,
        err: &CredentialsError,
    ) -> Result<WorkOutcome, ProvisionError> {
        tracing::warn!(
            reason = err.reason(),
            "vm_provision: waiting for credentials: {err}"
        );
        provisioning::note_waiting(
            &self.pool,
            target.id,
            &format!("waiting for credentials: {err}"),
        )
        .await?;
        Ok(WorkOutcome::Snooze(CREDENTIALS_SNOOZE))
    }
}

/// Renders the VM from its ticket's snapshots; the error says what is missing.
fn render_spec(target: &ProvisionTarget) -> Result<Value, String> {
    let missing = |what: &str| format!("the ticket has no {what} snapshot");
    let template = target
        .template_snapshot
        .as_ref()
        .ok_or_else(|| missing("template"))?;
    let size = target
        .instance_size_snapshot
        .as_ref()
        .ok_or_else(|| missing("instance size"))?;
    let resources: FinalResources = serde_json::from_value(
        target
            .final_resources
            .clone()
            .ok_or_else(|| missing("final resources"))?,
    )
    .map_err(|e| format!("the ticket's final resources do not parse: {e}"))?;
    let power = target
        .desired_power_state
        .parse()
        .map_err(|e| format!("vms.desired_power_state: {e}"))?;
    render::render_vm(&RenderInput {
        vm_name: &target.name,
        namespace: &target.namespace,
        system: &target.system,
        service: &target.service,
        instance_index: target.instance_index,
        ticket_id: target.ticket_id,
        created_by: &target.created_by,
        template,
        size,
        resources: &resources,
        storage_class: target.storage_class.as_deref(),
        power,
    })
    .map_err(|e| e.to_string())
}

/// Creates the target namespace when it is missing; AlreadyExists is progress.
async fn ensure_namespace(
    cluster: &TargetCluster,
    name: &str,
    environment: &str,
) -> Result<(), CallError> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    if cluster
        .call("reading the namespace", api.get_opt(name))
        .await?
        .is_some()
    {
        return Ok(());
    }
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": render::namespace_labels(environment)},
    }))
    .expect("a namespace object");
    match cluster
        .call(
            "creating the namespace",
            api.create(&PostParams::default(), &namespace),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.status() == Some(409) => Ok(()),
        Err(err) => Err(err),
    }
}
