//! The audit hash chain on real PostgreSQL: appends, redaction, concurrency, and
//! `shepherd audit verify` after each kind of tampering by the database owner.

use crate::common::{TestDb, count, setup};
use serde_json::json;
use shepherd::app::audit::{record, verify};
use shepherd::db::audit::AuditEntry;
use shepherd::domain::audit_chain::ChainBreak;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Command;

async fn five_rows(t: &TestDb) {
    for (i, action) in [
        "system.create",
        "service.create",
        "vm.request",
        "approval.approve",
        "vm.create",
    ]
    .iter()
    .enumerate()
    {
        let entry = AuditEntry::new(action, "alice", "ticket", i, "t")
            .environment("test")
            .details(json!({"n": i}));
        record(&t.pool, &entry).await.unwrap();
    }
}

/// Runs `shepherd audit verify` against the test database.
fn verify_cli(t: &TestDb) -> (i32, String) {
    verify_cli_with(t, &[])
}

fn verify_cli_with(t: &TestDb, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shepherd"))
        .args(["audit", "verify"])
        .args(extra)
        .env("DATABASE_URL", &t.url)
        .output()
        .expect("run shepherd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Tampering as the owner: the append-only triggers must be switched off first.
async fn tamper(t: &TestDb, sql: &'static str) {
    let mut tx = t.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn untouched_log_verifies(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    let report = verify(&t.pool).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.rows_checked, 5);
    let (code, out) = verify_cli(&t);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok, 5 rows"), "{out}");
}

#[sqlx::test(migrations = false)]
async fn edited_row_is_named(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    tamper(
        &t,
        "UPDATE audit_log SET details = '{\"n\": 99}' WHERE id = 3",
    )
    .await;
    assert_eq!(
        verify(&t.pool).await.unwrap().problem,
        Some(ChainBreak::Edited { id: 3 })
    );
    let (code, out) = verify_cli(&t);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("first bad row: 3") && out.contains("edited"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn removed_row_is_named(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    tamper(&t, "DELETE FROM audit_log WHERE id = 2").await;
    assert_eq!(
        verify(&t.pool).await.unwrap().problem,
        Some(ChainBreak::BrokenLink {
            id: 3,
            previous_id: 1
        })
    );
    let (code, out) = verify_cli(&t);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("first bad row: 3") && out.contains("removed"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn reordered_rows_are_named(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    // Swap rows 2 and 4 whole (hashes included), as a reordering would.
    tamper(
        &t,
        "CREATE TEMP TABLE swap AS SELECT * FROM audit_log WHERE id IN (2, 4);
         UPDATE audit_log a SET occurred_at = s.occurred_at, action = s.action, actor = s.actor,
                resource_type = s.resource_type, resource_id = s.resource_id, resource_name = s.resource_name,
                parent_type = s.parent_type, parent_id = s.parent_id, environment = s.environment,
                details = s.details, prev_hash = s.prev_hash, hash = s.hash || '-'
           FROM swap s WHERE a.id = 6 - s.id;
         UPDATE audit_log SET hash = rtrim(hash, '-') WHERE id IN (2, 4);",
    )
    .await;
    assert_eq!(
        verify(&t.pool).await.unwrap().problem,
        Some(ChainBreak::BrokenLink {
            id: 2,
            previous_id: 1
        })
    );
    let (code, out) = verify_cli(&t);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("first bad row: 2") && out.contains("reordered"),
        "{out}"
    );
}

#[sqlx::test(migrations = false)]
async fn removed_newest_row_is_detected_by_the_head(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    tamper(&t, "DELETE FROM audit_log WHERE id = 5").await;
    assert_eq!(
        verify(&t.pool).await.unwrap().problem,
        Some(ChainBreak::HeadMismatch {
            last_id: 4,
            head_id: 5
        })
    );
    let (code, out) = verify_cli(&t);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("newest rows were removed"), "{out}");
}

#[sqlx::test(migrations = false)]
async fn concurrent_appends_never_fork_the_chain(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let pool = t.pool.clone();
            tokio::spawn(async move {
                record(
                    &pool,
                    &AuditEntry::new("vm.request", &format!("user{i}"), "ticket", i, "t"),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        count(&t.pool, "SELECT count(DISTINCT prev_hash) FROM audit_log").await,
        24
    );
    let report = verify(&t.pool).await.unwrap();
    assert_eq!((report.rows_checked, report.problem), (24, None));
}

#[sqlx::test(migrations = false)]
async fn rolled_back_append_leaves_the_chain_intact(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    let mut tx = t.pool.begin().await.unwrap();
    shepherd::db::audit::append(
        &mut tx,
        &AuditEntry::new("vm.request", "alice", "ticket", 9, "t"),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    record(
        &t.pool,
        &AuditEntry::new("vm.request", "bob", "ticket", 10, "t"),
    )
    .await
    .unwrap();
    let report = verify(&t.pool).await.unwrap();
    assert_eq!((report.rows_checked, report.problem), (6, None));
}

#[sqlx::test(migrations = false)]
async fn secret_keys_are_redacted_before_storage(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let details = json!({"cluster": "c1", "kubeconfig": "apiVersion: v1", "auth": {"token": "abc", "user": "u"}});
    record(
        &t.pool,
        &AuditEntry::new("cluster.register", "admin", "cluster", 1, "c1").details(details),
    )
    .await
    .unwrap();
    let stored: serde_json::Value = sqlx::query_scalar("SELECT details FROM audit_log")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(stored["cluster"], "c1");
    assert_eq!(stored["auth"]["user"], "u");
    assert_ne!(stored["kubeconfig"], "apiVersion: v1");
    assert_ne!(stored["auth"]["token"], "abc");
    assert!(!stored.to_string().contains("abc"), "{stored}");
    assert_eq!(verify(&t.pool).await.unwrap().problem, None);
}

/// The table owner rewrote the whole chain, every hash recomputed and the head moved along:
/// on its own the chain verifies; against an anchor exported before, it does not.
#[sqlx::test(migrations = false)]
async fn a_rewrite_of_the_whole_chain_is_caught_by_an_earlier_anchor(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use shepherd::domain::audit_chain::{GENESIS_HASH, row_hash};
    let t = setup(opts, connect).await;
    five_rows(&t).await;
    let anchor = shepherd::app::audit::anchor(&t.pool).await.unwrap();
    assert_eq!(anchor.rows, 5);

    let mut tx = t.pool.begin().await.unwrap();
    let rows = shepherd::db::audit::rows_after(&mut tx, 0, 100)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut prev = GENESIS_HASH.to_string();
    for mut row in rows {
        if row.id == 3 {
            row.content.details = json!({"n": 99});
        }
        let hash = row_hash(&prev, &row.content);
        sqlx::query("UPDATE audit_log SET details = $1, prev_hash = $2, hash = $3 WHERE id = $4")
            .bind(&row.content.details)
            .bind(&prev)
            .bind(&hash)
            .bind(row.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_chain_head SET last_hash = $1")
        .bind(&prev)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        verify(&t.pool).await.unwrap().problem,
        None,
        "undetectable alone"
    );
    assert_eq!(
        shepherd::app::audit::verify_against(&t.pool, Some(&anchor))
            .await
            .unwrap()
            .problem,
        Some(ChainBreak::AnchorMismatch { rows: 5, id: 5 })
    );
    let (code, out) = verify_cli_with(&t, &["--anchor", &anchor.to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rewritten since the anchor"), "{out}");
    let (code, out) = verify_cli_with(&t, &["--anchor", "5:nothex"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("ROWS:HASH"), "{out}");
}
