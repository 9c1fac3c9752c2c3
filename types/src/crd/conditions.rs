//! Status conditions following the Kubernetes API conventions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// CamelCase condition type, e.g. `Accepted`, `Approved`, `Denied`, `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last status change of this condition.
    pub last_transition_time: String,
}

// `lastTransitionTime` moves only when a condition's status does: `controller::status::
// patch_status` keeps it when it writes status.

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: &str, s: ConditionStatus, time: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: s,
            reason: "R".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: time.into(),
        }
    }

    #[test]
    fn serialises_with_kubernetes_field_names() {
        let json = serde_json::to_value(cond("Ready", ConditionStatus::Unknown, "t")).unwrap();
        assert_eq!(json["type"], "Ready");
        assert_eq!(json["status"], "Unknown");
        assert_eq!(json["lastTransitionTime"], "t");
        assert_eq!(json["observedGeneration"], 1);
    }
}
