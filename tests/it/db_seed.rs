//! Seeds: idempotent, built-in roles never silently reverted, bootstrap admins synced.

use crate::common::{count, setup};
use shepherd::app::seed::{RoleDrift, SeedConfig, run};
use shepherd::domain::Subject;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Every seeded table's content plus the audit log size.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        r#"SELECT x FROM (
             SELECT 'perm ' || id AS x FROM permissions
             UNION ALL SELECT 'role ' || name || ' ' || builtin || ' ' || updated_at FROM roles
             UNION ALL SELECT 'grant ' || role_name || ' ' || permission_id FROM role_permissions
             UNION ALL SELECT 'policy ' || operation || ' ' || environment || ' ' || requires_approval || ' ' || updated_at FROM approval_policies
             UNION ALL SELECT 'binding ' || id || ' ' || subject_name || ' ' || role_name || ' ' || allowed_environments::text FROM role_bindings
             UNION ALL SELECT 'audit ' || count(*) FROM audit_log
           ) s ORDER BY x"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn admins(list: &[&str]) -> SeedConfig {
    SeedConfig {
        bootstrap_admins: list
            .iter()
            .map(|s| Subject::parse_flag(s).unwrap())
            .collect(),
    }
}

#[sqlx::test(migrations = false)]
async fn seeding_twice_changes_no_row(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let config = admins(&["user:admin", "group:platform-admins"]);
    let first = run(&t.pool, &config).await.unwrap();
    assert!(first.changed_anything());
    assert_eq!(first.permissions_added, 17);
    assert_eq!(first.roles_added.len(), 5);
    assert_eq!(first.policies_added, 18);
    assert_eq!(first.admins_added.len(), 2);
    let before = snapshot(&t.pool).await;
    let second = run(&t.pool, &config).await.unwrap();
    assert!(!second.changed_anything(), "{second:?}");
    assert_eq!(snapshot(&t.pool).await, before);
    let envs: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT unnest(allowed_environments) FROM role_bindings ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(envs, ["prod", "test"]);
}

#[sqlx::test(migrations = false)]
async fn edited_builtin_role_is_kept_and_reported(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    run(&t.pool, &SeedConfig::default()).await.unwrap();
    sqlx::query("DELETE FROM role_permissions WHERE role_name = 'operator' AND permission_id = 'vm:operate'")
        .execute(&t.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO role_permissions VALUES ('operator', 'audit:read')")
        .execute(&t.pool)
        .await
        .unwrap();
    let report = run(&t.pool, &SeedConfig::default()).await.unwrap();
    assert_eq!(
        report.drifted_roles,
        vec![RoleDrift {
            role: "operator".into(),
            missing: vec!["vm:operate".into()],
            extra: vec!["audit:read".into()],
        }]
    );
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT permission_id FROM role_permissions WHERE role_name = 'operator' ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert!(
        grants.contains(&"audit:read".to_string()) && !grants.contains(&"vm:operate".to_string())
    );
    // Built-in roles cannot be deleted.
    let err = sqlx::query("DELETE FROM roles WHERE name = 'viewer'")
        .execute(&t.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("built in"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn an_admins_policy_edit_survives_seeding(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    run(&t.pool, &SeedConfig::default()).await.unwrap();
    sqlx::query("UPDATE approval_policies SET requires_approval = true, updated_by = 'admin' WHERE operation = 'snapshot' AND environment = 'prod'")
        .execute(&t.pool)
        .await
        .unwrap();
    run(&t.pool, &SeedConfig::default()).await.unwrap();
    let requires: bool = sqlx::query_scalar(
        "SELECT requires_approval FROM approval_policies WHERE operation = 'snapshot' AND environment = 'prod'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(requires);
}

#[sqlx::test(migrations = false)]
async fn bootstrap_admins_follow_the_configuration_and_are_audited(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    run(&t.pool, &admins(&["user:alice", "group:ops"]))
        .await
        .unwrap();
    let report = run(&t.pool, &admins(&["group:ops"])).await.unwrap();
    assert_eq!(report.admins_revoked, vec![Subject::user("alice")]);
    assert!(report.admins_added.is_empty());
    let left: Vec<String> = sqlx::query_scalar("SELECT subject_name FROM role_bindings")
        .fetch_all(&t.pool)
        .await
        .unwrap();
    assert_eq!(left, ["ops"]);
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'role.assign'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &t.pool,
            "SELECT count(*) FROM audit_log WHERE action = 'role.revoke'"
        )
        .await,
        1
    );
    assert_eq!(
        shepherd::app::audit::verify(&t.pool).await.unwrap().problem,
        None
    );
}
