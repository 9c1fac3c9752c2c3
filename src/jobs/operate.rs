//! The `vm_operate` worker: carries out one approved day-2 operation on its VM's cluster
//! (docs/architecture.md#day-2-operations). Every attempt starts from what the cluster and
//! the ticket show, so a retry after a crash neither repeats a step nor skips one: objects
//! an operation creates have a name fixed by its ticket (a second create finds the first),
//! a restart records the VMI it replaces before asking, power requests already met are
//! success. An operation still under way when an attempt has watched it for a while is
//! looked at again later (a snooze, no attempt used), until its deadline.

use super::{ClusterUnusable, backoff, is_last_attempt, measured, vm_cluster};
use crate::app::AppError;
use crate::app::job_args::OperateVm;
use crate::app::operate::{self, Begin, CloneTarget, Operating};
use crate::clusters::{CallError, ClusterClients, TargetCluster, kubevirt};
use crate::domain::operation::{
    Progress, clone_label_filters, clone_progress, migration_progress, not_live_migratable,
    object_name, power_after, restore_progress, snapshot_progress,
};
use crate::domain::render::{
    FIELD_MANAGER, LABEL_PREFIX, MANAGED_BY_LABEL, MANAGED_BY_VALUE, TICKET_LABEL,
};
use crate::domain::ticket::Operation;
use crate::domain::vm_state::{VmState, observe};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::{Api, ResourceExt};
use riverqueue::{Job, WorkContext, WorkError, WorkOutcome, Worker, WorkerTimeout};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long an operation may take from its start before it fails as timed out.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How long one attempt watches an operation under way before it snoozes.
const WATCH_WINDOW: Duration = Duration::from_secs(20);
/// Pause between two looks at an operation under way within an attempt.
const WATCH_STEP: Duration = Duration::from_millis(250);
/// When an operation under way (or waiting for its VM's other operation) is looked at again.
const SNOOZE: Duration = Duration::from_secs(2);
/// Test-only fault injection: when set, the process exits right after the cluster was asked
/// to act (before anything is recorded), as a crash (SIGKILL) there would.
pub const EXIT_AFTER_REQUEST_ENV: &str = "SHEPHERD_FAULT_EXIT_AFTER_OPERATION_REQUEST";

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("completing the job: {0}")]
    Queue(#[from] riverqueue::Error),
}

/// Why an operation failed: a reason word for status and audit, and the message.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    reason: &'static str,
    message: String,
}

/// Where an operation stands after an attempt looked at it.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Finished; what it produced goes into the ticket's result.
    Done(Value),
    Pending(String),
    Failed(Failure),
}

impl Step {
    fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Step::Failed(Failure {
            reason,
            message: message.into(),
        })
    }

    fn from_progress(progress: Progress, done: impl FnOnce(Option<String>) -> Value) -> Self {
        match progress {
            Progress::Done(value) => Step::Done(done(value)),
            Progress::Pending(what) => Step::Pending(what),
            Progress::Failed(message) => Step::failed("KubeVirtFailed", message),
        }
    }
}

pub struct OperateWorker {
    pub pool: PgPool,
    pub clusters: Arc<ClusterClients>,
    pub job_timeout: Duration,
}

/// The job kind, as a metrics label.
const KIND: &str = "vm_operate";

impl Worker<OperateVm> for OperateWorker {
    type Error = OperateError;

    fn timeout(&self, _job: &Job<OperateVm>) -> WorkerTimeout {
        WorkerTimeout::After(self.job_timeout)
    }

    fn next_retry(
        &self,
        job: &Job<OperateVm>,
        _error: &WorkError,
        _now: riverqueue::jiff::Timestamp,
    ) -> Option<Duration> {
        Some(backoff(job.row.attempt))
    }

    async fn work(
        &self,
        context: WorkContext,
        job: Job<OperateVm>,
    ) -> Result<WorkOutcome, OperateError> {
        measured(KIND, &job.row, self.attempt(&context, &job)).await
    }
}

