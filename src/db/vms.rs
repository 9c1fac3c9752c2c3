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
    pub namespace: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub desired_power_state: String,
    pub ip_address: Option<String>,
    pub node: Option<String>,
}

pub async fn for_ticket(conn: &mut PgConnection, ticket_id: Uuid) -> sqlx::Result<Vec<VmSummary>> {
    sqlx::query_as!(
        VmSummary,
        r#"SELECT v.id, v.name, (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?",
                  n.name AS namespace, v.status, v.status_reason, v.desired_power_state, v.ip_address, v.node
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
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
        r#"SELECT v.id, v.name, (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?",
                  n.name AS namespace, v.status, v.status_reason, v.desired_power_state, v.ip_address, v.node
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.id = $1"#,
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
    pub status_reason: Option<String>,
    pub desired_power_state: String,
    pub ip_address: Option<String>,
    pub node: Option<String>,
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
        r#"SELECT v.id, v.name, v.status, v.status_reason, v.desired_power_state, v.ip_address, v.node,
                  v.ticket_id, sys.id AS system_id,
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
    pub not_migratable: Option<String>,
    pub service_id: Uuid,
    pub namespace_id: Uuid,
    pub system_id: Uuid,
    pub system_name: String,
    pub environment: String,
}

pub async fn live_by_name(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<VmTarget>> {
    sqlx::query_as!(
        VmTarget,
        r#"SELECT v.id, v.name, v.status, v.not_migratable, v.service_id, v.namespace_id, sys.id AS system_id,
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

/// Everything provisioning one VM needs: the row, its ticket's snapshots, where it goes.
#[derive(Debug, Clone)]
pub struct ProvisionTarget {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub desired_power_state: String,
    pub instance_index: i32,
    pub storage_class: Option<String>,
    pub created_by: String,
    pub ticket_id: Uuid,
    pub ticket_status: String,
    pub template_snapshot: Option<serde_json::Value>,
    pub instance_size_snapshot: Option<serde_json::Value>,
    pub final_resources: Option<serde_json::Value>,
    pub namespace: String,
    pub environment: String,
    pub system: String,
    pub service: String,
    pub cluster_id: Option<Uuid>,
    pub cluster: Option<String>,
}

pub async fn provision_target(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ProvisionTarget>> {
    sqlx::query_as!(
        ProvisionTarget,
        r#"SELECT v.id, v.name, v.status, v.desired_power_state, v.instance_index, v.storage_class,
                  v.created_by, t.id AS ticket_id, t.status AS ticket_status, t.template_snapshot,
                  t.instance_size_snapshot, t.final_resources, n.name AS namespace, n.environment,
                  sys.name AS system, s.name AS service, v.cluster_id,
                  (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?"
           FROM vms v
           JOIN tickets t ON t.id = v.ticket_id
           JOIN namespaces n ON n.id = v.namespace_id
           JOIN services s ON s.id = v.service_id
           JOIN systems sys ON sys.id = s.system_id
           WHERE v.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A VM as the status watcher of its cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedVm {
    pub id: Uuid,
    pub name: String,
    pub namespace: String,
    pub ticket_id: Uuid,
    pub status: String,
    pub status_reason: Option<String>,
    pub desired_power_state: String,
    pub ip_address: Option<String>,
    pub node: Option<String>,
    pub environment: String,
}

/// Live VMs placed on a cluster.
pub async fn on_cluster(conn: &mut PgConnection, cluster_id: Uuid) -> sqlx::Result<Vec<WatchedVm>> {
    sqlx::query_as!(
        WatchedVm,
        r#"SELECT v.id, v.name, n.name AS namespace, v.ticket_id, v.status, v.status_reason,
                  v.desired_power_state, v.ip_address, v.node, n.environment
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.cluster_id = $1 AND v.deleted_at IS NULL ORDER BY v.name"#,
        cluster_id
    )
    .fetch_all(conn)
    .await
}

/// One live VM on a cluster by name, without a lock: for deciding whether a watch event
/// changes anything before taking the locks that writing needs.
pub async fn watched(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<WatchedVm>> {
    sqlx::query_as!(
        WatchedVm,
        r#"SELECT v.id, v.name, n.name AS namespace, v.ticket_id, v.status, v.status_reason,
                  v.desired_power_state, v.ip_address, v.node, n.environment
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.cluster_id = $1 AND v.name = $2 AND v.deleted_at IS NULL"#,
        cluster_id,
        name
    )
    .fetch_optional(conn)
    .await
}

/// One live VM on a cluster by name, locked for the rest of the transaction so that the
/// watcher and a job never interleave their read-decide-write.
pub async fn watched_for_update(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<WatchedVm>> {
    sqlx::query_as!(
        WatchedVm,
        r#"SELECT v.id, v.name, n.name AS namespace, v.ticket_id, v.status, v.status_reason,
                  v.desired_power_state, v.ip_address, v.node, n.environment
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.cluster_id = $1 AND v.name = $2 AND v.deleted_at IS NULL
           FOR UPDATE OF v"#,
        cluster_id,
        name
    )
    .fetch_optional(conn)
    .await
}

/// What a VM's row says about it on its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmObservation<'a> {
    pub status: &'a str,
    pub status_reason: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub node: Option<&'a str>,
    pub last_error: Option<&'a str>,
    pub not_migratable: Option<&'a str>,
}

/// Writes a VM's observed state when the row is in `from`; false when it was not (a
/// concurrent writer moved it) or nothing differs.
pub async fn set_observation(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    o: &VmObservation<'_>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE vms SET status = $3, status_reason = $4, ip_address = $5, node = $6,
                  last_error = COALESCE($7, last_error), not_migratable = $8, updated_at = now()
           WHERE id = $1 AND status = $2
             AND (status, status_reason, ip_address, node, last_error, not_migratable)
                 IS DISTINCT FROM ($3, $4, $5, $6, COALESCE($7, last_error), $8)"#,
        id,
        from,
        o.status,
        o.status_reason,
        o.ip_address,
        o.node,
        o.last_error,
        o.not_migratable
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether [`set_observation`] would write: the row is in `from` and differs from `o`.
/// Reads without a lock.
pub async fn observation_differs(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    o: &VmObservation<'_>,
) -> sqlx::Result<bool> {
    let differs = sqlx::query_scalar!(
        r#"SELECT EXISTS (
             SELECT 1 FROM vms
             WHERE id = $1 AND status = $2
               AND (status, status_reason, ip_address, node, last_error, not_migratable)
                   IS DISTINCT FROM ($3, $4, $5, $6, COALESCE($7, last_error), $8)
           ) AS "differs!""#,
        id,
        from,
        o.status,
        o.status_reason,
        o.ip_address,
        o.node,
        o.last_error,
        o.not_migratable
    )
    .fetch_one(conn)
    .await?;
    Ok(differs)
}

/// Records the uid of the VirtualMachine applied for this VM.
pub async fn set_k8s_uid(conn: &mut PgConnection, id: Uuid, uid: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE vms SET k8s_uid = $2 WHERE id = $1 AND k8s_uid IS DISTINCT FROM $2",
        id,
        uid
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The states and desired power states of a ticket's VMs.
pub async fn states_for_ticket(
    conn: &mut PgConnection,
    ticket_id: Uuid,
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        "SELECT status, desired_power_state FROM vms WHERE ticket_id = $1 ORDER BY instance_index",
        ticket_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.status, r.desired_power_state))
        .collect())
}

/// Appends a revision when `spec` differs from the VM's latest one; true when it did.
pub async fn append_revision_if_changed(
    conn: &mut PgConnection,
    vm_id: Uuid,
    spec: &serde_json::Value,
    change_reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"INSERT INTO vm_revisions (vm_id, revision, spec, change_reason)
           SELECT $1, COALESCE(max(r.revision), 0) + 1, $2, $3 FROM vm_revisions r WHERE r.vm_id = $1
           HAVING (SELECT spec FROM vm_revisions WHERE vm_id = $1 ORDER BY revision DESC LIMIT 1)
                  IS DISTINCT FROM $2"#,
        vm_id,
        spec,
        change_reason
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The ticket of the live VM `name` on a cluster, read without locking (to lock the ticket
/// before the VM row).
pub async fn live_ticket_on_cluster(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT ticket_id FROM vms WHERE cluster_id = $1 AND name = $2 AND deleted_at IS NULL",
        cluster_id,
        name
    )
    .fetch_optional(conn)
    .await
}

/// Whether an applied spec was ever recorded for the VM.
pub async fn has_revision(conn: &mut PgConnection, vm_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM vm_revisions WHERE vm_id = $1) AS "exists!""#,
        vm_id
    )
    .fetch_one(conn)
    .await
}

/// Records the foreign field managers of a VM's spec a drift scan found; the VM's id when
/// that changed what was recorded (None when unchanged).
pub async fn set_drifted_by(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    name: &str,
    managers: &[String],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE vms SET drifted_by = $3
         WHERE cluster_id = $1 AND name = $2 AND deleted_at IS NULL
           AND drifted_by IS DISTINCT FROM $3
         RETURNING id",
        cluster_id,
        name,
        managers
    )
    .fetch_optional(conn)
    .await
}

/// Clears the drift of the cluster's VMs not named in `drifted`.
pub async fn clear_drift_except(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    drifted: &[String],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE vms SET drifted_by = NULL
         WHERE cluster_id = $1 AND deleted_at IS NULL AND drifted_by IS NOT NULL
           AND NOT (name = ANY($2))",
        cluster_id,
        drifted
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a VM from `from` to `Deleting` with `reason` (the platform's own delete); false
/// when it was not in `from`.
pub async fn mark_deleting(
    conn: &mut PgConnection,
    id: Uuid,
    from: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE vms SET status = 'Deleting', status_reason = $3, updated_at = now()
         WHERE id = $1 AND status = $2",
        id,
        from,
        reason
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A `Deleting` VM is gone from its cluster: it becomes `Deleted` (and leaves the live
/// names, so its name could be taken again). False when it was not `Deleting`.
pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE vms SET status = 'Deleted', deleted_at = now(), ip_address = NULL, node = NULL,
                        not_migratable = NULL, updated_at = now()
         WHERE id = $1 AND status = 'Deleting'",
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the power state users asked for, so a later render keeps it. True when it
/// changed.
pub async fn set_desired_power(
    conn: &mut PgConnection,
    id: Uuid,
    power: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE vms SET desired_power_state = $2, updated_at = now()
         WHERE id = $1 AND desired_power_state <> $2",
        id,
        power
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A clone's row: what it shares with its source (service, namespace, cluster, size,
/// template, storage) and its own name, index and ticket. It starts `Creating` until the
/// watcher sees it.
#[derive(Debug, Clone)]
pub struct NewClone<'a> {
    pub source_id: Uuid,
    pub name: &'a str,
    pub ticket_id: Uuid,
    pub instance_index: i32,
    pub created_by: &'a str,
}

pub async fn insert_clone(conn: &mut PgConnection, c: &NewClone<'_>) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO vms (name, ticket_id, service_id, namespace_id, cluster_id, instance_index,
                            instance_size_id, template_version_id, storage_class, created_by,
                            desired_power_state, source_vm_id)
           SELECT $2, $3, s.service_id, s.namespace_id, s.cluster_id, $4, s.instance_size_id,
                  s.template_version_id, s.storage_class, $5, s.desired_power_state, s.id
           FROM vms s WHERE s.id = $1
           RETURNING id"#,
        c.source_id,
        c.name,
        c.ticket_id,
        c.instance_index,
        c.created_by
    )
    .fetch_optional(conn)
    .await
}

/// The live VM an operation ticket made (a clone), if any.
pub async fn made_by_ticket(
    conn: &mut PgConnection,
    ticket_id: Uuid,
) -> sqlx::Result<Option<VmSummary>> {
    sqlx::query_as!(
        VmSummary,
        r#"SELECT v.id, v.name, (SELECT c.name FROM clusters c WHERE c.id = v.cluster_id) AS "cluster?",
                  n.name AS namespace, v.status, v.status_reason, v.desired_power_state, v.ip_address, v.node
           FROM vms v JOIN namespaces n ON n.id = v.namespace_id
           WHERE v.ticket_id = $1 AND v.source_vm_id IS NOT NULL"#,
        ticket_id
    )
    .fetch_optional(conn)
    .await
}

/// Locks a VM's row for the rest of the transaction; its state, or None when it does not
/// exist.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT status FROM vms WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(conn)
        .await
}

/// Records what last went wrong with a VM (shown with its state).
pub async fn set_last_error(conn: &mut PgConnection, id: Uuid, message: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE vms SET last_error = $2, updated_at = now() WHERE id = $1 AND last_error IS DISTINCT FROM $2",
        id,
        message
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The name and instance index of the clone an operation ticket made, if any.
pub async fn clone_of_ticket(
    conn: &mut PgConnection,
    ticket_id: Uuid,
) -> sqlx::Result<Option<(String, i32)>> {
    let row = sqlx::query!(
        "SELECT name, instance_index FROM vms WHERE ticket_id = $1 AND source_vm_id IS NOT NULL",
        ticket_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.name, r.instance_index)))
}
