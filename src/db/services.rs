//! Systems, Services and target namespaces: the inventory tickets and VMs hang from.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub async fn insert_system(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
    created_by: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO systems (name, description, created_by) VALUES ($1, $2, $3) RETURNING id",
        name,
        description,
        created_by
    )
    .fetch_one(conn)
    .await
}

pub async fn insert_service(
    conn: &mut PgConnection,
    system_id: Uuid,
    name: &str,
    created_by: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO services (system_id, name, created_by) VALUES ($1, $2, $3) RETURNING id",
        system_id,
        name,
        created_by
    )
    .fetch_one(conn)
    .await
}

pub async fn insert_namespace(
    conn: &mut PgConnection,
    name: &str,
    environment: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO namespaces (name, environment) VALUES ($1, $2) RETURNING id",
        name,
        environment
    )
    .fetch_one(conn)
    .await
}

/// Reserves `count` consecutive VM instance indexes of a Service and returns the first.
/// The row lock taken by the UPDATE serialises concurrent allocations; the counter only
/// grows (a trigger refuses anything else), so an index is never handed out twice, even
/// after the VM that had it is deleted. A rolled-back allocation leaves no trace.
pub async fn allocate_instance_indexes(
    conn: &mut PgConnection,
    service_id: Uuid,
    count: i32,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        r#"UPDATE services SET next_instance_index = next_instance_index + $2, updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL
           RETURNING next_instance_index - $2 AS "first!""#,
        service_id,
        count
    )
    .fetch_optional(conn)
    .await
}

/// The index the next allocated VM would get (a read for previews; nothing is reserved).
pub async fn next_instance_index(
    conn: &mut PgConnection,
    service_id: Uuid,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "SELECT next_instance_index FROM services WHERE id = $1 AND deleted_at IS NULL",
        service_id
    )
    .fetch_optional(conn)
    .await
}

/// Counts at a glance, for `shepherd show`.
#[derive(Debug, Clone, Default)]
pub struct InventoryCounts {
    pub systems: i64,
    pub services: i64,
    pub namespaces: i64,
    pub clusters: i64,
    pub tickets: i64,
    pub vms: i64,
}

pub async fn counts(conn: &mut PgConnection) -> sqlx::Result<InventoryCounts> {
    let r = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM systems WHERE deleted_at IS NULL) AS "systems!",
             (SELECT count(*) FROM services WHERE deleted_at IS NULL) AS "services!",
             (SELECT count(*) FROM namespaces WHERE deleted_at IS NULL) AS "namespaces!",
             (SELECT count(*) FROM clusters WHERE deleted_at IS NULL) AS "clusters!",
             (SELECT count(*) FROM tickets) AS "tickets!",
             (SELECT count(*) FROM vms WHERE deleted_at IS NULL) AS "vms!""#
    )
    .fetch_one(conn)
    .await?;
    Ok(InventoryCounts {
        systems: r.systems,
        services: r.services,
        namespaces: r.namespaces,
        clusters: r.clusters,
        tickets: r.tickets,
        vms: r.vms,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRow {
    pub id: Uuid,
    pub name: String,
    pub created_by: String,
    pub k8s_uid: Option<String>,
}

/// Mirrors a System object; returns None when a row for that object uid already exists.
pub async fn insert_system_for_object(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
    created_by: &str,
    k8s_uid: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO systems (name, description, created_by, k8s_uid) VALUES ($1, $2, $3, $4)
           ON CONFLICT (k8s_uid) WHERE k8s_uid IS NOT NULL DO NOTHING RETURNING id"#,
        name,
        description,
        created_by,
        k8s_uid
    )
    .fetch_optional(conn)
    .await
}

pub async fn live_system_by_name(
    conn: &mut PgConnection,
    name: &str,
) -> sqlx::Result<Option<SystemRow>> {
    sqlx::query_as!(
        SystemRow,
        "SELECT id, name, created_by, k8s_uid FROM systems WHERE name = $1 AND deleted_at IS NULL",
        name
    )
    .fetch_optional(conn)
    .await
}

pub async fn system_by_object(
    conn: &mut PgConnection,
    k8s_uid: &str,
) -> sqlx::Result<Option<(SystemRow, bool)>> {
    let row = sqlx::query!(
        r#"SELECT id, name, created_by, k8s_uid, deleted_at IS NOT NULL AS "deleted!"
           FROM systems WHERE k8s_uid = $1"#,
        k8s_uid
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        (
            SystemRow {
                id: r.id,
                name: r.name,
                created_by: r.created_by,
                k8s_uid: r.k8s_uid,
            },
            r.deleted,
        )
    }))
}

pub async fn live_service_count(conn: &mut PgConnection, system_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM services WHERE system_id = $1 AND deleted_at IS NULL"#,
        system_id
    )
    .fetch_one(conn)
    .await
}

pub async fn soft_delete_system(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE systems SET status = 'Deleted', deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub id: Uuid,
    pub system_id: Uuid,
    pub name: String,
    pub k8s_uid: Option<String>,
}