impl OperateWorker {
    async fn attempt(
        &self,
        context: &WorkContext,
        job: &Job<OperateVm>,
    ) -> Result<WorkOutcome, OperateError> {
        let ticket_id = job.args.ticket_id;
        let op = match operate::begin(&self.pool, ticket_id).await? {
            Begin::Skip(why) => {
                tracing::info!(%ticket_id, "vm_operate: nothing to do: {why}");
                return Ok(WorkOutcome::Complete);
            }
            Begin::Wait(why) => {
                tracing::info!(%ticket_id, "vm_operate: waiting: {why}");
                return Ok(WorkOutcome::Snooze(SNOOZE));
            }
            Begin::Operate(op) => op,
        };
        let span = tracing::info_span!("vm_operate", ticket = %ticket_id, operation = op.operation.as_str(),
                                       vm = %op.target.vm_name, attempt = job.row.attempt);
        async {
            let step = match self.operate(&op).await {
                Ok(step) => step,
                Err(err) if is_last_attempt(&job.row) => {
                    // The ticket records the failure; River records the error and discards
                    // the job.
                    tracing::error!(error = %err, "vm_operate: last attempt failed");
                    let failure = Failure {
                        reason: "OperationFailed",
                        message: err.to_string(),
                    };
                    self.finish(None, &op, Err(failure)).await?;
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "vm_operate: attempt failed, will retry");
                    return Err(err);
                }
            };
            match step {
                Step::Pending(what) if !past_deadline(&op) => {
                    tracing::debug!("vm_operate: under way: {what}");
                    Ok(WorkOutcome::Snooze(SNOOZE))
                }
                Step::Pending(what) => {
                    let message = format!(
                        "not finished {} min after it started: {what}",
                        OPERATION_DEADLINE.as_secs() / 60
                    );
                    let failure = Failure {
                        reason: "TimedOut",
                        message,
                    };
                    self.finish(Some(context), &op, Err(failure)).await
                }
                Step::Done(result) => self.finish(Some(context), &op, Ok(result)).await,
                Step::Failed(failure) => self.finish(Some(context), &op, Err(failure)).await,
            }
        }
        .instrument(span)
        .await
    }

    /// Records how the operation ended (its result, or why it failed); with a job context,
    /// completes the job in that transaction.
    async fn finish(
        &self,
        context: Option<&WorkContext>,
        op: &Operating,
        outcome: Result<Value, Failure>,
    ) -> Result<WorkOutcome, OperateError> {
        let mut tx = riverqueue::database::begin_postgres(&self.pool).await?;
        // The job's own row first; the audit append comes last in the transaction.
        if let Some(context) = context {
            context.job_complete_tx(&mut tx).await?;
        }
        match outcome {
            Ok(result) => {
                tracing::info!(%result, "vm_operate: succeeded");
                operate::record_success(&mut tx, op, result).await?;
            }
            Err(Failure { reason, message }) => {
                tracing::warn!(reason, "vm_operate: failed: {message}");
                operate::record_failure(&mut tx, op, reason, &message).await?;
            }
        }
        tx.commit().await?;
        Ok(WorkOutcome::Complete)
    }

    /// One look at the operation: act where nothing was done yet, then watch it for a while.
    async fn operate(&self, op: &Operating) -> Result<Step, OperateError> {
        if let Err(refusal) = operate::still_admissible(op) {
            return Ok(Step::failed("NotAdmissible", refusal));
        }
        let cluster = match self.cluster(op).await? {
            Ok(cluster) => cluster,
            Err(step) => return Ok(step),
        };
        let vm = VmOnCluster::new(&cluster, op);
        let step = match op.operation {
            Operation::Start | Operation::Stop => self.power(op, &vm).await?,
            Operation::Restart => self.restart(op, &vm).await?,
            Operation::Delete => self.delete(op, &vm).await?,
            Operation::Migrate => self.migrate(op, &vm).await?,
            Operation::Snapshot => self.snapshot(op, &vm).await?,
            Operation::Restore => self.restore(op, &vm).await?,
            Operation::Clone => self.clone_vm(op, &vm).await?,
            Operation::Create => Step::failed(
                "NotADayTwoOperation",
                "a create is provisioned, not operated",
            ),
        };
        Ok(step)
    }

    /// The VM's cluster, or the step that says why it cannot be used.
    async fn cluster(&self, op: &Operating) -> Result<Result<TargetCluster, Step>, OperateError> {
        let cluster = vm_cluster(
            &self.pool,
            &self.clusters,
            op.target.cluster_id,
            &op.target.environment,
        )
        .await?;
        Ok(cluster.map_err(|unusable| match unusable {
            ClusterUnusable::Fails { reason, message } => Step::failed(reason, message),
            ClusterUnusable::Credentials(err) => {
                Step::Pending(format!("waiting for credentials: {err}"))
            }
        }))
    }

    /// Watches `look` until it is no longer pending or the window closes.
    async fn watch<F, Fut>(&self, mut look: F) -> Result<Step, OperateError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Step, OperateError>>,
    {
        // Well inside the attempt's timeout, so a watch never ends as a timed-out attempt.
        let until = Instant::now() + WATCH_WINDOW.min(self.job_timeout / 4);
        loop {
            let step = look().await?;
            if !matches!(step, Step::Pending(_)) || Instant::now() >= until {
                return Ok(step);
            }
            tokio::time::sleep(WATCH_STEP).await;
        }
    }

    /// start and stop: the desired power state is recorded, KubeVirt's subresource asked
    /// (a VM already asked for that state answers 409, which is success), then the VM
    /// watched until it shows the state.
    async fn power(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        let power = power_after(op.operation).expect("start and stop set a power state");
        operate::record_desired_power(&self.pool, op, power).await?;
        if vm.get().await?.is_none() {
            return Ok(Step::failed("VmMissing", vm.missing()));
        }
        let verb = op.operation.as_str();
        vm.subresource(verb).await?;
        let target = power.reached_as();
        self.watch(|| vm.state_is(target)).await
    }

    /// restart: the running VMI's uid is recorded before KubeVirt is asked, so a retried
    /// attempt asks again only while that same VMI still runs: no double restart.
    async fn restart(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        operate::record_desired_power(&self.pool, op, crate::domain::vm_state::PowerState::Running)
            .await?;
        let replaced = match op.recorded("replacedVmi").and_then(Value::as_str) {
            Some(uid) => uid.to_string(),
            None => {
                let Some(vmi) = vm.vmi().await? else {
                    return Ok(Step::failed(
                        "NotRunning",
                        format!("VM {} has no running instance to restart", vm.name),
                    ));
                };
                let uid = vmi.uid().unwrap_or_default();
                operate::record_step(&self.pool, op, "requested", json!({"replacedVmi": uid}))
                    .await?;
                uid
            }
        };
        let current = vm.vmi().await?;
        let still_running = current.as_ref().is_some_and(|v| {
            v.uid().as_deref() == Some(replaced.as_str()) && v.metadata.deletion_timestamp.is_none()
        });
        if still_running {
            vm.subresource("restart").await?;
        }
        self.watch(|| async {
            let vmi = vm.vmi().await?;
            if vmi
                .as_ref()
                .is_some_and(|v| v.uid().as_deref() == Some(replaced.as_str()))
            {
                return Ok(Step::Pending("the old instance is shutting down".into()));
            }
            vm.state_is(VmState::Running).await
        })
        .await
    }

    /// delete: the VirtualMachine is deleted (foreground, so its instance and disks go
    /// first; 404 is success), then watched until its cluster no longer has it.
    async fn delete(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        if op.vm_state == VmState::Deleted {
            return Ok(Step::Done(json!({})));
        }
        let _permit = vm.cluster.write_permit().await;
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        match vm
            .cluster
            .call(
                "deleting the VirtualMachine",
                vm.vms.delete(vm.name, &params),
            )
            .await
        {
            Ok(_) => {}
            Err(err) if err.status() == Some(404) => {}
            Err(err) => return Err(err.into()),
        }
        exit_if_asked();
        let step = self
            .watch(|| async {
                Ok(match vm.get().await? {
                    None => Step::Done(json!({})),
                    Some(_) => Step::Pending("the VirtualMachine is being deleted".into()),
                })
            })
            .await?;
        if step == Step::Done(json!({})) {
            let mut tx = self.pool.begin().await.map_err(OperateError::Database)?;
            crate::app::provisioning::record_deleted(
                &mut tx,
                op.target.vm_id,
                &op.target.vm_name,
                op.target.ticket_id,
                &op.target.environment,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(step)
    }

    /// migrate: refused when the VM does not run or KubeVirt says its instance cannot
    /// live-migrate; otherwise a VirtualMachineInstanceMigration, watched until it succeeds.
    async fn migrate(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        let name = object_name(vm.name, op.operation, op.target.ticket_id);
        let api = vm.api(&kubevirt::migration());
        if vm
            .cluster
            .call("reading the migration", api.get_opt(&name))
            .await?
            .is_none()
        {
            let Some(vmi) = vm.vmi().await? else {
                return Ok(Step::failed(
                    "NotRunning",
                    format!(
                        "VM {} is not running; only a running VM can migrate",
                        vm.name
                    ),
                ));
            };
            let vmi_json = serde_json::to_value(&vmi).unwrap_or_default();
            if vmi_json["status"]["phase"] != "Running" {
                return Ok(Step::failed(
                    "NotRunning",
                    format!(
                        "VM {} is not running; only a running VM can migrate",
                        vm.name
                    ),
                ));
            }
            if let Some(why) = not_live_migratable(&vmi_json) {
                return Ok(Step::failed(
                    "NotLiveMigratable",
                    format!("VM {} cannot live-migrate: {why}", vm.name),
                ));
            }
            let source = vmi_json["status"]["nodeName"].clone();
            operate::record_step(&self.pool, op, "requested", json!({"sourceNode": source}))
                .await?;
            let migration = json!({
                "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": name, "namespace": vm.namespace, "labels": owned_labels(op)},
                "spec": {"vmiName": vm.name},
            });
            if let Some(step) = vm.create(&api, &name, migration, op).await? {
                return Ok(step);
            }
        }
        let source = op.recorded("sourceNode").cloned();
        self.watch(|| async {
            let Some(migration) = vm.read(&api, &name).await? else {
                return Ok(Step::Pending("the migration is not visible yet".into()));
            };
            Ok(Step::from_progress(migration_progress(&migration), |node| {
                json!({"targetNode": node, "sourceNode": source.clone().or_else(|| migration["status"]["migrationState"]["sourceNode"].as_str().map(Value::from))})
            }))
        })
        .await
    }

    /// snapshot: refused at once when the cluster's probe found no snapshot support;
    /// otherwise a VirtualMachineSnapshot (recorded as soon as it exists), watched until it
    /// is ready to use.
    async fn snapshot(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        let supported = op
            .target
            .capabilities
            .as_ref()
            .and_then(|c| c.get("snapshot"))
            .and_then(Value::as_bool);
        if supported != Some(true) {
            return Ok(Step::failed(
                "SnapshotUnsupported",
                format!(
                    "cluster {} does not support VM snapshots (KubeVirt's Snapshot feature gate is off{})",
                    vm.cluster.name,
                    if supported.is_none() {
                        ", or the cluster was never probed"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let name = op
            .target
            .request
            .get("snapshot")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| object_name(vm.name, op.operation, op.target.ticket_id));
        let api = vm.api(&kubevirt::snapshot());
        if vm
            .cluster
            .call("reading the snapshot", api.get_opt(&name))
            .await?
            .is_none()
        {
            let snapshot = json!({
                "apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                "metadata": {"name": name, "namespace": vm.namespace, "labels": owned_labels(op)},
                "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm.name}},
            });
            if let Some(step) = vm.create(&api, &name, snapshot, op).await? {
                return Ok(step);
            }
        }
        operate::record_snapshot(&self.pool, op, vm.cluster.id, &name).await?;
        self.watch(|| async {
            let Some(snapshot) = vm.read(&api, &name).await? else {
                return Ok(Step::failed(
                    "SnapshotGone",
                    format!("VirtualMachineSnapshot {name} disappeared"),
                ));
            };
            Ok(Step::from_progress(
                snapshot_progress(&snapshot),
                |_| json!({"snapshot": name}),
            ))
        })
        .await
    }

    /// restore: a VirtualMachineRestore of a recorded snapshot onto the stopped VM, watched
    /// until complete.
    async fn restore(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        let Some(snapshot) = op.target.request.get("snapshot").and_then(Value::as_str) else {
            return Ok(Step::failed("NoSnapshot", "the restore names no snapshot"));
        };
        let name = object_name(vm.name, op.operation, op.target.ticket_id);
        let api = vm.api(&kubevirt::restore());
        if vm
            .cluster
            .call("reading the restore", api.get_opt(&name))
            .await?
            .is_none()
        {
            let restore = json!({
                "apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineRestore",
                "metadata": {"name": name, "namespace": vm.namespace, "labels": owned_labels(op)},
                "spec": {
                    "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm.name},
                    "virtualMachineSnapshotName": snapshot,
                },
            });
            if let Some(step) = vm.create(&api, &name, restore, op).await? {
                return Ok(step);
            }
        }
        self.watch(|| async {
            let Some(restore) = vm.read(&api, &name).await? else {
                return Ok(Step::Pending("the restore is not visible yet".into()));
            };
            Ok(Step::from_progress(
                restore_progress(&restore),
                |_| json!({"snapshot": snapshot}),
            ))
        })
        .await
    }

    /// clone: the new VM's name and row are allocated once (the Service's next index);
    /// KubeVirt copies the VM without the platform's labels, then the new VM gets its own
    /// and is followed like a provisioned VM.
    async fn clone_vm(&self, op: &Operating, vm: &VmOnCluster<'_>) -> Result<Step, OperateError> {
        let target = operate::allocate_clone(&self.pool, op).await?;
        let name = object_name(vm.name, op.operation, op.target.ticket_id);
        let api = vm.api(&kubevirt::clone());
        if vm
            .cluster
            .call("reading the clone", api.get_opt(&name))
            .await?
            .is_none()
        {
            let filters = clone_label_filters(LABEL_PREFIX);
            let clone = json!({
                "apiVersion": "clone.kubevirt.io/v1beta1", "kind": "VirtualMachineClone",
                "metadata": {"name": name, "namespace": vm.namespace, "labels": owned_labels(op)},
                "spec": {
                    "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm.name},
                    "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": target.name},
                    "labelFilters": filters,
                    "template": {"labelFilters": filters},
                },
            });
            if let Some(step) = vm.create(&api, &name, clone, op).await? {
                return Ok(step);
            }
        }
        let step = self
            .watch(|| async {
                let Some(clone) = vm.read(&api, &name).await? else {
                    return Ok(Step::Pending("the clone is not visible yet".into()));
                };
                Ok(Step::from_progress(
                    clone_progress(&clone),
                    |_| json!({"clone": target.name}),
                ))
            })
            .await?;
        if matches!(step, Step::Done(_)) {
            self.label_clone(vm, &target).await?;
        }
        Ok(step)
    }

    /// Gives the clone the platform's labels (its own instance, ticket and requester), on
    /// the VM and its instance template, like a rendered VM's.
    async fn label_clone(
        &self,
        vm: &VmOnCluster<'_>,
        target: &CloneTarget,
    ) -> Result<(), OperateError> {
        let (name, labels) = (&target.name, &target.labels);
        let patch = json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": vm.namespace, "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}}},
        });
        let _permit = vm.cluster.write_permit().await;
        vm.cluster
            .call(
                "labelling the clone",
                vm.vms.patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Apply(&patch),
                ),
            )
            .await?;
        Ok(())
    }
}

