//! The platform catalog mirrored from admin kinds: clusters, instance sizes, templates and
//! their immutable versions. Upserts report whether anything changed so that re-delivered
//! events write nothing (and audit nothing).

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ClusterFields<'a> {
    pub name: &'a str,
    pub environment: &'a str,
    pub secret_namespace: &'a str,
    pub secret_name: &'a str,
    pub secret_key: &'a str,
    pub scheduling_weight: i32,
    pub max_vms: Option<i32>,
    pub enabled: bool,
    pub default_storage_class: Option<&'a str>,
    pub k8s_uid: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRow {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
}

pub async fn live_cluster(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<ClusterRow>> {
    sqlx::query_as!(
        ClusterRow,
        "SELECT id, name, environment FROM clusters WHERE name = $1 AND deleted_at IS NULL",
        name
    )
    .fetch_optional(conn)
    .await
}

/// Inserts or updates a cluster; the row when something changed, None when it was current.
pub async fn upsert_cluster(
    conn: &mut PgConnection,
    c: &ClusterFields<'_>,
) -> sqlx::Result<Option<ClusterRow>> {
    sqlx::query_as!(
        ClusterRow,
        r#"INSERT INTO clusters (name, environment, kubeconfig_secret_ns, kubeconfig_secret, kubeconfig_secret_key,
                                 scheduling_weight, max_vms, enabled, default_storage_class, k8s_uid)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET
             environment = EXCLUDED.environment, kubeconfig_secret_ns = EXCLUDED.kubeconfig_secret_ns,
             kubeconfig_secret = EXCLUDED.kubeconfig_secret, kubeconfig_secret_key = EXCLUDED.kubeconfig_secret_key,
             scheduling_weight = EXCLUDED.scheduling_weight, max_vms = EXCLUDED.max_vms, enabled = EXCLUDED.enabled,
             default_storage_class = EXCLUDED.default_storage_class, k8s_uid = EXCLUDED.k8s_uid, updated_at = now()
           WHERE (clusters.environment, clusters.kubeconfig_secret_ns, clusters.kubeconfig_secret,
                  clusters.kubeconfig_secret_key, clusters.scheduling_weight, clusters.max_vms, clusters.enabled,
                  clusters.default_storage_class, clusters.k8s_uid)
             IS DISTINCT FROM
                 (EXCLUDED.environment, EXCLUDED.kubeconfig_secret_ns, EXCLUDED.kubeconfig_secret,
                  EXCLUDED.kubeconfig_secret_key, EXCLUDED.scheduling_weight, EXCLUDED.max_vms, EXCLUDED.enabled,
                  EXCLUDED.default_storage_class, EXCLUDED.k8s_uid)
           RETURNING id, name, environment"#,
        c.name,
        c.environment,
        c.secret_namespace,
        c.secret_name,
        c.secret_key,
        c.scheduling_weight,
        c.max_vms,
        c.enabled,
        c.default_storage_class,
        c.k8s_uid
    )
    .fetch_optional(conn)
    .await
}

/// VMs placed on a cluster that are not deleted.
pub async fn live_vms_on_cluster(conn: &mut PgConnection, cluster_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vms WHERE cluster_id = $1 AND deleted_at IS NULL"#,
        cluster_id
    )
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSizeFields<'a> {
    pub name: &'a str,
    pub cpu_cores: i32,
    pub memory_mib: i64,
    pub cpu_overcommit: f64,
    pub memory_overcommit: f64,
    pub dedicated_cpu: bool,
    pub hugepages_size: Option<&'a str>,
    pub gpus: &'a Value,
    pub disk_min_gib: i32,
    pub disk_max_gib: i32,
    pub spec_overrides: &'a Value,
    pub k8s_uid: &'a str,
}

