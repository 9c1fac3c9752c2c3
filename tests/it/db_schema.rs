//! The schema on real PostgreSQL 18: migrations, the application role, immutability rules.

use crate::common::{count, inventory, pending_ticket, setup, sqlstate};
use serde_json::json;
use shepherd::db;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Everything a migration could change: columns, indexes, constraints, triggers, grants.
async fn schema_fingerprint(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        r#"SELECT x FROM (
             SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable AS x
               FROM information_schema.columns WHERE table_schema = 'public'
             UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
             UNION ALL SELECT 'con ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             UNION ALL SELECT 'trg ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
             UNION ALL SELECT 'grant ' || grantee || ' ' || table_name || ' ' || privilege_type
               FROM information_schema.role_table_grants WHERE table_schema = 'public'
             UNION ALL SELECT 'migration ' || version FROM _sqlx_migrations
             UNION ALL SELECT 'river ' || version FROM river_migration
           ) s ORDER BY x"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrate_twice_changes_nothing_and_creates_river_tables(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await; // the first run
    let before = schema_fingerprint(&t.pool).await;
    let again = shepherd::app::migrate::run(&t.pool).await.unwrap();
    assert!(again.is_noop(), "second migrate applied {again:?}");
    assert_eq!(schema_fingerprint(&t.pool).await, before);
    for table in [
        "river_job",
        "river_leader",
        "river_queue",
        "river_migration",
    ] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&t.pool)
            .await
            .unwrap();
        assert!(exists, "River table {table} is missing");
    }
}

#[sqlx::test(migrations = false)]
async fn first_migrate_reports_what_it_applied(opts: PgPoolOptions, connect: PgConnectOptions) {
    let pool = opts.connect_with(connect).await.unwrap();
    let report = shepherd::app::migrate::run(&pool).await.unwrap();
    assert!(!report.river_applied.is_empty());
    assert_eq!(
        report.schema_applied.len(),
        std::fs::read_dir("migrations").unwrap().count()
    );
}

#[sqlx::test(migrations = false)]
async fn application_role_cannot_update_delete_or_truncate_the_audit_log(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let mut tx = t.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE shepherd_app")
        .execute(&mut *tx)
        .await
        .unwrap();
    // The role can do its normal work, audit appends included...
    db::audit::append(
        &mut tx,
        &db::audit::AuditEntry::new("system.create", "alice", "system", 1, "shop"),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE approval_policies SET updated_by = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap();
    // ...but not change history. Each statement runs in a savepoint so the next can run.
    for stmt in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        sqlx::query("SAVEPOINT s").execute(&mut *tx).await.unwrap();
        let err = sqlx::query(stmt).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            sqlstate(&err),
            "42501",
            "{stmt} must be refused for the app role: {err}"
        );
        sqlx::query("ROLLBACK TO SAVEPOINT s")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = false)]
async fn audit_log_refuses_changes_even_from_the_owner_unless_triggers_are_disabled(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    shepherd::app::audit::record(
        &t.pool,
        &db::audit::AuditEntry::new("system.create", "alice", "system", 1, "shop"),
    )
    .await
    .unwrap();
    for stmt in [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(stmt).execute(&t.pool).await.unwrap_err();
        assert!(err.to_string().contains("immutable"), "{stmt}: {err}");
    }
    assert_eq!(count(&t.pool, "SELECT count(*) FROM audit_log").await, 1);
}

#[sqlx::test(migrations = false)]
async fn domain_event_payload_is_immutable_but_status_moves(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let mut conn = t.pool.acquire().await.unwrap();
    let id = db::events::insert(
        &mut conn,
        "ticket",
        uuid::Uuid::new_v4(),
        "vm.request",
        "Pending",
        &json!({"a": 1}),
    )
    .await
    .unwrap();
    let err = sqlx::query("UPDATE domain_events SET payload = '{\"a\": 2}' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    let err = sqlx::query("DELETE FROM domain_events WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    sqlx::query("UPDATE domain_events SET status = 'Completed' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn at_most_one_pending_ticket_per_vm_and_operation(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let create = pending_ticket(&t.pool, &inv, "alice").await;
    let vm: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO vms (name, ticket_id, service_id, namespace_id, instance_index, created_by)
         VALUES ('team-a-shop-web-01', $1, $2, $3, 1, 'alice') RETURNING id",
    )
    .bind(create)
    .bind(inv.service_id)
    .bind(inv.namespace_id)
    .fetch_one(&t.pool)
    .await
    .unwrap();
    let insert = |op: &'static str| {
        sqlx::query(
            "INSERT INTO tickets (operation, requester, service_id, namespace_id, environment, vm_id)
             VALUES ($1, 'alice', $2, $3, 'test', $4)",
        )
        .bind(op)
        .bind(inv.service_id)
        .bind(inv.namespace_id)
        .bind(vm)
    };
    insert("delete").execute(&t.pool).await.unwrap();
    let err = insert("delete").execute(&t.pool).await.unwrap_err();
    assert!(db::is_unique_violation(&err), "{err}");
    insert("stop").execute(&t.pool).await.unwrap(); // another operation is independent
    sqlx::query(
        "UPDATE tickets SET status = 'Cancelled' WHERE vm_id = $1 AND operation = 'delete'",
    )
    .bind(vm)
    .execute(&t.pool)
    .await
    .unwrap();
    insert("delete").execute(&t.pool).await.unwrap(); // no longer pending: a new one is allowed
}

