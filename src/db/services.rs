//! Systems, Services and target namespaces: the inventory tickets and VMs hang from.

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
