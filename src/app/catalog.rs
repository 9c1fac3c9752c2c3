//! Mirrors the admin kinds (VmNamespace, Cluster, InstanceSize, VmTemplate) into PostgreSQL.
//! Each call converges the row to the object and audits only real changes, so a repeated
//! event writes nothing. Environments never move across the test/prod boundary.

use super::AppError;
use crate::crd::cluster::ClusterSpec;
use crate::crd::instance_size::InstanceSizeSpec;
use crate::crd::vm_namespace::VmNamespaceSpec;
use crate::crd::vm_template::VmTemplateSpec;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::catalog::{CatalogTable, ClusterFields, InstanceSizeFields};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Returns true when the row changed.
pub async fn register_namespace(
    pool: &PgPool,
    actor: &str,
    name: &str,
    spec: &VmNamespaceSpec,
    k8s_uid: &str,
) -> Result<bool, AppError> {
    let env = spec.environment.as_str();
    let mut tx = pool.begin().await?;
    let existing = db::services::live_namespace(&mut tx, name).await?;
    if let Some(row) = &existing
        && row.environment != env
    {
        return Err(AppError::Conflict(format!(
            "namespace {name:?} is registered for environment {:?}; its environment cannot change",
            row.environment
        )));
    }
    let Some(row) =
        db::services::upsert_namespace(&mut tx, name, env, &spec.description, k8s_uid).await?
    else {
        return Ok(false);
    };
    let action = if existing.is_some() {
        "namespace.update"
    } else {
        "namespace.register"
    };
    db::audit::append(
        &mut tx,
        &AuditEntry::new(action, actor, "namespace", row.id, name)
            .environment(env)
            .details(json!({"description": spec.description})),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn register_cluster(
    pool: &PgPool,
    actor: &str,
    name: &str,
    spec: &ClusterSpec,
    k8s_uid: &str,
) -> Result<bool, AppError> {
    let env = spec.environment.as_str();
    let mut tx = pool.begin().await?;
    let existing = db::catalog::live_cluster(&mut tx, name).await?;
    if let Some(row) = &existing
        && row.environment != env
    {
        let vms = db::catalog::live_vms_on_cluster(&mut tx, row.id).await?;
        if vms > 0 {
            return Err(AppError::Conflict(format!(
                "cluster {name:?} holds {vms} VM(s) in {:?}; its environment cannot change until they are gone",
                row.environment
            )));
        }
    }
    let fields = ClusterFields {
        name,
        environment: env,
        secret_namespace: &spec.kubeconfig_secret_ref.namespace,
        secret_name: &spec.kubeconfig_secret_ref.name,
        secret_key: &spec.kubeconfig_secret_ref.key,
        scheduling_weight: spec.scheduling_weight,
        max_vms: spec.max_vms,
        enabled: spec.enabled,
        default_storage_class: spec.default_storage_class.as_deref(),
        k8s_uid,
    };
    let Some(row) = db::catalog::upsert_cluster(&mut tx, &fields).await? else {
        return Ok(false);
    };
    let action = if existing.is_some() {
        "cluster.update"
    } else {
        "cluster.register"
    };
    db::audit::append(
        &mut tx,
        &AuditEntry::new(action, actor, "cluster", row.id, name).environment(env).details(json!({
            "secret": format!("{}/{}", spec.kubeconfig_secret_ref.namespace, spec.kubeconfig_secret_ref.name),
            "schedulingWeight": spec.scheduling_weight, "enabled": spec.enabled,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn register_instance_size(
    pool: &PgPool,
    actor: &str,
    name: &str,
    spec: &InstanceSizeSpec,
    k8s_uid: &str,
) -> Result<bool, AppError> {
    let gpus = serde_json::to_value(&spec.gpus).unwrap_or(Value::Null);
    let overrides = spec.spec_overrides.clone().unwrap_or_else(|| json!({}));
    let fields = InstanceSizeFields {
        name,
        cpu_cores: spec.cpu.cores,
        memory_mib: spec.memory.mib,
        cpu_overcommit: spec.cpu.overcommit,
        memory_overcommit: spec.memory.overcommit,
        dedicated_cpu: spec.cpu.dedicated,
        hugepages_size: spec.hugepages.as_ref().map(|h| h.page_size.as_str()),
        gpus: &gpus,
        disk_min_gib: spec.disk.min_gib,
        disk_max_gib: spec.disk.max_gib,
        spec_overrides: &overrides,
        k8s_uid,
    };
    let mut tx = pool.begin().await?;
    let Some(id) = db::catalog::upsert_instance_size(&mut tx, &fields).await? else {
        return Ok(false);
    };
    db::audit::append(
        &mut tx,
        &AuditEntry::new("instance_size.update", actor, "instance_size", id, name)
            .details(serde_json::to_value(spec).unwrap_or(Value::Null)),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Records the template's spec as a new version when it differs from the newest one;
/// returns the current version number.
pub async fn register_template(
    pool: &PgPool,
    actor: &str,
    name: &str,
    spec: &VmTemplateSpec,
    k8s_uid: &str,
) -> Result<i32, AppError> {
    let spec_json = serde_json::to_value(spec).unwrap_or(Value::Null);
    // serde_json's maps are sorted, so equal specs hash equally.
    let sha = hex::encode(Sha256::digest(spec_json.to_string().as_bytes()));
    let mut tx = pool.begin().await?;
    let template_id = db::catalog::ensure_template(&mut tx, name, k8s_uid).await?;
    let latest = db::catalog::latest_template_version(&mut tx, template_id).await?;
    if let Some((version, latest_sha)) = &latest
        && *latest_sha == sha
    {
        tx.commit().await?;
        return Ok(*version);
    }
    let version = latest.map(|(v, _)| v + 1).unwrap_or(1);
    let version_id = db::catalog::insert_template_version(
        &mut tx,
        template_id,
        version,
        &spec_json,
        &sha,
        actor,
    )
    .await?;
    db::audit::append(
        &mut tx,
        &AuditEntry::new("template.version", actor, "template", template_id, name)
            .details(json!({"version": version, "version_id": version_id, "spec_sha256": sha})),
    )
    .await?;
    tx.commit().await?;
    Ok(version)
}

/// The catalog kinds whose deletion is mirrored (soft delete) and guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Cluster,
    VmNamespace,
    InstanceSize,
    VmTemplate,
}

impl CatalogKind {
    /// The Kubernetes kind's name.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "Cluster" => Self::Cluster,
            "VmNamespace" => Self::VmNamespace,
            "InstanceSize" => Self::InstanceSize,
            "VmTemplate" => Self::VmTemplate,
            _ => return None,
        })
    }

    /// The audit row's object kind and action prefix.
    fn audit_kind(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::VmNamespace => "namespace",
            Self::InstanceSize => "instance_size",
            Self::VmTemplate => "template",
        }
    }
}

/// Refuses deleting a catalog object still in use, naming how much uses it: a Cluster or
/// VmNamespace with live VMs, an InstanceSize or VmTemplate named by a pending ticket. The
/// admission webhook's early answer; `remove` checks again under the row lock.
pub async fn check_removal(
    conn: &mut PgConnection,
    kind: CatalogKind,
    name: &str,
) -> Result<(), AppError> {
    let id = match kind {
        CatalogKind::Cluster => db::catalog::live_cluster(conn, name).await?.map(|c| c.id),
        CatalogKind::VmNamespace => db::services::live_namespace(conn, name)
            .await?
            .map(|n| n.id),
        CatalogKind::InstanceSize | CatalogKind::VmTemplate => None,
    };
    in_use(conn, kind, name, id).await
}

/// The refusal when something uses the object; `id` is the Cluster's or VmNamespace's row.
async fn in_use(
    conn: &mut PgConnection,
    kind: CatalogKind,
    name: &str,
    id: Option<Uuid>,
) -> Result<(), AppError> {
    let (users, what) = match (kind, id) {
        (CatalogKind::Cluster, Some(id)) => {
            (db::catalog::cluster_live_vms(conn, id).await?, "live VMs")
        }
        (CatalogKind::VmNamespace, Some(id)) => {
            (db::catalog::namespace_live_vms(conn, id).await?, "live VMs")
        }
        (CatalogKind::InstanceSize, _) => (
            db::catalog::pending_tickets_naming(conn, "instanceSize", name).await?,
            "pending tickets naming it",
        ),
        (CatalogKind::VmTemplate, _) => (
            db::catalog::pending_tickets_naming(conn, "template", name).await?,
            "pending tickets naming it",
        ),
        (CatalogKind::Cluster | CatalogKind::VmNamespace, None) => return Ok(()),
    };
    if users == 0 {
        return Ok(());
    }
    let hint = if kind == CatalogKind::Cluster {
        "; set spec.enabled: false to stop new placements and keep its VMs managed"
    } else {
        ""
    };
    Err(AppError::Conflict(format!(
        "{kind:?} {name:?} is in use: {users} {what}{hint}"
    )))
}

/// Mirrors the deletion of a catalog object as a soft delete, unless it is in use. The
/// UPDATE locks the row first (an approval placing VMs locks it too), and usage is counted
/// after it in a statement of its own, so a concurrent approval cannot slip a VM in. A row
/// already gone is fine.
pub async fn remove(
    pool: &PgPool,
    actor: &str,
    kind: CatalogKind,
    name: &str,
) -> Result<(), AppError> {
    let mut tx = pool.begin().await?;
    let table = match kind {
        CatalogKind::Cluster => CatalogTable::Clusters,
        CatalogKind::VmNamespace => CatalogTable::Namespaces,
        CatalogKind::InstanceSize => CatalogTable::InstanceSizes,
        CatalogKind::VmTemplate => CatalogTable::Templates,
    };
    let id = db::catalog::soft_delete(&mut tx, table, name).await?;
    let Some(id) = id else {
        return Ok(());
    };
    in_use(&mut tx, kind, name, Some(id)).await?;
    let action = format!("{}.delete", kind.audit_kind());
    db::audit::append(
        &mut tx,
        &AuditEntry::new(&action, actor, kind.audit_kind(), id, name),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
