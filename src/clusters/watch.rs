//! Status back from the clusters (docs/architecture.md#vms): one watcher per reachable target
//! cluster on the VirtualMachines and VirtualMachineInstances we manage (by label). kube-runtime's
//! watcher relists after a `410 Gone`, and every completed (re)list sweeps all of the cluster's VM
//! rows, so a missed event or a VM deleted behind our back is still noticed. Rows are written only
//! when something changed (`app::provisioning::record_observation`).

use super::{ClusterClients, TargetCluster, kubevirt};
use crate::app::provisioning::record_observation;
use crate::db;
use crate::domain::drift::{expected_on_cluster, suspect};
use crate::domain::render::{TICKET_LABEL, managed_selector};
use crate::domain::vm_state::observe;
use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the set of clusters (and their credentials) is looked at again.
const CLUSTER_RESCAN: Duration = Duration::from_secs(5);

struct Running {
    client_generation: u64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Keeps one watcher per live cluster with usable credentials until `stop`; a watcher is
/// restarted when its cluster's client is rebuilt (rotated kubeconfig).
pub async fn run(pool: PgPool, clusters: Arc<ClusterClients>, stop: CancellationToken) {
    let mut running: HashMap<Uuid, Running> = HashMap::new();
    loop {
        match live_clusters(&pool).await {
            Ok(live) => {
                running.retain(|id, w| {
                    let keep = live.iter().any(|a| a.id == *id) && !w.task.is_finished();
                    if !keep {
                        w.stop.cancel();
                    }
                    keep
                });
                for access in &live {
                    match clusters.get(access).await {
                        Ok(target) => {
                            if running
                                .get(&access.id)
                                .is_some_and(|w| w.client_generation == target.generation)
                            {
                                continue;
                            }
                            if let Some(old) = running.remove(&access.id) {
                                old.stop.cancel();
                            }
                            let token = stop.child_token();
                            let generation = target.generation;
                            let task =
                                tokio::spawn(watch_cluster(pool.clone(), target, token.clone()));
                            running.insert(
                                access.id,
                                Running {
                                    client_generation: generation,
                                    stop: token,
                                    task,
                                },
                            );
                        }
                        Err(err) => {
                            if let Some(old) = running.remove(&access.id) {
                                old.stop.cancel();
                            }
                            tracing::debug!(cluster = %access.name, "not watching: {err}");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "listing clusters to watch failed"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(CLUSTER_RESCAN) => {}
        }
    }
    for (_, w) in running {
        w.stop.cancel();
        let _ = w.task.await;
    }
}

async fn live_clusters(pool: &PgPool) -> Result<Vec<db::catalog::ClusterAccess>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    db::catalog::live_cluster_access(&mut conn).await
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Vm,
    Vmi,
}

/// One cluster's watcher: VM and VMI streams through reflectors; each change recomputes the
/// VM it concerns, each completed list sweeps every row placed on the cluster.
async fn watch_cluster(pool: PgPool, cluster: TargetCluster, stop: CancellationToken) {
    let vm_resource = kubevirt::virtual_machine();
    let vmi_resource = kubevirt::virtual_machine_instance();
    let config = watcher::Config::default().labels(&managed_selector());
    let (vms, vm_events) = reflected(&cluster, &vm_resource, config.clone());
    let (vmis, vmi_events) = reflected(&cluster, &vmi_resource, config);
    let mut events = futures::stream::select(
        vm_events.map(|e| (Kind::Vm, e)),
        vmi_events.map(|e| (Kind::Vmi, e)),
    );
    let watcher = Watcher {
        pool,
        cluster,
        vms,
        vmis,
        vm_resource,
        vmi_resource,
    };
    let (mut vms_listed, mut vmis_listed) = (false, false);
    tracing::info!(cluster = %watcher.cluster.name, "watching managed VMs");
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            next = events.next() => next,
        };
        let Some((kind, event)) = next else { break };
        match event {
            Ok(Event::Apply(obj) | Event::Delete(obj)) => {
                if vms_listed && vmis_listed {
                    watcher
                        .recompute(&obj.namespace().unwrap_or_default(), &obj.name_any())
                        .await;
                }
            }
            Ok(Event::InitDone) => {
                match kind {
                    Kind::Vm => vms_listed = true,
                    Kind::Vmi => vmis_listed = true,
                }
                if vms_listed && vmis_listed {
                    watcher.sweep().await;
                }
            }
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(err) => {
                tracing::warn!(cluster = %watcher.cluster.name, ?kind, error = %err, "watch failed; retrying with backoff");
            }
        }
    }
    tracing::info!(cluster = %watcher.cluster.name, "stopped watching");
}

type Events = futures::stream::BoxStream<'static, Result<Event<DynamicObject>, watcher::Error>>;

fn reflected(
    cluster: &TargetCluster,
    resource: &ApiResource,
    config: watcher::Config,
) -> (Store<DynamicObject>, Events) {
    let writer = reflector::store::Writer::new(resource.clone());
    let store = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), resource);
    let events = reflector::reflector(writer, watcher::watcher(api, config))
        .default_backoff()
        .boxed();
    (store, events)
}

