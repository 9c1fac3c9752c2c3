//! VM rows: one per VM a ticket creates, named and placed at approval.

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
