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

/// Sets `new` in `conditions`, keeping `lastTransitionTime` when the status did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if existing.status == new.status {
            new.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = new;
    } else {
        conditions.push(new);
    }
}

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
    fn transition_time_moves_only_when_status_changes() {
        let mut cs = vec![cond("Accepted", ConditionStatus::True, "t1")];
        set_condition(&mut cs, cond("Accepted", ConditionStatus::True, "t2"));
        assert_eq!(cs[0].last_transition_time, "t1");
        set_condition(&mut cs, cond("Accepted", ConditionStatus::False, "t3"));
        assert_eq!(cs[0].last_transition_time, "t3");
        set_condition(&mut cs, cond("Denied", ConditionStatus::True, "t4"));
        assert_eq!(cs.len(), 2);
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
