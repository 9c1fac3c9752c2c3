//! The `status.phase` of each kind, for humans and printer columns: a closed set per kind, so
//! the CRD schema lists it and a typo cannot reach the API server.

use crate::domain::ticket::TicketStatus;
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

impl From<TicketStatus> for RequestPhase {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::PendingApproval => RequestPhase::PendingApproval,
            TicketStatus::Approved => RequestPhase::Approved,
            TicketStatus::Rejected => RequestPhase::Rejected,
            TicketStatus::Cancelled => RequestPhase::Cancelled,
            TicketStatus::Executing => RequestPhase::Executing,
            TicketStatus::Succeeded => RequestPhase::Succeeded,
            TicketStatus::PartiallySucceeded => RequestPhase::PartiallySucceeded,
            TicketStatus::Failed => RequestPhase::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_ticket_status_is_a_request_phase_with_the_same_spelling() {
        for status in TicketStatus::ALL {
            let phase = serde_json::to_value(RequestPhase::from(status)).unwrap();
            assert_eq!(phase, status.as_str());
        }
    }
}