pub async fn insert_service_for_object(
    conn: &mut PgConnection,
    system_id: Uuid,
    name: &str,
    description: &str,
    created_by: &str,
    k8s_uid: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO services (system_id, name, description, created_by, k8s_uid) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (k8s_uid) WHERE k8s_uid IS NOT NULL DO NOTHING RETURNING id"#,
        system_id,
        name,
        description,
        created_by,
        k8s_uid
    )
    .fetch_optional(conn)
    .await
}

pub async fn live_service(
    conn: &mut PgConnection,
    system_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<ServiceRow>> {
    sqlx::query_as!(
        ServiceRow,
        "SELECT id, system_id, name, k8s_uid FROM services WHERE system_id = $1 AND name = $2 AND deleted_at IS NULL",
        system_id,
        name
    )
    .fetch_optional(conn)
    .await
}

pub async fn service_by_object(
    conn: &mut PgConnection,
    k8s_uid: &str,
) -> sqlx::Result<Option<(ServiceRow, bool)>> {
    let row = sqlx::query!(
        r#"SELECT id, system_id, name, k8s_uid, deleted_at IS NOT NULL AS "deleted!" FROM services WHERE k8s_uid = $1"#,
        k8s_uid
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        (
            ServiceRow {
                id: r.id,
                system_id: r.system_id,
                name: r.name,
                k8s_uid: r.k8s_uid,
            },
            r.deleted,
        )
    }))
}

/// VMs that still exist or are on their way (everything but Deleted).
pub async fn live_vm_count(conn: &mut PgConnection, service_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vms WHERE service_id = $1 AND deleted_at IS NULL"#,
        service_id
    )
    .fetch_one(conn)
    .await
}

pub async fn soft_delete_service(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE services SET status = 'Deleted', deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
}

pub async fn live_namespace(
    conn: &mut PgConnection,
    name: &str,
) -> sqlx::Result<Option<NamespaceRow>> {
    sqlx::query_as!(
        NamespaceRow,
        "SELECT id, name, environment FROM namespaces WHERE name = $1 AND deleted_at IS NULL",
        name
    )
    .fetch_optional(conn)
    .await
}

/// Registers or updates a target namespace; None when the row was already current (or has
/// another environment, which the caller checks first: an environment never changes).
pub async fn upsert_namespace(
    conn: &mut PgConnection,
    name: &str,
    environment: &str,
    description: &str,
    k8s_uid: &str,
) -> sqlx::Result<Option<NamespaceRow>> {
    sqlx::query_as!(
        NamespaceRow,
        r#"INSERT INTO namespaces (name, environment, description, k8s_uid) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE
             SET description = EXCLUDED.description, k8s_uid = EXCLUDED.k8s_uid, updated_at = now()
             WHERE namespaces.environment = EXCLUDED.environment
               AND (namespaces.description, namespaces.k8s_uid) IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.k8s_uid)
           RETURNING id, name, environment"#,
        name,
        environment,
        description,
        k8s_uid
    )
    .fetch_optional(conn)
    .await
}

/// A live System or Service as the REST API lists it.
#[derive(Debug, Clone)]
pub struct InventoryRow {
    pub id: Uuid,
    pub system_id: Uuid,
    pub system_name: String,
    pub name: String,
    pub description: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Live Systems with a name after `after`, by name.
pub async fn list_systems(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<InventoryRow>> {
    sqlx::query_as!(
        InventoryRow,
        r#"SELECT id, id AS "system_id!", name AS "system_name!", name, description, created_by, created_at
           FROM systems
           WHERE deleted_at IS NULL AND ($1::text IS NULL OR name > $1)
           ORDER BY name LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Live Services (of one System, or all) after the key `(system name, name)`.
pub async fn list_services(
    conn: &mut PgConnection,
    system: Option<&str>,
    after: Option<(&str, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<InventoryRow>> {
    let (after_system, after_name) = after.unzip();
    sqlx::query_as!(
        InventoryRow,
        r#"SELECT s.id, sys.id AS system_id, sys.name AS system_name, s.name, s.description,
                  s.created_by, s.created_at
           FROM services s JOIN systems sys ON sys.id = s.system_id
           WHERE s.deleted_at IS NULL AND sys.deleted_at IS NULL
             AND ($1::text IS NULL OR sys.name = $1)
             AND ($2::text IS NULL OR (sys.name, s.name) > ($2, $3::text))
           ORDER BY sys.name, s.name LIMIT $4"#,
        system,
        after_system,
        after_name,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The names a VM's name is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNameParts {
    pub namespace: String,
    pub system: String,
    pub service: String,
}

pub async fn names_for_vm(
    conn: &mut PgConnection,
    vm_id: Uuid,
) -> sqlx::Result<Option<VmNameParts>> {
    sqlx::query_as!(
        VmNameParts,
        r#"SELECT n.name AS namespace, sys.name AS system, s.name AS service
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           JOIN services s ON s.id = v.service_id JOIN systems sys ON sys.id = s.system_id
           WHERE v.id = $1"#,
        vm_id
    )
    .fetch_optional(conn)
    .await
}

/// Every System ever registered (deleted ones too: their tickets remain), as (id, name).
pub async fn all_system_names(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, String)>> {
    Ok(
        sqlx::query!("SELECT id, name FROM systems ORDER BY name, id")
            .fetch_all(conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect(),
    )
}
