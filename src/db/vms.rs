//! VM rows: one per VM a ticket creates, named and placed at approval.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewVm<'a> {
    pub name: &'a str,
    pub ticket_id: Uuid,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    pub cluster_id: Uuid,
    pub instance_index: i32,
    pub instance_size_id: Uuid,
    pub template_version_id: Uuid,
    pub storage_class: Option<&'a str>,
    pub created_by: &'a str,
}

pub async fn insert(conn: &mut PgConnection, vm: &NewVm<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO vms (name, ticket_id, service_id, namespace_id, cluster_id, instance_index,
                            instance_size_id, template_version_id, storage_class, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"#,
        vm.name,
        vm.ticket_id,
        vm.service_id,
        vm.namespace_id,
        vm.cluster_id,
        vm.instance_index,
        vm.instance_size_id,
        vm.template_version_id,
        vm.storage_class,
        vm.created_by
    )
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSummary {
    pub id: Uuid,
    pub name: String,
    pub cluster: Option<String>,
    pub status: String,
}

pub async fn for_ticket(conn: &mut PgConnection, ticket_id: Uuid) -> sqlx::Result<Vec<VmSummary>> {
    sqlx::query_as!(
        VmSummary,
        r#"SELECT v.id, v.name, c.name AS "cluster?", v.status FROM vms v
           LEFT JOIN clusters c ON c.id = v.cluster_id
           WHERE v.ticket_id = $1 ORDER BY v.instance_index"#,
        ticket_id
    )
    .fetch_all(conn)
    .await
}

/// One VM's summary, live or not.
pub async fn summary(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<VmSummary>> {
    sqlx::query_as!(
        VmSummary,
        r#"SELECT v.id, v.name,
                  (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?", v.status
           FROM vms v WHERE v.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A VM as the REST API lists it.
#[derive(Debug, Clone)]
pub struct VmListRow {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub desired_power_state: String,
    pub ticket_id: Uuid,
    pub system_id: Uuid,
    pub system_name: String,
    pub service_name: String,
    pub namespace_name: String,
    pub environment: String,
    pub cluster: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct VmFilter {
    pub system: Option<String>,
    pub service: Option<String>,
    pub environment: Option<String>,
    pub status: Option<String>,
}

/// Up to `limit` live VMs after the key `(created_at, name)`, oldest first (live names are
/// unique, and one approval's VMs share a creation time).
pub async fn list(
    conn: &mut PgConnection,
    filter: &VmFilter,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> sqlx::Result<Vec<VmListRow>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        VmListRow,
        r#"SELECT v.id, v.name, v.status, v.desired_power_state, v.ticket_id, sys.id AS system_id,
                  sys.name AS system_name, s.name AS service_name, n.name AS namespace_name,
                  n.environment, c.name AS "cluster?", v.created_by, v.created_at
           FROM vms v
           JOIN services s ON s.id = v.service_id
           JOIN systems sys ON sys.id = s.system_id
           JOIN namespaces n ON n.id = v.namespace_id
           LEFT JOIN clusters c ON c.id = v.cluster_id
           WHERE v.deleted_at IS NULL
             AND ($1::text IS NULL OR sys.name = $1)
             AND ($2::text IS NULL OR s.name = $2)
             AND ($3::text IS NULL OR n.environment = $3)
             AND ($4::text IS NULL OR v.status = $4)
             AND ($5::timestamptz IS NULL OR (v.created_at, v.name) > ($5, $6::text))
           ORDER BY v.created_at, v.name
           LIMIT $7"#,
        filter.system,
        filter.service,
        filter.environment,
        filter.status,
        after_at,
        after_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A live VM that an operation targets, with what the checks need.
#[derive(Debug, Clone)]
pub struct VmTarget {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    pub system_id: Uuid,
    pub system_name: String,
    pub environment: String,
}

pub async fn live_by_name(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<VmTarget>> {
    sqlx::query_as!(
        VmTarget,
        r#"SELECT v.id, v.name, v.status, v.service_id, v.namespace_id, sys.id AS system_id,
                  sys.name AS system_name, n.environment
           FROM vms v
           JOIN services s ON s.id = v.service_id
           JOIN systems sys ON sys.id = s.system_id
           JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.name = $1 AND v.deleted_at IS NULL"#,
        name
    )
    .fetch_optional(conn)
    .await
}