pub async fn upsert_instance_size(
    conn: &mut PgConnection,
    s: &InstanceSizeFields<'_>,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"INSERT INTO instance_sizes (name, cpu_cores, memory_mib, cpu_overcommit, memory_overcommit, dedicated_cpu,
                                       hugepages_size, gpus, disk_min_gib, disk_max_gib, spec_overrides, k8s_uid)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET
             cpu_cores = EXCLUDED.cpu_cores, memory_mib = EXCLUDED.memory_mib,
             cpu_overcommit = EXCLUDED.cpu_overcommit, memory_overcommit = EXCLUDED.memory_overcommit,
             dedicated_cpu = EXCLUDED.dedicated_cpu, hugepages_size = EXCLUDED.hugepages_size, gpus = EXCLUDED.gpus,
             disk_min_gib = EXCLUDED.disk_min_gib, disk_max_gib = EXCLUDED.disk_max_gib,
             spec_overrides = EXCLUDED.spec_overrides, k8s_uid = EXCLUDED.k8s_uid, updated_at = now()
           WHERE (instance_sizes.cpu_cores, instance_sizes.memory_mib, instance_sizes.cpu_overcommit,
                  instance_sizes.memory_overcommit, instance_sizes.dedicated_cpu, instance_sizes.hugepages_size,
                  instance_sizes.gpus, instance_sizes.disk_min_gib, instance_sizes.disk_max_gib,
                  instance_sizes.spec_overrides, instance_sizes.k8s_uid)
             IS DISTINCT FROM
                 (EXCLUDED.cpu_cores, EXCLUDED.memory_mib, EXCLUDED.cpu_overcommit, EXCLUDED.memory_overcommit,
                  EXCLUDED.dedicated_cpu, EXCLUDED.hugepages_size, EXCLUDED.gpus, EXCLUDED.disk_min_gib,
                  EXCLUDED.disk_max_gib, EXCLUDED.spec_overrides, EXCLUDED.k8s_uid)
           RETURNING id"#,
        s.name,
        s.cpu_cores,
        s.memory_mib,
        s.cpu_overcommit,
        s.memory_overcommit,
        s.dedicated_cpu,
        s.hugepages_size,
        s.gpus,
        s.disk_min_gib,
        s.disk_max_gib,
        s.spec_overrides,
        s.k8s_uid
    )
    .fetch_optional(conn)
    .await
}

/// What a VmRequest names, looked up in one round trip (the admission webhook answers each
/// request with it): each part None (or false) when it does not exist or is deleted. The
/// Service is looked up within the System.
#[derive(Debug, Clone)]
pub struct RequestReferences {
    pub system_id: Option<Uuid>,
    pub system_name: Option<String>,
    pub namespace_id: Option<Uuid>,
    pub namespace_environment: Option<String>,
    pub service_id: Option<Uuid>,
    pub template_exists: bool,
    pub size_name: Option<String>,
    pub disk_min_gib: Option<i32>,
    pub disk_max_gib: Option<i32>,
}

pub async fn request_references(
    conn: &mut PgConnection,
    system: &str,
    namespace: &str,
    service: &str,
    template: &str,
    size: &str,
) -> sqlx::Result<RequestReferences> {
    sqlx::query_as!(
        RequestReferences,
        r#"SELECT sy.id AS "system_id?", sy.name AS "system_name?",
                  n.id AS "namespace_id?", n.environment AS "namespace_environment?",
                  sv.id AS "service_id?",
                  EXISTS (SELECT 1 FROM templates t JOIN template_versions v ON v.template_id = t.id
                          WHERE t.name = $4 AND t.deleted_at IS NULL) AS "template_exists!",
                  sz.name AS "size_name?", sz.disk_min_gib AS "disk_min_gib?",
                  sz.disk_max_gib AS "disk_max_gib?"
           FROM (SELECT 1) AS one
           LEFT JOIN systems sy ON sy.name = $1 AND sy.deleted_at IS NULL
           LEFT JOIN namespaces n ON n.name = $2 AND n.deleted_at IS NULL
           LEFT JOIN services sv ON sv.system_id = sy.id AND sv.name = $3 AND sv.deleted_at IS NULL
           LEFT JOIN instance_sizes sz ON sz.name = $5 AND sz.deleted_at IS NULL"#,
        system,
        namespace,
        service,
        template,
        size
    )
    .fetch_one(conn)
    .await
}

/// The template's id, created if missing.
pub async fn ensure_template(
    conn: &mut PgConnection,
    name: &str,
    k8s_uid: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO templates (name, k8s_uid) VALUES ($1, $2)
           ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET k8s_uid = EXCLUDED.k8s_uid
           RETURNING id"#,
        name,
        k8s_uid
    )
    .fetch_one(conn)
    .await
}

