//! VM snapshots a snapshot operation made (docs/architecture.md#day-2-operations).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewSnapshot<'a> {
    pub vm_id: Uuid,
    pub ticket_id: Uuid,
    pub cluster_id: Uuid,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Records the snapshot of a ticket once; a retried attempt finds it recorded.
pub async fn insert_once(conn: &mut PgConnection, s: &NewSnapshot<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO vm_snapshots (vm_id, ticket_id, cluster_id, namespace, name)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ticket_id) DO NOTHING"#,
        s.vm_id,
        s.ticket_id,
        s.cluster_id,
        s.namespace,
        s.name
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The snapshot of a ticket became ready to use.
pub async fn mark_ready(conn: &mut PgConnection, ticket_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE vm_snapshots SET ready_at = now() WHERE ticket_id = $1 AND ready_at IS NULL",
        ticket_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub name: String,
    pub vm: String,
    pub namespace: String,
    pub cluster: String,
    pub ticket_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
}

/// A VM's snapshots, oldest first.
pub async fn for_vm(conn: &mut PgConnection, vm_id: Uuid) -> sqlx::Result<Vec<SnapshotRow>> {
    sqlx::query_as!(
        SnapshotRow,
        r#"SELECT s.name, v.name AS vm, s.namespace, c.name AS cluster, s.ticket_id, s.created_at, s.ready_at
           FROM vm_snapshots s JOIN vms v ON v.id = s.vm_id JOIN clusters c ON c.id = s.cluster_id
           WHERE s.vm_id = $1 ORDER BY s.created_at, s.name"#,
        vm_id
    )
    .fetch_all(conn)
    .await
}

/// Whether the VM has a snapshot of that name, and whether it is ready to use.
pub async fn readiness(
    conn: &mut PgConnection,
    vm_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"SELECT ready_at IS NOT NULL AS "ready!" FROM vm_snapshots WHERE vm_id = $1 AND name = $2"#,
        vm_id,
        name
    )
    .fetch_optional(conn)
    .await
}