fn past_deadline(op: &Operating) -> bool {
    op.target.started_at.is_some_and(|started| {
        chrono::Utc::now()
            .signed_duration_since(started)
            .to_std()
            .is_ok_and(|elapsed| elapsed > OPERATION_DEADLINE)
    })
}

fn exit_if_asked() {
    if std::env::var_os(EXIT_AFTER_REQUEST_ENV).is_some() {
        tracing::error!("{EXIT_AFTER_REQUEST_ENV} is set: exiting after the request");
        std::process::exit(137);
    }
}

/// The labels of objects an operation creates: managed by the platform, and the ticket.
fn owned_labels(op: &Operating) -> Value {
    json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE, TICKET_LABEL: op.target.ticket_id.to_string()})
}

/// One VM on its cluster, as the operations address it.
struct VmOnCluster<'a> {
    cluster: &'a TargetCluster,
    name: &'a str,
    namespace: &'a str,
    vms: Api<DynamicObject>,
    vmis: Api<DynamicObject>,
}

impl<'a> VmOnCluster<'a> {
    fn new(cluster: &'a TargetCluster, op: &'a Operating) -> Self {
        let ns = op.target.namespace.as_str();
        VmOnCluster {
            cluster,
            name: &op.target.vm_name,
            namespace: ns,
            vms: Api::namespaced_with(cluster.client.clone(), ns, &kubevirt::virtual_machine()),
            vmis: Api::namespaced_with(
                cluster.client.clone(),
                ns,
                &kubevirt::virtual_machine_instance(),
            ),
        }
    }

