//! The `status.phase` of each kind, for humans and printer columns: a closed set per kind, so
//! the CRD schema lists it and a typo cannot reach the API server.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// System and Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RegistrationPhase {
    /// Waiting for something it names (e.g. its System) to be registered.
    Pending,
    Active,
    Denied,
    /// Deletion waits until its children are gone.
    DeletionBlocked,
}

/// VmNamespace, Cluster, InstanceSize and VmTemplate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CatalogPhase {
    /// Mirrored into the platform catalog.
    Ready,
    Error,
    /// Deletion waits until nothing uses it (live VMs, pending tickets).
    DeletionBlocked,
}

/// Approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalPhase {
    /// Its target or the target's ticket does not exist yet.
    Pending,
    Applied,
    Refused,
}

/// VmRequest and VmOperation: `Pending` or `Denied` before a ticket exists, then the
/// ticket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestPhase {
    Pending,
    Denied,
    PendingApproval,
    Approved,
    Rejected,
    Cancelled,
    Executing,
    Succeeded,
    PartiallySucceeded,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_blocked_is_spelled_alike_for_registrations_and_catalog_objects() {
        assert_eq!(
            serde_json::to_value(RegistrationPhase::DeletionBlocked).unwrap(),
            serde_json::to_value(CatalogPhase::DeletionBlocked).unwrap()
        );
    }

    #[test]
    fn denied_and_pending_are_spelled_alike_for_registrations_and_requests() {
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap();
        assert_eq!(
            json(serde_json::to_value(RegistrationPhase::Denied)),
            json(serde_json::to_value(RequestPhase::Denied))
        );
        assert_eq!(
            json(serde_json::to_value(RegistrationPhase::Pending)),
            json(serde_json::to_value(RequestPhase::Pending))
        );
    }
}