struct Watcher {
    pool: PgPool,
    cluster: TargetCluster,
    vms: Store<DynamicObject>,
    vmis: Store<DynamicObject>,
    vm_resource: ApiResource,
    vmi_resource: ApiResource,
}

impl Watcher {
    /// The VM and its VMI as the watch stores hold them.
    fn cached(
        &self,
        namespace: &str,
        name: &str,
    ) -> (Option<DynamicObject>, Option<DynamicObject>) {
        let get = |store: &Store<DynamicObject>, resource: &ApiResource| {
            store
                .get(&ObjectRef::new_with(name, resource.clone()).within(namespace))
                .map(|o| o.as_ref().clone())
        };
        match get(&self.vms, &self.vm_resource) {
            Some(vm) => (Some(vm), get(&self.vmis, &self.vmi_resource)),
            None => (None, None),
        }
    }

    async fn recompute(&self, namespace: &str, name: &str) {
        let (vm, vmi) = match self.cached(namespace, name) {
            (Some(vm), vmi) => (Some(vm), vmi),
            // The store can lag: a VM applied while a list was under way is not in it yet.
            // A VM is declared missing only when its cluster says so.
            (None, _) => match self.read_back(namespace, name).await {
                Some(found) => found,
                None => return,
            },
        };
        self.record(name, vm.as_ref(), vmi.as_ref()).await;
    }

    async fn record(&self, name: &str, vm: Option<&DynamicObject>, vmi: Option<&DynamicObject>) {
        let ticket = vm.and_then(|v| v.labels().get(TICKET_LABEL).cloned());
        let vm_json = vm.and_then(|v| serde_json::to_value(v).ok());
        let vmi_json = vmi.and_then(|v| serde_json::to_value(v).ok());
        let observed = observe(vm_json.as_ref(), vmi_json.as_ref());
        let seen = ticket.as_deref().zip(observed.as_ref());
        if let Err(err) = record_observation(&self.pool, self.cluster.id, name, seen).await {
            tracing::warn!(cluster = %self.cluster.name, vm = name, error = %err, "recording a VM's state failed");
        }
    }

    /// The VM and its VMI read from the cluster itself; None when the cluster could not be
    /// asked (nothing is concluded then).
    async fn read_back(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(Option<DynamicObject>, Option<DynamicObject>)> {
        let client = self.cluster.client.clone();
        let vms: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &self.vm_resource);
        let vmis: Api<DynamicObject> = Api::namespaced_with(client, namespace, &self.vmi_resource);
        let read = async {
            let vm = self.cluster.call("read VM", vms.get_opt(name)).await?;
            let vmi = match vm {
                Some(_) => self.cluster.call("read VMI", vmis.get_opt(name)).await?,
                None => None,
            };
            Ok::<_, super::CallError>((vm, vmi))
        };
        match read.await {
            Ok(found) => Some(found),
            Err(err) => {
                tracing::warn!(cluster = %self.cluster.name, vm = name, error = %err,
                               "could not confirm a VM absent from the watch");
                None
            }
        }
    }

    /// Looks at every row placed on the cluster after a (re)list. VMs the cluster confirms
    /// gone are marked missing, unless more than half of those it should hold are gone at
    /// once (`domain::drift::suspect`): then nothing is marked, since a kubeconfig pointing
    /// at the wrong cluster is likelier than a mass deletion.
    async fn sweep(&self) {
        let rows = {
            let mut conn = match self.pool.acquire().await {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "sweep: no database connection");
                    return;
                }
            };
            match db::vms::on_cluster(&mut conn, self.cluster.id).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(error = %err, "sweep: listing VMs failed");
                    return;
                }
            }
        };
        let expected = |row: &db::vms::WatchedVm| {
            row.status
                .parse()
                .is_ok_and(|state| expected_on_cluster(state, row.status_reason.as_deref()))
        };
        let mut gone = Vec::new();
        for row in &rows {
            match self.cached(&row.namespace, &row.name) {
                (Some(vm), vmi) => self.record(&row.name, Some(&vm), vmi.as_ref()).await,
                (None, _) => match self.read_back(&row.namespace, &row.name).await {
                    Some((Some(vm), vmi)) => self.record(&row.name, Some(&vm), vmi.as_ref()).await,
                    Some((None, _)) => gone.push(row),
                    None => {}
                },
            }
        }
        let expected_count = rows.iter().filter(|r| expected(r)).count();
        let gone_count = gone.iter().filter(|r| expected(r)).count();
        if suspect(expected_count, gone_count) {
            tracing::warn!(cluster = %self.cluster.name, gone = gone_count, of = expected_count,
                           "most VMs recorded on this cluster are absent from it; marking none missing \
                            (is the kubeconfig for the right cluster?)");
            return;
        }
        for row in gone {
            self.record(&row.name, None, None).await;
        }
    }
}