    fn api(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.cluster.client.clone(), self.namespace, resource)
    }

    fn missing(&self) -> String {
        format!(
            "VirtualMachine {}/{} does not exist on cluster {}",
            self.namespace, self.name, self.cluster.name
        )
    }

    async fn get(&self) -> Result<Option<DynamicObject>, CallError> {
        self.cluster
            .call("reading the VirtualMachine", self.vms.get_opt(self.name))
            .await
    }

    async fn vmi(&self) -> Result<Option<DynamicObject>, CallError> {
        self.cluster
            .call(
                "reading the VirtualMachineInstance",
                self.vmis.get_opt(self.name),
            )
            .await
    }

    async fn read(&self, api: &Api<DynamicObject>, name: &str) -> Result<Option<Value>, CallError> {
        let found = self
            .cluster
            .call("reading the operation's object", api.get_opt(name))
            .await?;
        Ok(found.and_then(|o| serde_json::to_value(o).ok()))
    }

    /// Whether the VM shows `target`; a VM that failed on the way fails the operation.
    async fn state_is(&self, target: VmState) -> Result<Step, OperateError> {
        let Some(vm) = self.get().await? else {
            return Ok(Step::failed("VmMissing", self.missing()));
        };
        let vmi = self.vmi().await?;
        let vm_json = serde_json::to_value(&vm).unwrap_or_default();
        let vmi_json = vmi.and_then(|v| serde_json::to_value(v).ok());
        let Some(seen) = observe(Some(&vm_json), vmi_json.as_ref()) else {
            return Ok(Step::failed("VmMissing", self.missing()));
        };
        Ok(match seen.state {
            s if s == target => Step::Done(json!({})),
            VmState::Failed => Step::failed(
                "VmFailed",
                format!(
                    "VM {} failed: {}{}",
                    self.name,
                    seen.reason.unwrap_or_default(),
                    seen.message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
            ),
            s => Step::Pending(format!("VM {} is {s}", self.name)),
        })
    }

    /// Asks KubeVirt's subresource `verb`. A 409 means the VM already is (or was already
    /// asked to be) in that state, which is what the operation wants.
    async fn subresource(&self, verb: &'static str) -> Result<(), CallError> {
        let request = axum::http::Request::put(kubevirt::vm_subresource_path(
            self.namespace,
            self.name,
            verb,
        ))
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .expect("a valid subresource request");
        let _permit = self.cluster.write_permit().await;
        match self
            .cluster
            .call("asking KubeVirt", self.cluster.client.request_text(request))
            .await
        {
            Ok(_) => {}
            Err(err) if err.status() == Some(409) => {
                tracing::info!("vm_operate: {verb} needs no action: {err}");
            }
            Err(err) => return Err(err),
        }
        exit_if_asked();
        Ok(())
    }

    /// Creates an operation's object. An object of that name made for another ticket fails
    /// the operation (the step returned); one made by an earlier attempt is progress.
    async fn create(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        object: Value,
        op: &Operating,
    ) -> Result<Option<Step>, CallError> {
        let object: DynamicObject = serde_json::from_value(object).expect("a valid object");
        let _permit = self.cluster.write_permit().await;
        match self
            .cluster
            .call(
                "creating the operation's object",
                api.create(&PostParams::default(), &object),
            )
            .await
        {
            Ok(_) => {
                exit_if_asked();
                Ok(None)
            }
            Err(err) if err.status() == Some(409) => {
                let existing = self
                    .cluster
                    .call("reading the operation's object", api.get_opt(name))
                    .await?;
                let ours = existing.as_ref().is_some_and(|o| {
                    o.labels().get(TICKET_LABEL) == Some(&op.target.ticket_id.to_string())
                });
                Ok((!ours).then(|| {
                    Step::failed(
                        "NameConflict",
                        format!("{name} already exists in namespace {} on cluster {} and was not made for this ticket", self.namespace, self.cluster.name),
                    )
                }))
            }
            Err(err) if matches!(err.status(), Some(400 | 403 | 422)) => {
                Ok(Some(Step::failed("Refused", err.to_string())))
            }
            Err(err) => Err(err),
        }
    }
}
