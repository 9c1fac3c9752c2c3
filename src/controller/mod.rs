//! Reconcilers for the management cluster's objects (docs/reference.md#kinds,
//! docs/architecture.md#identity-and-permissions): they never trust that the webhook ran (identity
//! stamps are verified, permissions re-checked), write PostgreSQL through the use cases, and report
//! in status conditions and Kubernetes Events. They run only while this replica holds the Lease
//! (`lease`).

pub mod approvals;
pub mod audit_anchor;
pub mod catalog;
pub mod lease;
pub mod operations;
pub mod requests;
mod stamped;
pub mod status;
pub mod systems;
pub mod tickets;

use crate::app::AppError;
use crate::app::access::Caller;
use crate::clusters::ClusterClients;
use crate::domain::identity::{self, KeyRing, ObjectKey, Stamp};
use crate::metric_names;
use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Holds deletion until PostgreSQL agrees (ticket cancelled, row soft-deleted).
pub const FINALIZER: &str = "shepherd.kv-shepherd.io/cleanup";
pub const CONTROLLER_NAME: &str = "kubevirt-shepherd";
/// The actor recorded for changes the controller makes on its own.
pub const CONTROLLER_ACTOR: &str = "system:kubevirt-shepherd";
/// How often accepted objects are looked at again to follow their tickets.
pub const RESYNC: Duration = Duration::from_secs(60);

/// A Cluster's generation and the generation of the client built from its Secret: when
/// either moves, the cluster is probed again at once.
pub(crate) type ProbeFingerprint = (Option<i64>, Option<u64>);

pub struct Context {
    pub client: Client,
    pub pool: PgPool,
    pub identity_keys: KeyRing,
    pub recorder: Recorder,
    /// Inserts River jobs inside the use cases' transactions.
    pub river: Arc<riverqueue::Client>,
    /// Clients of the target clusters (credentials checks, status watchers).
    pub clusters: Arc<ClusterClients>,
    failures: Mutex<HashMap<String, u32>>,
    /// Per Cluster, what it looked like when a probe was last asked for.
    pub(crate) probe_fingerprints: Mutex<HashMap<String, ProbeFingerprint>>,
    /// Where the audit chain's head is exported; None exports nothing.
    pub audit_anchor: Option<audit_anchor::AnchorExport>,
}

impl Context {
    pub fn new(
        client: Client,
        pool: PgPool,
        identity_keys: KeyRing,
        instance: &str,
        river: Arc<riverqueue::Client>,
        clusters: Arc<ClusterClients>,
    ) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: Some(instance.into()),
        };
        Self {
            river,
            recorder: Recorder::new(client.clone(), reporter),
            client,
            pool,
            identity_keys,
            clusters,
            failures: Mutex::new(HashMap::new()),
            probe_fingerprints: Mutex::new(HashMap::new()),
            audit_anchor: None,
        }
    }

    /// Exponential backoff per object: 1 s, 2 s, 4 s ... capped at 5 minutes.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().expect("backoff map");
        let n = failures.entry(key).or_insert(0);
        *n = (*n + 1).min(10);
        backoff_delay(*n)
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().expect("backoff map").remove(key);
    }
}

/// The delay after the `failures`-th consecutive failure (1-based): doubling from 1 s, at
/// most five minutes.
fn backoff_delay(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.clamp(1, 10).saturating_sub(1)).min(BACKOFF_CAP_SECONDS))
}

const BACKOFF_CAP_SECONDS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ReconcileError>>),
    #[error("the object has no {0}")]
    MissingField(&'static str),
}

impl ReconcileError {
    /// What kind of failure this is, for logs: the API server, the database, a rule, ...
    pub fn class(&self) -> &'static str {
        match self {
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 429 => "throttled",
            ReconcileError::Kube(_) => "kubernetes",
            ReconcileError::App(AppError::Database(_)) => "database",
            ReconcileError::App(AppError::Queue(_)) => "queue",
            ReconcileError::App(_) => "rule",
            ReconcileError::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.class(),
                _ => "kubernetes",
            },
            ReconcileError::MissingField(_) => "invalid-object",
        }
    }
}

impl From<kube::runtime::finalizer::Error<ReconcileError>> for ReconcileError {
    fn from(e: kube::runtime::finalizer::Error<ReconcileError>) -> Self {
        Self::Finalizer(Box::new(e))
    }
}

/// The stamp the webhook put on an object: Ok when its signature holds and its nonce is
/// this object's (claimed now if not yet); the inner Err says why the object is refused.
pub async fn verified_stamp<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
) -> Result<Result<Stamp, String>, ReconcileError> {
    let annotations = obj.meta().annotations.clone().unwrap_or_default();
    let kind = K::kind(&());
    let name = obj.meta().name.clone().unwrap_or_default();
    let object = ObjectKey {
        kind: &kind,
        namespace: obj.meta().namespace.as_deref(),
        name: &name,
    };
    let stamp = match identity::verify(&ctx.identity_keys, &annotations, &object) {
        Ok(stamp) => stamp,
        Err(err) => return Ok(Err(err.to_string())),
    };
    let uid = obj
        .meta()
        .uid
        .as_deref()
        .ok_or(ReconcileError::MissingField("metadata.uid"))?;
    Ok(crate::app::stamps::claim(&ctx.pool, &stamp.nonce, uid)
        .await?
        .map(|()| stamp)
        .map_err(|refusal| refusal.to_string()))
}