#[sqlx::test(migrations = false)]
async fn names_are_unique_among_live_rows_only(opts: PgPoolOptions, connect: PgConnectOptions) {
    let t = setup(opts, connect).await;
    let mut conn = t.pool.acquire().await.unwrap();
    let first = db::services::insert_system(&mut conn, "shop", "", "alice")
        .await
        .unwrap();
    let err = db::services::insert_system(&mut conn, "shop", "", "bob")
        .await
        .unwrap_err();
    assert!(db::is_unique_violation(&err));
    sqlx::query("UPDATE systems SET status = 'Deleted', deleted_at = now() WHERE id = $1")
        .bind(first)
        .execute(&mut *conn)
        .await
        .unwrap();
    db::services::insert_system(&mut conn, "shop", "", "bob")
        .await
        .unwrap();
    // Status and deleted_at cannot disagree.
    let err = sqlx::query("UPDATE systems SET status = 'Deleted' WHERE deleted_at IS NULL")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23514");
    // Services are unique within their System, not globally.
    let a = db::services::insert_system(&mut conn, "erp", "", "alice")
        .await
        .unwrap();
    let b = db::services::insert_system(&mut conn, "crm", "", "alice")
        .await
        .unwrap();
    db::services::insert_service(&mut conn, a, "web", "alice")
        .await
        .unwrap();
    db::services::insert_service(&mut conn, b, "web", "alice")
        .await
        .unwrap();
    let err = db::services::insert_service(&mut conn, a, "web", "alice")
        .await
        .unwrap_err();
    assert!(db::is_unique_violation(&err));
}

#[sqlx::test(migrations = false)]
async fn nobody_decides_their_own_ticket_even_bypassing_the_application(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let inv = inventory(&t.pool).await;
    let ticket = pending_ticket(&t.pool, &inv, "alice").await;
    let err =
        sqlx::query("UPDATE tickets SET status = 'Approved', approver = 'alice' WHERE id = $1")
            .bind(ticket)
            .execute(&t.pool)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&err), "23514");
}

#[sqlx::test(migrations = false)]
async fn template_versions_and_vm_revisions_never_change(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let template: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO templates (name) VALUES ('fedora') RETURNING id")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    sqlx::query("INSERT INTO template_versions (template_id, version, spec, spec_sha256, created_by) VALUES ($1, 1, '{}', 'x', 'admin')")
        .bind(template)
        .execute(&t.pool)
        .await
        .unwrap();
    for stmt in [
        "UPDATE template_versions SET spec = '{\"a\":1}'",
        "DELETE FROM template_versions",
    ] {
        let err = sqlx::query(stmt).execute(&t.pool).await.unwrap_err();
        assert!(err.to_string().contains("immutable"), "{stmt}: {err}");
    }
}

#[sqlx::test(migrations = false)]
async fn only_domain_events_past_retention_are_pruned(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let t = setup(opts, connect).await;
    let mut conn = t.pool.acquire().await.unwrap();
    for age_days in [10, 3] {
        sqlx::query(
            "INSERT INTO domain_events (aggregate_type, aggregate_id, event_type, payload, created_at)
             VALUES ('ticket', gen_random_uuid(), 'vm.request', '{}', now() - make_interval(days => $1))",
        )
        .bind(age_days)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    // Retention of 7 days takes the 10-day-old event and keeps the 3-day-old one.
    assert_eq!(
        db::events::prune_older_than(&mut conn, 7, 1000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(&t.pool, "SELECT count(*) FROM domain_events").await,
        1
    );
    // The database refuses deleting a young event whatever the caller asks for.
    let err = db::events::prune_older_than(&mut conn, 1, 1000)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("immutable until it is 7 days old"),
        "{err}"
    );
}