/// The newest version of a template: (version, spec sha256).
pub async fn latest_template_version(
    conn: &mut PgConnection,
    template_id: Uuid,
) -> sqlx::Result<Option<(i32, String)>> {
    let row = sqlx::query!(
        "SELECT version, spec_sha256 FROM template_versions WHERE template_id = $1 ORDER BY version DESC LIMIT 1",
        template_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.version, r.spec_sha256)))
}

pub async fn insert_template_version(
    conn: &mut PgConnection,
    template_id: Uuid,
    version: i32,
    spec: &Value,
    spec_sha256: &str,
    created_by: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO template_versions (template_id, version, spec, spec_sha256, created_by)
           VALUES ($1, $2, $3, $4, $5) RETURNING id"#,
        template_id,
        version,
        spec,
        spec_sha256,
        created_by
    )
    .fetch_one(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct TemplateVersionRow {
    pub id: Uuid,
    pub version: i32,
    pub spec: Value,
}

/// A template's version: the given one, or the newest.
pub async fn template_version(
    conn: &mut PgConnection,
    name: &str,
    version: Option<i32>,
) -> sqlx::Result<Option<TemplateVersionRow>> {
    sqlx::query_as!(
        TemplateVersionRow,
        r#"SELECT v.id, v.version, v.spec FROM template_versions v JOIN templates t ON t.id = v.template_id
           WHERE t.name = $1 AND t.deleted_at IS NULL AND ($2::int IS NULL OR v.version = $2)
           ORDER BY v.version DESC LIMIT 1"#,
        name,
        version
    )
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSizeDetail {
    pub id: Uuid,
    pub name: String,
    pub cpu_cores: i32,
    pub memory_mib: i64,
    pub cpu_overcommit: f64,
    pub memory_overcommit: f64,
    pub dedicated_cpu: bool,
    pub hugepages_size: Option<String>,
    pub gpus: Value,
    pub disk_min_gib: i32,
    pub disk_max_gib: i32,
    pub spec_overrides: Value,
}

pub async fn instance_size_detail(
    conn: &mut PgConnection,
    name: &str,
) -> sqlx::Result<Option<InstanceSizeDetail>> {
    sqlx::query_as!(
        InstanceSizeDetail,
        r#"SELECT id, name, cpu_cores, memory_mib, cpu_overcommit, memory_overcommit, dedicated_cpu,
                  hugepages_size, gpus, disk_min_gib, disk_max_gib, spec_overrides
           FROM instance_sizes WHERE name = $1 AND deleted_at IS NULL"#,
        name
    )
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterCandidate {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    pub enabled: bool,
    pub health: String,
    pub scheduling_weight: i32,
    pub max_vms: Option<i32>,
    pub live_vms: i64,
    pub capabilities: Value,
    pub default_storage_class: Option<String>,
}

/// Every live cluster with what placement looks at.
pub async fn cluster_candidates(conn: &mut PgConnection) -> sqlx::Result<Vec<ClusterCandidate>> {
    sqlx::query_as!(
        ClusterCandidate,
        r#"SELECT c.id, c.name, c.environment, c.enabled, c.health, c.scheduling_weight, c.max_vms,
                  (SELECT count(*) FROM vms v WHERE v.cluster_id = c.id AND v.deleted_at IS NULL) AS "live_vms!",
                  c.capabilities, c.default_storage_class
           FROM clusters c WHERE c.deleted_at IS NULL ORDER BY c.name"#
    )
    .fetch_all(conn)
    .await
}

/// One live cluster as placement looks at it, its row locked until the transaction ends,
/// counting the live VMs of every ticket but `excluding_ticket` (the caller's own, already
/// inserted). `NO KEY UPDATE`, not `UPDATE`: the caller's VM rows already hold a key-share
/// lock on the cluster through their foreign key, and two approvals each holding one and
/// asking for `FOR UPDATE` deadlock. Two statements: under READ COMMITTED a statement that waited for the lock
/// still reads the rest (the VM count) as of when it started, so the count is read after
/// the lock.
pub async fn lock_cluster_candidate(
    conn: &mut PgConnection,
    id: Uuid,
    excluding_ticket: Uuid,
) -> sqlx::Result<Option<ClusterCandidate>> {
    let locked = sqlx::query_scalar!(
        "SELECT id FROM clusters WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Ok(None);
    }
    sqlx::query_as!(
        ClusterCandidate,
        r#"SELECT c.id, c.name, c.environment, c.enabled, c.health, c.scheduling_weight, c.max_vms,
                  (SELECT count(*) FROM vms v
                   WHERE v.cluster_id = c.id AND v.deleted_at IS NULL
                     AND v.ticket_id <> $2) AS "live_vms!",
                  c.capabilities, c.default_storage_class
           FROM clusters c WHERE c.id = $1"#,
        id,
        excluding_ticket
    )
    .fetch_optional(conn)
    .await
}

/// Where a cluster's credentials are: the kubeconfig Secret it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    pub secret_namespace: String,
    pub secret_name: String,
    pub secret_key: String,
}

pub async fn cluster_access(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ClusterAccess>> {
    sqlx::query_as!(
        ClusterAccess,
        r#"SELECT id, name, environment, kubeconfig_secret_ns AS secret_namespace,
                  kubeconfig_secret AS secret_name, kubeconfig_secret_key AS secret_key
           FROM clusters WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Every live cluster's credentials reference, by name.
pub async fn live_cluster_access(conn: &mut PgConnection) -> sqlx::Result<Vec<ClusterAccess>> {
    sqlx::query_as!(
        ClusterAccess,
        r#"SELECT id, name, environment, kubeconfig_secret_ns AS secret_namespace,
                  kubeconfig_secret AS secret_name, kubeconfig_secret_key AS secret_key
           FROM clusters WHERE deleted_at IS NULL ORDER BY name"#
    )
    .fetch_all(conn)
    .await
}

/// What the last probe recorded of a live cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeState {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    pub health: String,
    pub health_reason: Option<String>,
    pub health_message: Option<String>,
    pub kubevirt_version: Option<String>,
    pub capabilities: Value,
    /// When health, reason, message, version or capabilities last changed.
    pub health_changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A live cluster's probe state, its row locked until the transaction ends.
pub async fn lock_probe_state(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ProbeState>> {
    sqlx::query_as!(
        ProbeState,
        r#"SELECT id, name, environment, health, health_reason, health_message, kubevirt_version,
                  capabilities, health_changed_at
           FROM clusters WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A live cluster's probe state by name, for its status.
pub async fn probe_state(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<ProbeState>> {
    sqlx::query_as!(
        ProbeState,
        r#"SELECT id, name, environment, health, health_reason, health_message, kubevirt_version,
                  capabilities, health_changed_at
           FROM clusters WHERE name = $1 AND deleted_at IS NULL"#,
        name
    )
    .fetch_optional(conn)
    .await
}

/// A probe's findings for one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRecord<'a> {
    pub health: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub kubevirt_version: Option<&'a str>,
    pub capabilities: &'a Value,
    pub storage_classes: &'a [String],
}

/// Records a probe: `last_probe_at` always, the findings, and `health_changed_at` when
/// `changed` (the caller compared with the locked state).
pub async fn record_probe(
    conn: &mut PgConnection,
    id: Uuid,
    probe: &ProbeRecord<'_>,
    changed: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE clusters SET health = $2, health_reason = $3, health_message = $4,
                kubevirt_version = $5, capabilities = $6, storage_classes = $7,
                last_probe_at = now(),
                health_changed_at = CASE WHEN $8 THEN now() ELSE health_changed_at END
         WHERE id = $1",
        id,
        probe.health,
        probe.reason,
        probe.message,
        probe.kubevirt_version,
        probe.capabilities,
        probe.storage_classes,
        changed
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids of every live cluster, by name.
pub async fn live_cluster_ids(conn: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!("SELECT id FROM clusters WHERE deleted_at IS NULL ORDER BY name")
        .fetch_all(conn)
        .await
}

/// Live VMs placed on cluster `id`.
pub async fn cluster_live_vms(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vms WHERE cluster_id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_one(conn)
    .await
}

/// Live VMs in target namespace `id`.
pub async fn namespace_live_vms(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vms WHERE namespace_id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_one(conn)
    .await
}

/// Pending tickets whose request names `value` under `key` (`instanceSize`, `template`).
pub async fn pending_tickets_naming(
    conn: &mut PgConnection,
    key: &str,
    value: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM tickets
           WHERE status = 'PendingApproval' AND request ->> $1 = $2"#,
        key,
        value
    )
    .fetch_one(conn)
    .await
}

/// The catalog tables whose rows are soft-deleted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogTable {
    Clusters,
    Namespaces,
    InstanceSizes,
    Templates,
}

impl CatalogTable {
    const fn name(self) -> &'static str {
        match self {
            CatalogTable::Clusters => "clusters",
            CatalogTable::Namespaces => "namespaces",
            CatalogTable::InstanceSizes => "instance_sizes",
            CatalogTable::Templates => "templates",
        }
    }
}

/// Soft-deletes the live row `name` of `table`, locking it; its id, or None. The table
/// name comes from the closed `CatalogTable`, never from input.
pub async fn soft_delete(
    conn: &mut PgConnection,
    table: CatalogTable,
    name: &str,
) -> sqlx::Result<Option<Uuid>> {
    let sql = format!(
        "UPDATE {} SET status = 'Deleted', deleted_at = now(), updated_at = now()
         WHERE name = $1 AND deleted_at IS NULL RETURNING id",
        table.name()
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// What a drift scan found on one cluster, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanState {
    pub scan_suspect: Option<String>,
    pub orphan_count: i32,
    pub drifted_count: i32,
    /// When the last scan ran (None: never; ignored when recording a scan).
    pub last_scan_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The last scan's findings for a live cluster, its row locked for the transaction.
pub async fn lock_scan_state(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ScanState>> {
    sqlx::query_as!(
        ScanState,
        "SELECT scan_suspect, orphan_count, drifted_count, last_scan_at FROM clusters
         WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        id
    )
    .fetch_optional(conn)
    .await
}

/// The last scan's findings for a live cluster by name, for its status.
pub async fn scan_state(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<ScanState>> {
    sqlx::query_as!(
        ScanState,
        "SELECT scan_suspect, orphan_count, drifted_count, last_scan_at FROM clusters
         WHERE name = $1 AND deleted_at IS NULL",
        name
    )
    .fetch_optional(conn)
    .await
}

/// Records a scan's findings (`last_scan_at` always).
pub async fn record_scan(conn: &mut PgConnection, id: Uuid, state: &ScanState) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE clusters SET scan_suspect = $2, orphan_count = $3, drifted_count = $4,
                last_scan_at = now()
         WHERE id = $1",
        id,
        state.scan_suspect,
        state.orphan_count,
        state.drifted_count
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the orphans recorded for a cluster with `orphans` (`namespace/name` each),
/// keeping when each was first seen; true when the set changed.
pub async fn replace_orphans(
    conn: &mut PgConnection,
    cluster_id: Uuid,
    orphans: &[String],
) -> sqlx::Result<bool> {
    let (namespaces, names): (Vec<String>, Vec<String>) = orphans
        .iter()
        .map(|o| {
            let (ns, name) = o.split_once('/').unwrap_or(("", o));
            (ns.to_string(), name.to_string())
        })
        .unzip();
    let removed = sqlx::query!(
        "DELETE FROM orphan_vms o WHERE o.cluster_id = $1
           AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(namespace, name)
                           WHERE k.namespace = o.namespace AND k.name = o.name)",
        cluster_id,
        &namespaces,
        &names
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let added = sqlx::query!(
        "INSERT INTO orphan_vms (cluster_id, namespace, name)
         SELECT $1, k.namespace, k.name FROM unnest($2::text[], $3::text[]) AS k(namespace, name)
         ON CONFLICT DO NOTHING",
        cluster_id,
        &namespaces,
        &names
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(removed + added > 0)
}

/// One VM found with our label on a cluster that no live row records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRow {
    pub cluster: String,
    pub environment: String,
    pub namespace: String,
    pub name: String,
    pub first_seen_at: chrono::DateTime<chrono::Utc>,
}

/// Every orphan of every live cluster, by cluster, namespace and name.
pub async fn orphans(conn: &mut PgConnection) -> sqlx::Result<Vec<OrphanRow>> {
    sqlx::query_as!(
        OrphanRow,
        "SELECT c.name AS cluster, c.environment, o.namespace, o.name, o.first_seen_at
         FROM orphan_vms o JOIN clusters c ON c.id = o.cluster_id
         WHERE c.deleted_at IS NULL ORDER BY c.name, o.namespace, o.name"
    )
    .fetch_all(conn)
    .await
}
