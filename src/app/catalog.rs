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
use crate::db::catalog::{ClusterFields, InstanceSizeFields};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

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
