//! Provisioning: 1,000 VMs over 10 simulated target clusters, from the approvals to every VM
//! `Running` in PostgreSQL, against the simulator's own throughput measured in the same run
//! (the same VirtualMachines created straight on the same clusters by as many concurrent
//! clients as Shepherd has workers, until the simulator reports them all Running).
//!
//! The whole system runs in process as in the end-to-end tests (management and target
//! clusters simulated, PostgreSQL, webhook, reconcilers), with Shepherd's production worker
//! settings. alice applies 100 VmRequests of 10 VMs, bob applies 100 Approvals spreading
//! them over the clusters with the cluster override; the clock runs from bob's apply.
//!
//! `make bench-provisioning` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench
//! provisioning`; `PROVISIONING_BENCH_CLUSTERS` (10) and `PROVISIONING_BENCH_REQUESTS`
//! (100)). Writes the section "Provisioning" of BENCHMARKS.md.

#[path = "../tests/it/common/mod.rs"]
mod common;
mod report;

use std::str::FromStr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use shepherd::jobs::WorkerOptions;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const VMS_PER_REQUEST: usize = 10;
const BASELINE_NAMESPACE: &str = "baseline";

fn virtual_machines(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    );
    Api::namespaced_with(client, namespace, &resource)
}

/// One VmRequest for alice: `count` VMs of Service `service`; disks differ so that no two
/// pending requests are identical (those are refused as duplicates).
fn vm_request(n: usize, service: &str, disk_gib: usize) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: VmRequest\n\
         metadata: {{name: r{n:03}, namespace: apps}}\n\
         spec: {{system: shop, service: {service}, targetNamespace: team-a, template: fedora, \
         instanceSize: small, count: {VMS_PER_REQUEST}, diskGib: {disk_gib}, reason: bench}}\n"
    )
}

