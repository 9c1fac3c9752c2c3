//! `shepherd --log-format json` writes one JSON object per log line (timestamp, level,
//! target, span fields), so log pipelines can read it; the default stays text.

use serde_json::Value;
use shepherd_sim::{ClusterConfig, SimCluster};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

/// Runs `shepherd run` with `format` against a bare simulated cluster (no CRDs, so the
/// start-up check warns about every kind) until it is ready; returns its stderr lines.
async fn run_and_collect(db: &crate::common::TestDb, format: Option<&str>) -> Vec<String> {
    let sim = SimCluster::start(ClusterConfig::new("mgmt").with_object(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubevirt-shepherd"},
    })))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = sim.write_kubeconfig(dir.path(), "admin").unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, crate::common::e2e::KEY).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shepherd"));
    if let Some(format) = format {
        command.args(["--log-format", format]);
    }
    let mut child = command
        .args(["run", "--no-workers", "--allow-privileged-database-user"])
        .args(["--health-addr", "127.0.0.1:0", "--instance", "logs"])
        .arg("--identity-key-file")
        .arg(&key)
        .env("DATABASE_URL", &db.url)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("SHEPHERD_LOG_FORMAT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start shepherd run");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The start-up check names each kind it cannot list; wait for a few such lines.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let warned = line.contains("cannot list this kind");
            seen.push(line);
            if warned && seen.iter().filter(|l| l.contains("cannot list")).count() >= 3 {
                break;
            }
        }
    })
    .await;
    child.kill().await.ok();
    seen
}

#[sqlx::test(migrations = false)]
async fn json_log_lines_parse_as_json_with_level_target_and_time(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let db = crate::common::setup(opts, connect).await;
    let lines = run_and_collect(&db, Some("json")).await;
    assert!(
        lines.iter().filter(|l| l.contains("cannot list")).count() >= 3,
        "{lines:#?}"
    );
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(parsed.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let warning = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot list"))
        })
        .unwrap();
    assert_eq!(warning["level"], "WARN");
    assert!(warning["kind"].is_string(), "{warning}");
}

#[sqlx::test(migrations = false)]
async fn text_is_the_default_format(opts: PgPoolOptions, connect: PgConnectOptions) {
    let db = crate::common::setup(opts, connect).await;
    let lines = run_and_collect(&db, None).await;
    let warning = lines
        .iter()
        .find(|l| l.contains("cannot list"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(serde_json::from_str::<Value>(warning).is_err());
    assert!(warning.contains("WARN"), "{warning}");
    // Not a terminal (a log file, a container's log): no colour escapes.
    assert!(!warning.contains('\u{1b}'), "{warning:?}");
}

/// `shepherd run` as the superuser that owns the tables could rewrite the audit log whole:
/// it refuses, naming the user and the way out; as a login role of the application role it
/// starts.
#[sqlx::test(migrations = false)]
async fn run_refuses_a_database_user_that_could_rewrite_the_audit_log(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let db = crate::common::setup(opts, connect).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, crate::common::e2e::KEY).unwrap();
    let run = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_shepherd"))
            .args([
                "run",
                "--no-workers",
                "--no-controllers",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .arg("--identity-key-file")
            .arg(&key)
            .env("DATABASE_URL", url)
            // No cluster: a run that passes the database check fails at the cluster.
            .env("KUBECONFIG", dir.path().join("absent.kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("run shepherd")
    };
    let out = run(&db.url);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("refusing to run as database user") && text.contains("superuser"),
        "{text}"
    );
    assert!(text.contains("--allow-privileged-database-user"), "{text}");

    sqlx::raw_sql(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shepherd_runner_test') THEN
             CREATE ROLE shepherd_runner_test LOGIN IN ROLE shepherd_app;
           END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (scheme_user, rest) = db.url.split_once('@').unwrap();
    let (scheme, _) = scheme_user.split_once("//").unwrap();
    let app_url = format!("{scheme}//shepherd_runner_test@{rest}");
    let out = run(&app_url);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("refusing to run"), "{text}");
    assert!(
        text.contains("management cluster"),
        "it got as far as the cluster: {text}"
    );
}
