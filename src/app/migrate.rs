//! `shepherd migrate`: River's schema, ours, and the application role's grants. Running it
//! again changes nothing.

use super::AppError;
use crate::db::APP_ROLE;
use sqlx::PgPool;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// River migration versions applied by this run.
    pub river_applied: Vec<i64>,
    /// Our migration versions applied by this run.
    pub schema_applied: Vec<i64>,
}

impl MigrateReport {
    pub fn is_noop(&self) -> bool {
        self.river_applied.is_empty() && self.schema_applied.is_empty()
    }
}

pub async fn run(pool: &PgPool) -> Result<MigrateReport, AppError> {
    let river_applied = riverqueue::migrate::PostgresMigrator::new(pool.clone())
        .migrate_up()
        .await?;
    let before = applied_versions(pool).await?;
    sqlx::migrate!("./migrations").run(pool).await?;
    let schema_applied = applied_versions(pool)
        .await?
        .into_iter()
        .filter(|v| !before.contains(v))
        .collect();
    apply_grants(pool).await?;
    Ok(MigrateReport {
        river_applied,
        schema_applied,
    })
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// Creates the application role if missing and sets its grants: everything on the
/// application's tables, but only SELECT and INSERT on the audit log, and nothing that
/// changes the migration bookkeeping. Grants are idempotent; an advisory lock keeps two
/// concurrent `migrate` runs from tripping over each other's catalog updates.
async fn apply_grants(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kubevirt-shepherd.grants'))")
        .execute(&mut *tx)
        .await?;
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(APP_ROLE)
            .fetch_one(&mut *tx)
            .await?;
    if !role_exists {
        // Roles are cluster-wide: another database's migration may create it concurrently.
        sqlx::raw_sql(
            "DO $$ BEGIN CREATE ROLE shepherd_app NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::raw_sql(
        "GRANT USAGE ON SCHEMA public TO shepherd_app;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shepherd_app;
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO shepherd_app;
         REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM shepherd_app;
         REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations, river_migration FROM shepherd_app;",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// What the database user `shepherd run` connects as may do beyond the application role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub user: String,
    pub superuser: bool,
    /// Owns the audit log (typically: ran the migrations), so it can disable its triggers.
    pub owns_audit_log: bool,
}

impl Privilege {
    /// Why running as this user would let it rewrite the audit chain, if it would.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.superuser {
            Some("it is a superuser, which can rewrite the audit log whole")
        } else if self.owns_audit_log {
            Some("it owns the audit log, so it can drop its append-only trigger and rewrite it")
        } else {
            None
        }
    }
}

pub async fn privilege(pool: &PgPool) -> Result<Privilege, sqlx::Error> {
    let (user, superuser, owns_audit_log): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text,
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                COALESCE((SELECT pg_has_role(current_user, relowner, 'USAGE')
                          FROM pg_class WHERE oid = to_regclass('audit_log')), false)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Privilege {
        user,
        superuser,
        owns_audit_log,
    })
}
