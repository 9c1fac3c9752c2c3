//! Recording what a probe of a target cluster found (`domain::cluster_probe::assess`):
//! health, KubeVirt's version and capabilities. Nothing but the probe time is written when
//! nothing changed; a change of health or of KubeVirt's version is audited.

use super::AppError;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::catalog::ProbeRecord;
use crate::domain::cluster_probe::{Assessment, ClusterHealth};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The actor of the audit rows a probe writes.
pub const PROBE_ACTOR: &str = "system:cluster-probe";

/// What recording a probe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub cluster: String,
    pub health: ClusterHealth,
    /// Health, reason, message, version or capabilities differ from what was recorded.
    pub changed: bool,
}

/// Records `assessment` for a live cluster; None when the cluster is gone.
pub async fn record(
    pool: &PgPool,
    cluster_id: Uuid,
    assessment: &Assessment,
) -> Result<Option<ProbeOutcome>, AppError> {
    let mut tx = pool.begin().await?;
    let Some(old) = db::catalog::lock_probe_state(&mut tx, cluster_id).await? else {
        return Ok(None);
    };
    // An unreachable cluster keeps what it was last seen to be.
    let (version, capabilities) = match &assessment.capabilities {
        Some(c) => (
            assessment.kubevirt_version.clone(),
            serde_json::to_value(c).unwrap_or(Value::Null),
        ),
        None => (old.kubevirt_version.clone(), old.capabilities.clone()),
    };
    let storage_classes: Vec<String> = assessment
        .capabilities
        .as_ref()
        .map(|c| c.storage_classes.clone())
        .unwrap_or_else(|| {
            capabilities["storageClasses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        });
    let health = assessment.health.as_str();
    let changed = old.health != health
        || old.health_reason.as_deref() != Some(assessment.reason)
        || old.health_message.as_deref() != Some(assessment.message.as_str())
        || old.kubevirt_version != version
        || old.capabilities != capabilities;
    let record = ProbeRecord {
        health,
        reason: assessment.reason,
        message: &assessment.message,
        kubevirt_version: version.as_deref(),
        capabilities: &capabilities,
        storage_classes: &storage_classes,
    };
    db::catalog::record_probe(&mut tx, cluster_id, &record, changed).await?;
    let audit = |action: &str, details: Value| {
        AuditEntry::new(action, PROBE_ACTOR, "cluster", cluster_id, &old.name)
            .environment(&old.environment)
            .details(details)
    };
    if old.health != health || old.health_reason.as_deref() != Some(assessment.reason) {
        let details = json!({"from": old.health, "to": health, "reason": assessment.reason,
                             "message": assessment.message});
        db::audit::append(&mut tx, &audit("cluster.health", details)).await?;
    }
    if old.kubevirt_version != version {
        let details = json!({"from": old.kubevirt_version, "to": version});
        db::audit::append(&mut tx, &audit("cluster.kubevirt_version", details)).await?;
    }
    tx.commit().await?;
    Ok(Some(ProbeOutcome {
        cluster: old.name,
        health: assessment.health,
        changed,
    }))
}
