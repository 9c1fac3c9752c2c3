//! Exports the audit chain's head outside PostgreSQL (docs/architecture.md#audit): a log line
//! `audit anchor` and the ConfigMap [`CONFIG_MAP`] with the row count and newest hash, each
//! time the head moved. `shepherd audit verify --anchor ROWS:HASH` then catches a database
//! owner who rewrote the whole chain with recomputed hashes. An idle system writes nothing.

use super::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The ConfigMap, in the Lease's namespace.
pub const CONFIG_MAP: &str = "kubevirt-shepherd-audit-anchor";
const FIELD_MANAGER: &str = "kubevirt-shepherd-audit-anchor";

/// Where and how often the anchor is exported.
#[derive(Debug, Clone)]
pub struct AnchorExport {
    pub namespace: String,
    pub interval: Duration,
}

/// Exports the head whenever it moved, every `export.interval`, until `stop`.
pub async fn run(ctx: Arc<Context>, export: AnchorExport, stop: CancellationToken) {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &export.namespace);
    let mut exported = match api.get_opt(CONFIG_MAP).await {
        Ok(found) => found
            .and_then(|cm| cm.data)
            .and_then(|mut data| data.remove("anchor")),
        Err(err) => {
            tracing::warn!(error = %err, "audit anchor: cannot read the ConfigMap");
            None
        }
    };
    loop {
        match crate::app::audit::anchor(&ctx.pool).await {
            Ok(anchor) if exported.as_deref() != Some(anchor.to_string().as_str()) => {
                let text = anchor.to_string();
                tracing::info!(anchor = %text, rows = anchor.rows, hash = %anchor.hash, "audit anchor");
                let config_map = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CONFIG_MAP, "namespace": export.namespace},
                    "data": {
                        "anchor": text,
                        "rows": anchor.rows.to_string(),
                        "hash": anchor.hash,
                        "exportedAt": chrono::Utc::now().to_rfc3339(),
                    },
                });
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match api
                    .patch(CONFIG_MAP, &params, &Patch::Apply(config_map))
                    .await
                {
                    Ok(_) => exported = Some(text),
                    Err(err) => {
                        tracing::warn!(error = %err, "audit anchor: cannot write the ConfigMap")
                    }
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "audit anchor: cannot read the chain head"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(export.interval) => {}
        }
    }
}