fn approval(n: usize, cluster: &str) -> String {
    format!(
        "apiVersion: shepherd.kv-shepherd.io/v1alpha1\nkind: Approval\n\
         metadata: {{name: a{n:03}, namespace: apps}}\n\
         spec: {{target: {{kind: VmRequest, name: r{n:03}}}, decision: approve, reason: bench, \
         overrides: {{cluster: {cluster}}}}}\n"
    )
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls `done` every 100 ms until it holds; panics with `what` after `bound`.
async fn until<F, Fut>(bound: Duration, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match done().await {
            Ok(()) => return,
            Err(state) => assert!(
                start.elapsed() < bound,
                "{what} not reached in {bound:?}: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `vm` as a fresh object named `name` in the baseline namespace: Shepherd's rendered
/// VirtualMachine without its identity, status and Shepherd's labels.
fn baseline_copy(vm: &Value, name: &str) -> DynamicObject {
    let mut vm = vm.clone();
    vm["metadata"] = json!({"name": name, "namespace": BASELINE_NAMESPACE});
    vm.as_object_mut().unwrap().remove("status");
    if let Some(template) = vm.pointer_mut("/spec/template/metadata") {
        *template = json!({});
    }
    serde_json::from_value(vm).unwrap()
}

#[tokio::main]
async fn main() {
    let clusters = report::env_or("PROVISIONING_BENCH_CLUSTERS", 10);
    let requests = report::env_or("PROVISIONING_BENCH_REQUESTS", 100);
    let total_vms = requests * VMS_PER_REQUEST;
    let scratch = report::ScratchDatabase::create("provisioning").await;
    let db = common::setup(
        PgPoolOptions::new(),
        PgConnectOptions::from_str(&scratch.url).unwrap(),
    )
    .await;
    let pool = db.pool.clone();
    let mut env = common::e2e::start(db).await;
    // Production worker settings (the tests run fewer workers).
    env.worker_options = WorkerOptions::default();
    env.start_shepherd("bench").await;
    let names: Vec<String> = (1..=clusters).map(|i| format!("target-{i}")).collect();
    for name in &names {
        env.add_target(name, "test", true).await;
    }
    env.apply_shop().await;
    // A second Service, so that 100 requests of one person can all differ (disks 10-100 GiB).
    env.apply_shop_services(&["api".to_string()]).await;
    let all_requests: String = (0..requests)
        .map(|n| vm_request(n, ["web", "api"][n % 2], 10 + n / 2))
        .collect::<Vec<_>>()
        .join("---\n");
    env.kubectl_ok("alice", &["apply", "-f", "-"], Some(&all_requests))
        .await;
    until(
        Duration::from_secs(300),
        "every request pending",
        || async {
            let pending = scalar(
                &pool,
                "SELECT count(*) FROM tickets WHERE status = 'PendingApproval'",
            )
            .await;
            (pending as usize == requests)
                .then_some(())
                .ok_or(format!("{pending} of {requests} pending"))
        },
    )
    .await;

    let all_approvals: String = (0..requests)
        .map(|n| approval(n, &names[n % clusters]))
        .collect::<Vec<_>>()
        .join("---\n");
    let start = Instant::now();
    env.kubectl_ok("bob", &["apply", "-f", "-"], Some(&all_approvals))
        .await;
    let profile = report::StatementProfile::start(&pool).await;
    // Where the time goes: when every ticket was approved, every VM applied to its cluster
    // (its first revision recorded) and every VM Running.
    let mut milestones: [Option<Duration>; 3] = [None; 3];
    loop {
        let counts: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tickets WHERE status <> 'PendingApproval'),
                    (SELECT count(DISTINCT vm_id) FROM vm_revisions),
                    (SELECT count(*) FROM vms WHERE status = 'Running'),
                    (SELECT count(*) FROM tickets WHERE status IN ('Failed', 'Rejected'))",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(counts.3, 0, "a ticket failed or was rejected");
        let reached = [
            counts.0 as usize == requests,
            counts.1 as usize == total_vms,
            counts.2 as usize == total_vms,
        ];
        for (milestone, reached) in milestones.iter_mut().zip(reached) {
            if reached && milestone.is_none() {
                *milestone = Some(start.elapsed());
            }
        }
        if milestones[2].is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "not every VM Running in 10 minutes: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shepherd_time = start.elapsed();
    let costs = profile.finish(&pool).await;
    let [approved, applied, _] = milestones.map(|m| m.unwrap_or_default().as_secs_f64());
    println!(
        "every ticket approved after {approved:.1} s, every VM applied after {applied:.1} s, \
         every VM Running after {:.1} s\n{}",
        shepherd_time.as_secs_f64(),
        report::describe_profile(&costs, shepherd_time, total_vms, 15)
    );
    let workers = env.worker_options.concurrency;
    env.stop_shepherd().await;

    // Baseline: the same VirtualMachines created straight on the clusters.
    let rendered = virtual_machines(
        env.target(&names[0]).kube_client("admin").unwrap(),
        "team-a",
    )
    .list(&Default::default())
    .await
    .unwrap()
    .items
    .into_iter()
    .next()
    .expect("Shepherd created VMs on target-1");
    let rendered = serde_json::to_value(rendered).unwrap();
    let mut apis = Vec::new();
    for name in &names {
        let client = env.target(name).kube_client("admin").unwrap();
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": BASELINE_NAMESPACE}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        apis.push(virtual_machines(client, BASELINE_NAMESPACE));
    }
    let start = Instant::now();
    report::spread(workers, total_vms, {
        let (apis, rendered) = (apis.clone(), rendered.clone());
        move |n| {
            let api = apis[n % apis.len()].clone();
            let vm = baseline_copy(&rendered, &format!("vm-{n:04}"));
            async move {
                api.create(&PostParams::default(), &vm)
                    .await
                    .expect("create");
            }
        }
    })
    .await;
    until(
        Duration::from_secs(600),
        "every baseline VM Running",
        || {
            let apis = apis.clone();
            async move {
                let mut running = 0;
                for api in &apis {
                    running += api
                        .list(&Default::default())
                        .await
                        .unwrap()
                        .items
                        .iter()
                        .filter(|vm| vm.data["status"]["printableStatus"] == "Running")
                        .count();
                }
                (running == total_vms)
                    .then_some(())
                    .ok_or(format!("{running} of {total_vms} Running"))
            }
        },
    )
    .await;
    let baseline_time = start.elapsed();
    drop(env);
    scratch.drop().await;

    let rate = |time: Duration| total_vms as f64 / time.as_secs_f64();
    report::write_section(
        "Provisioning",
        "make bench-provisioning",
        &format!(
            "{requests} VmRequests of {VMS_PER_REQUEST} VMs over {clusters} simulated target \
             clusters, approved by one `kubectl apply` of {requests} Approvals; measured from \
             that apply until PostgreSQL shows every VM Running ({:.1} s; every ticket approved \
             after {approved:.1} s, every VM applied after {applied:.1} s). Shepherd's production \
             worker settings ({workers} workers). Baseline: the VirtualMachines Shepherd \
             rendered, created straight on the same clusters by {workers} concurrent clients \
             until the simulator reports every one Running ({:.1} s); the simulator moves a \
             VM one step of its lifecycle each 40 ms.",
            shepherd_time.as_secs_f64(),
            baseline_time.as_secs_f64(),
        ),
        &[report::Row {
            figure: format!("approval to Running, {total_vms} VMs"),
            value: format!("{:.0} VMs/s", rate(shepherd_time)),
            baseline: format!("{:.0} VMs/s created straight", rate(baseline_time)),
            ratio: rate(shepherd_time) / rate(baseline_time),
            goal: "(none set)".into(),
        }],
    );
}
