//! Recording a drift scan of one cluster (`domain::drift::judge`): the suspect verdict,
//! orphans and drifted VMs, each audited when it changes. VMs found missing are marked by
//! the same path the watchers use (`provisioning::record_observation`).

use super::AppError;
use super::cluster_probe::PROBE_ACTOR;
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::catalog::ScanState;
use crate::domain::drift::Verdict;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// Records `verdict` for a live cluster named `cluster` (except the missing VMs); false
/// when the cluster is gone.
pub async fn record_scan(
    pool: &PgPool,
    cluster_id: Uuid,
    cluster: &str,
    verdict: &Verdict,
) -> Result<bool, AppError> {
    let mut tx = pool.begin().await?;
    let Some(old) = db::catalog::lock_scan_state(&mut tx, cluster_id).await? else {
        return Ok(false);
    };
    let new = ScanState {
        scan_suspect: verdict.suspect.clone(),
        orphan_count: verdict.orphans.len() as i32,
        drifted_count: verdict.drifted.len() as i32,
        last_scan_at: None,
    };
    db::catalog::record_scan(&mut tx, cluster_id, &new).await?;
    let cluster_entry = |action: &str, details| {
        AuditEntry::new(action, PROBE_ACTOR, "cluster", cluster_id, cluster).details(details)
    };
    let mut audit = Vec::new();
    if old.scan_suspect != new.scan_suspect {
        let details = json!({"suspect": new.scan_suspect.is_some(), "why": new.scan_suspect});
        audit.push(cluster_entry("cluster.suspect", details));
    }
    if db::catalog::replace_orphans(&mut tx, cluster_id, &verdict.orphans).await? {
        let details = json!({"orphans": verdict.orphans});
        audit.push(cluster_entry("cluster.orphans", details));
    }
    let drifted: Vec<String> = verdict
        .drifted
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    db::vms::clear_drift_except(&mut tx, cluster_id, &drifted).await?;
    for (name, managers) in &verdict.drifted {
        if let Some(vm_id) = db::vms::set_drifted_by(&mut tx, cluster_id, name, managers).await? {
            audit.push(
                AuditEntry::new("vm.drift", PROBE_ACTOR, "vm", vm_id, name)
                    .parent("cluster", cluster_id)
                    .details(json!({"fieldManagers": managers})),
            );
        }
    }
    db::audit::append_all(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(true)
}
