//! Permissions, roles, role bindings and System resource bindings.

use crate::domain::subject::Subject;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Inserts a permission unless it exists; true when inserted.
pub async fn insert_permission(
    conn: &mut PgConnection,
    id: &str,
    description: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO permissions (id, description) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        id,
        description
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts a role unless one of that name exists; true when inserted.
pub async fn insert_role(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
    builtin: bool,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO roles (name, description, builtin) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        name,
        description,
        builtin
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn grant(conn: &mut PgConnection, role: &str, permission: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO role_permissions (role_name, permission_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        role,
        permission
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The permissions granted to a role, sorted.
pub async fn role_permissions(conn: &mut PgConnection, role: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT permission_id FROM role_permissions WHERE role_name = $1 ORDER BY permission_id",
        role
    )
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBindingRow {
    pub id: Uuid,
    pub subject_kind: String,
    pub subject_name: String,
    pub role_name: String,
    pub scope_system_id: Option<Uuid>,
    pub allowed_environments: Vec<String>,
    pub source: String,
}

/// A binding to insert.
#[derive(Debug, Clone)]
pub struct NewRoleBinding<'a> {
    pub subject: &'a Subject,
    pub role: &'a str,
    pub scope_system_id: Option<Uuid>,
    pub allowed_environments: &'a [String],
    pub source: &'a str,
    pub created_by: &'a str,
}

/// Inserts a binding unless the same (subject, role, scope) exists; the new row's id, if any.
pub async fn insert_role_binding(
    conn: &mut PgConnection,
    b: &NewRoleBinding<'_>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO role_bindings (subject_kind, subject_name, role_name, scope_system_id,
                                      allowed_environments, source, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (subject_kind, subject_name, role_name,
                        COALESCE(scope_system_id, '00000000-0000-0000-0000-000000000000'::uuid))
           DO NOTHING
           RETURNING id"#,
        b.subject.kind.as_str(),
        b.subject.name,
        b.role,
        b.scope_system_id,
        b.allowed_environments,
        b.source,
        b.created_by
    )
    .fetch_optional(conn)
    .await
}

pub async fn role_bindings_by_source(
    conn: &mut PgConnection,
    source: &str,
) -> sqlx::Result<Vec<RoleBindingRow>> {
    sqlx::query_as!(
        RoleBindingRow,
        r#"SELECT id, subject_kind, subject_name, role_name, scope_system_id, allowed_environments, source
           FROM role_bindings WHERE source = $1 ORDER BY subject_kind, subject_name, role_name"#,
        source
    )
    .fetch_all(conn)
    .await
}

/// All bindings of the given subjects (a user and their groups), global or on any System.
pub async fn role_bindings_for(
    conn: &mut PgConnection,
    subjects: &[Subject],
) -> sqlx::Result<Vec<RoleBindingRow>> {
    let kinds: Vec<&str> = subjects.iter().map(|s| s.kind.as_str()).collect();
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    sqlx::query_as!(
        RoleBindingRow,
        r#"SELECT b.id, b.subject_kind, b.subject_name, b.role_name, b.scope_system_id,
                  b.allowed_environments, b.source
           FROM role_bindings b
           JOIN unnest($1::text[], $2::text[]) AS s(kind, name)
             ON b.subject_kind = s.kind AND b.subject_name = s.name
           ORDER BY b.role_name, b.id"#,
        &kinds as &[&str],
        &names as &[&str]
    )
    .fetch_all(conn)
    .await
}

pub async fn delete_role_binding(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!("DELETE FROM role_bindings WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Grants a resource role on a System; true when a new grant was made.
pub async fn grant_system_role(
    conn: &mut PgConnection,
    system_id: Uuid,
    subject: &Subject,
    role: &str,
    granted_by: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"INSERT INTO system_resource_bindings (system_id, subject_kind, subject_name, role, granted_by)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"#,
        system_id,
        subject.kind.as_str(),
        subject.name,
        role,
        granted_by
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub struct RoleSummary {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

pub async fn roles(conn: &mut PgConnection) -> sqlx::Result<Vec<RoleSummary>> {
    let rows = sqlx::query!(
        r#"SELECT r.name, r.builtin,
                  COALESCE(array_agg(p.permission_id ORDER BY p.permission_id)
                           FILTER (WHERE p.permission_id IS NOT NULL), '{}') AS "permissions!"
           FROM roles r LEFT JOIN role_permissions p ON p.role_name = r.name
           GROUP BY r.name, r.builtin ORDER BY r.name"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RoleSummary {
            name: r.name,
            builtin: r.builtin,
            permissions: r.permissions,
        })
        .collect())
}

/// A binding with what the checks need: its role's permissions and its System's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveBinding {
    pub role_name: String,
    pub permissions: Vec<String>,
    pub scope_system: Option<String>,
    pub allowed_environments: Vec<String>,
}

/// The bindings of a user and their groups, with permissions resolved. Bindings scoped to a
/// deleted System are left out.
pub async fn effective_bindings(
    conn: &mut PgConnection,
    subjects: &[Subject],
) -> sqlx::Result<Vec<EffectiveBinding>> {
    let kinds: Vec<&str> = subjects.iter().map(|s| s.kind.as_str()).collect();
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    sqlx::query_as!(
        EffectiveBinding,
        r#"SELECT b.role_name,
                  COALESCE(array_agg(p.permission_id ORDER BY p.permission_id)
                           FILTER (WHERE p.permission_id IS NOT NULL), '{}') AS "permissions!",
                  s.name AS "scope_system?",
                  b.allowed_environments
           FROM role_bindings b
           JOIN unnest($1::text[], $2::text[]) AS subj(kind, name)
             ON b.subject_kind = subj.kind AND b.subject_name = subj.name
           LEFT JOIN role_permissions p ON p.role_name = b.role_name
           LEFT JOIN systems s ON s.id = b.scope_system_id
           WHERE b.scope_system_id IS NULL OR s.deleted_at IS NULL
           GROUP BY b.id, b.role_name, s.name, b.allowed_environments
           ORDER BY b.role_name, b.id"#,
        &kinds as &[&str],
        &names as &[&str]
    )
    .fetch_all(conn)
    .await
}

/// The resource roles the subjects hold on a System (the caller keeps the strongest).
pub async fn system_roles(
    conn: &mut PgConnection,
    system_id: Uuid,
    subjects: &[Subject],
) -> sqlx::Result<Vec<String>> {
    let kinds: Vec<&str> = subjects.iter().map(|s| s.kind.as_str()).collect();
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    sqlx::query_scalar!(
        r#"SELECT b.role FROM system_resource_bindings b
           JOIN unnest($2::text[], $3::text[]) AS subj(kind, name)
             ON b.subject_kind = subj.kind AND b.subject_name = subj.name
           WHERE b.system_id = $1"#,
        system_id,
        &kinds as &[&str],
        &names as &[&str]
    )
    .fetch_all(conn)
    .await
}

/// Records that a subject was seen now, to the minute. A subject seen within the last
/// minute is left alone: the upsert locks the row until commit, and every request of one
/// person waited for the previous one on it (the use-case benchmark found this).
pub async fn touch_subject(conn: &mut PgConnection, subject: &Subject) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO subjects (kind, name)
           SELECT $1, $2
           WHERE NOT EXISTS (SELECT 1 FROM subjects
                             WHERE kind = $1 AND name = $2
                               AND last_seen_at > now() - interval '1 minute')
           ON CONFLICT (kind, name) DO UPDATE SET last_seen_at = now()"#,
        subject.kind.as_str(),
        subject.name
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A role binding as the REST API shows it.
#[derive(Debug, Clone)]
pub struct BindingListRow {
    pub id: Uuid,
    pub subject_kind: String,
    pub subject_name: String,
    pub role_name: String,
    pub scope_system: Option<String>,
    pub allowed_environments: Vec<String>,
    pub source: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Bindings after the key `(created_at, id)`, oldest first; or the one with `id`.
pub async fn list_bindings(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<BindingListRow>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        BindingListRow,
        r#"SELECT b.id, b.subject_kind, b.subject_name, b.role_name, s.name AS "scope_system?",
                  b.allowed_environments, b.source, b.created_by, b.created_at
           FROM role_bindings b LEFT JOIN systems s ON s.id = b.scope_system_id
           WHERE ($1::uuid IS NULL OR b.id = $1)
             AND ($2::timestamptz IS NULL OR (b.created_at, b.id) > ($2, $3::uuid))
           ORDER BY b.created_at, b.id LIMIT $4"#,
        id,
        after_at,
        after_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A resource role on a live System.
#[derive(Debug, Clone)]
pub struct SystemRoleRow {
    pub system_id: Uuid,
    pub system_name: String,
    pub role: String,
}

/// All resource roles the subjects hold on live Systems.
pub async fn all_system_roles(
    conn: &mut PgConnection,
    subjects: &[Subject],
) -> sqlx::Result<Vec<SystemRoleRow>> {
    let kinds: Vec<&str> = subjects.iter().map(|s| s.kind.as_str()).collect();
    let names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    sqlx::query_as!(
        SystemRoleRow,
        r#"SELECT b.system_id, s.name AS system_name, b.role FROM system_resource_bindings b
           JOIN systems s ON s.id = b.system_id AND s.deleted_at IS NULL
           JOIN unnest($1::text[], $2::text[]) AS subj(kind, name)
             ON b.subject_kind = subj.kind AND b.subject_name = subj.name
           ORDER BY s.name"#,
        &kinds as &[&str],
        &names as &[&str]
    )
    .fetch_all(conn)
    .await
}
