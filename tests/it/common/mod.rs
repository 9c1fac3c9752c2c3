//! Shared fixtures for database tests. Each `#[sqlx::test]` gets a fresh database on the
//! PostgreSQL 18 that `make test` starts; `setup` migrates it exactly as `shepherd migrate`.
#![allow(dead_code)]

pub mod browser;
pub mod e2e;
pub mod rest;
pub mod world;

use serde_json::json;
use shepherd::db;
use shepherd::db::tickets::NewTicket;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

pub struct TestDb {
    pub pool: PgPool,
    /// A URL for this test's database, for running the `shepherd` binary against it.
    pub url: String,
}

/// Migrates the test database and opens a pool large enough for the race tests.
pub async fn setup(opts: PgPoolOptions, connect: PgConnectOptions) -> TestDb {
    let pool = opts
        .max_connections(20)
        .connect_with(connect.clone())
        .await
        .expect("connect to the test database");
    shepherd::app::migrate::run(&pool).await.expect("migrate");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by sqlx::test");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    let name = connect.get_database().expect("test database name");
    TestDb {
        pool,
        url: format!("{prefix}/{name}"),
    }
}

/// A System, a Service and a test namespace.
pub struct Inventory {
    pub system_id: Uuid,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
}

pub async fn inventory(pool: &PgPool) -> Inventory {
    let mut conn = pool.acquire().await.unwrap();
    let system_id = db::services::insert_system(&mut conn, "shop", "", "alice")
        .await
        .unwrap();
    let service_id = db::services::insert_service(&mut conn, system_id, "web", "alice")
        .await
        .unwrap();
    let namespace_id = db::services::insert_namespace(&mut conn, "team-z", "test")
        .await
        .unwrap();
    Inventory {
        system_id,
        service_id,
        namespace_id,
    }
}

pub fn new_ticket<'a>(
    inv: &Inventory,
    requester: &'a str,
    request: &'a serde_json::Value,
) -> NewTicket<'a> {
    NewTicket {
        operation: "create",
        requester,
        request_uid: None,
        service_id: inv.service_id,
        namespace_id: inv.namespace_id,
        environment: "test",
        vm_id: None,
        vm_count: 1,
        reason: "load test",
        request,
        status: "PendingApproval",
    }
}

/// Inserts a pending create ticket requested by `requester`.
pub async fn pending_ticket(pool: &PgPool, inv: &Inventory, requester: &str) -> Uuid {
    let request = json!({"count": 1});
    let mut conn = pool.acquire().await.unwrap();
    db::tickets::insert(&mut conn, &new_ticket(inv, requester, &request))
        .await
        .unwrap()
}

/// Reads with `read` until `done` holds for the value, and returns it; panics naming `what`
/// and the last value after `seconds` (a liveness bound on a loaded machine, not a
/// performance assertion).
pub async fn eventually<T, F, Fut>(
    what: &str,
    seconds: u64,
    mut read: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {value:?} after {seconds} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()).unwrap_or_default(),
        other => panic!("expected a database error, got {other}"),
    }
}

/// KubeVirt's swagger.json (a pinned commit's), as `make test` provides it: the file named
/// by `SHEPHERD_KUBEVIRT_SWAGGER`, else the project cache. Without either (a bare `cargo
/// test`), `None`: the caller skips and says so. Named but unreadable is a failure.
pub fn kubevirt_swagger() -> Option<String> {
    let (path, named) = match std::env::var("SHEPHERD_KUBEVIRT_SWAGGER") {
        Ok(path) => (std::path::PathBuf::from(path), true),
        Err(_) => (
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/kubevirt/swagger.json"),
            false,
        ),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if !named => {
            println!(
                "skipped: KubeVirt's swagger is not at {} ({e}); run scripts/kubevirt-swagger.sh",
                path.display()
            );
            None
        }
        Err(e) => panic!("SHEPHERD_KUBEVIRT_SWAGGER={}: {e}", path.display()),
    }
}

/// An insert-only River client on `pool`, as `shepherd run` builds one.
pub fn river(pool: &PgPool) -> std::sync::Arc<riverqueue::Client> {
    std::sync::Arc::new(shepherd::jobs::inserter(pool).expect("an insert-only River client"))
}

/// The `kubectl-shepherd` plugin binary: another package of the workspace, so Cargo gives
/// no `CARGO_BIN_EXE_` for it, and `cargo test`/`nextest` never build it. It is built once
/// per test process (a no-op when up to date, so never stale) into the profile directory
/// above this test binary's `deps/`.
pub fn plugin_binary() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("a test binary lives in target/<profile>/deps");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(name) => name,
                None => panic!("no profile directory above {}", exe.display()),
            };
            let status = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "kubectl-shepherd",
                    "--profile",
                    profile,
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build -p kubectl-shepherd");
            assert!(
                status.success(),
                "cargo build -p kubectl-shepherd: {status}"
            );
            let plugin =
                profile_dir.join(format!("kubectl-shepherd{}", std::env::consts::EXE_SUFFIX));
            assert!(plugin.is_file(), "{} is missing", plugin.display());
            plugin
        })
        .clone()
}

/// Records for cluster `name` what a probe of a healthy KubeVirt cluster finds (as the
/// `cluster_probe` job would): for tests whose clusters have no reachable target, where
/// placement needs a Healthy cluster. The probe itself is tested end to end elsewhere.
pub async fn probed_healthy(pool: &PgPool, name: &str) {
    use shepherd::domain::cluster_probe::{KubeVirtFacts, ProbeFacts, assess};
    let allocatable = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let facts = ProbeFacts {
        kubevirt: Some(KubeVirtFacts {
            phase: Some("Deployed".into()),
            version: Some("v1.5.2".into()),
            feature_gates: vec!["Snapshot".into(), "LiveMigration".into()],
        }),
        nodes: vec![allocatable(&[("cpu", "32"), ("memory", "128Gi")])],
        storage_classes: vec![("standard".into(), true), ("fast".into(), false)],
    };
    let id: Uuid =
        sqlx::query_scalar("SELECT id FROM clusters WHERE name = $1 AND deleted_at IS NULL")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("cluster {name} is not mirrored: {e}"));
    shepherd::app::cluster_probe::record(pool, id, &assess(Ok(facts)))
        .await
        .unwrap()
        .expect("the cluster is live");
}