/// The requester a verified stamp names.
pub fn stamped_caller(stamp: &Stamp) -> Caller {
    Caller {
        username: stamp.identity.username.clone(),
        groups: stamp.identity.groups.clone(),
    }
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Logs, and retries with per-object exponential backoff.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = object_key(obj.as_ref());
    let delay = ctx.backoff(key.clone());
    tracing::warn!(object = %key, class = err.class(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Every reconcile runs through here: a span naming the object (reconcilers add the ticket
/// id when they know it), the reconcile metrics, and the backoff bookkeeping on success.
pub async fn instrumented<K, F, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, ReconcileError>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>>,
{
    let kind = K::kind(&()).to_string();
    let span = tracing::info_span!(
        "reconcile",
        kind = %kind,
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        name = obj.meta().name.as_deref().unwrap_or(""),
        ticket = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let key = object_key(obj.as_ref());
    let result = reconcile(obj, ctx.clone()).instrument(span).await;
    metrics::histogram!(metric_names::RECONCILE_DURATION, "kind" => kind.clone())
        .record(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(metric_names::RECONCILE_TOTAL, "kind" => kind, "result" => outcome)
        .increment(1);
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Lists each kind once at start: a kind that cannot be listed (a missing CRD, missing
/// Kubernetes RBAC) is said loudly instead of surfacing as silence.
async fn check_listable(client: &Client) {
    macro_rules! check {
        ($($kind:ty),*) => {$(
            let api = Api::<$kind>::all(client.clone());
            if let Err(err) = api.list_metadata(&kube::api::ListParams::default().limit(1)).await {
                tracing::warn!(kind = <$kind as Resource>::kind(&()).as_ref(), error = %err,
                               "cannot list this kind: its reconciler will see nothing until this is fixed");
            }
        )*};
    }
    check!(
        crate::crd::System,
        crate::crd::Service,
        crate::crd::VmRequest,
        crate::crd::VmOperation,
        crate::crd::Approval,
        crate::crd::VmNamespace,
        crate::crd::Cluster,
        crate::crd::InstanceSize,
        crate::crd::VmTemplate
    );
}

/// Runs every reconciler, and the target clusters' status watchers, until `stop` is
/// cancelled. VmRequests and VmOperations are also reconciled when their ticket changes
/// (announced by PostgreSQL NOTIFY from any replica), so status follows decisions made
/// through the REST API and VM states reported by the watchers without polling.
pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let client = ctx.client.clone();
    check_listable(&client).await;
    let cfg = watcher::Config::default();
    macro_rules! run_controller {
        ($controller:expr, $reconcile:path) => {{
            let stop = stop.clone();
            $controller
                .graceful_shutdown_on(async move { stop.cancelled().await })
                .run(
                    |obj, ctx| instrumented(obj, ctx, $reconcile),
                    error_policy,
                    ctx.clone(),
                )
                .for_each(|result| async move {
                    match result {
                        // A failed reconcile was logged by error_policy.
                        Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                        Err(err) => tracing::warn!(error = %err, "controller stream error"),
                    }
                })
        }};
    }
    macro_rules! controller {
        ($kind:ty, $reconcile:path) => {
            run_controller!(lean_controller::<$kind>(&client, &cfg), $reconcile)
        };
    }
    let requests = lean_controller::<crate::crd::VmRequest>(&client, &cfg);
    let operations = lean_controller::<crate::crd::VmOperation>(&client, &cfg);
    let (request_changes, requests_changed) = futures::channel::mpsc::unbounded();
    let (operation_changes, operations_changed) = futures::channel::mpsc::unbounded();
    let notifications = tickets::forward_changes(
        ctx.pool.clone(),
        requests.store(),
        operations.store(),
        request_changes,
        operation_changes,
        stop.clone(),
    );
    let requests = requests.reconcile_on(requests_changed);
    let operations = operations.reconcile_on(operations_changed);
    let anchor = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        async move {
            if let Some(export) = ctx.audit_anchor.clone() {
                audit_anchor::run(ctx, export, stop).await;
            }
        }
    };
    tokio::join!(
        anchor,
        notifications,
        crate::clusters::watch::run(ctx.pool.clone(), ctx.clusters.clone(), stop.clone()),
        controller!(crate::crd::System, systems::reconcile_system),
        controller!(crate::crd::Service, systems::reconcile_service),
        run_controller!(requests, requests::reconcile),
        run_controller!(operations, operations::reconcile),
        controller!(crate::crd::Approval, approvals::reconcile),
        controller!(crate::crd::VmNamespace, catalog::reconcile_namespace),
        controller!(crate::crd::Cluster, catalog::reconcile_cluster),
        controller!(crate::crd::InstanceSize, catalog::reconcile_instance_size),
        controller!(crate::crd::VmTemplate, catalog::reconcile_template),
    );
}

/// A controller of every `K` whose cache keeps the objects without their `managedFields`:
/// no reconciler reads them, and they are a large part of each cached object, which the
/// cache holds for every VmRequest ever applied (`make bench-memory`).
fn lean_controller<K>(client: &Client, cfg: &watcher::Config) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let objects = watcher(Api::<K>::all(client.clone()), cfg.clone())
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_five_minutes() {
        let delays: Vec<u64> = (1..=12).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }
}
