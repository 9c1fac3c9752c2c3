//! Ticket states and their transitions (docs/architecture.md#tickets-and-approval), and the
//! operations a ticket is for (the `Operation` enum itself is shared vocabulary, in
//! `shepherd_types::vocabulary`).

use serde::{Deserialize, Serialize};

use super::parse::impl_str_enum;
pub use shepherd_types::vocabulary::Operation;

/// State of an approval ticket. The variant names are the stored and displayed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TicketStatus {
    PendingApproval,
    Approved,
    Rejected,
    Cancelled,
    Executing,
    Succeeded,
    Failed,
    PartiallySucceeded,
}

/// Every legal transition; anything not listed is illegal.
///
/// `Approved -> Failed` covers a job that fails before it starts executing (e.g. the
/// cluster is gone); `PartiallySucceeded` is for a request of several VMs.
pub const TICKET_TRANSITIONS: &[(TicketStatus, TicketStatus)] = {
    use TicketStatus::*;
    &[
        (PendingApproval, Approved),
        (PendingApproval, Rejected),
        (PendingApproval, Cancelled),
        (Approved, Executing),
        (Approved, Failed),
        (Executing, Succeeded),
        (Executing, Failed),
        (Executing, PartiallySucceeded),
    ]
};

impl TicketStatus {
    pub const ALL: [TicketStatus; 8] = [
        TicketStatus::PendingApproval,
        TicketStatus::Approved,
        TicketStatus::Rejected,
        TicketStatus::Cancelled,
        TicketStatus::Executing,
        TicketStatus::Succeeded,
        TicketStatus::Failed,
        TicketStatus::PartiallySucceeded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TicketStatus::PendingApproval => "PendingApproval",
            TicketStatus::Approved => "Approved",
            TicketStatus::Rejected => "Rejected",
            TicketStatus::Cancelled => "Cancelled",
            TicketStatus::Executing => "Executing",
            TicketStatus::Succeeded => "Succeeded",
            TicketStatus::Failed => "Failed",
            TicketStatus::PartiallySucceeded => "PartiallySucceeded",
        }
    }

    /// Terminal states accept no transition.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TicketStatus::Rejected
                | TicketStatus::Cancelled
                | TicketStatus::Succeeded
                | TicketStatus::Failed
                | TicketStatus::PartiallySucceeded
        )
    }

    /// The states this one may move to, in table order.
    pub fn next_states(self) -> Vec<TicketStatus> {
        TICKET_TRANSITIONS
            .iter()
            .filter(|(from, _)| *from == self)
            .map(|(_, to)| *to)
            .collect()
    }

    pub fn can_transition_to(self, to: TicketStatus) -> bool {
        TICKET_TRANSITIONS.contains(&(self, to))
    }
}

impl_str_enum!(TicketStatus, "ticket status");

fn allowed_list(from: TicketStatus) -> String {
    from.next_states()
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("illegal ticket transition {from} -> {to}: ticket is terminal")]
    Terminal {
        from: TicketStatus,
        to: TicketStatus,
    },
    #[error(
        "illegal ticket transition {from} -> {to}: {from} may only move to {}",
        allowed_list(*.from)
    )]
    NotAllowed {
        from: TicketStatus,
        to: TicketStatus,
    },
}

impl IllegalTransition {
    pub fn from(&self) -> TicketStatus {
        match self {
            IllegalTransition::Terminal { from, .. }
            | IllegalTransition::NotAllowed { from, .. } => *from,
        }
    }

    pub fn to(&self) -> TicketStatus {
        match self {
            IllegalTransition::Terminal { to, .. } | IllegalTransition::NotAllowed { to, .. } => {
                *to
            }
        }
    }
}

/// Checks one transition against [`TICKET_TRANSITIONS`]. Staying in the same state is
/// not a transition and is refused too, so a repeated decision cannot pass twice.
pub fn check_transition(from: TicketStatus, to: TicketStatus) -> Result<(), IllegalTransition> {
    if from.is_terminal() {
        Err(IllegalTransition::Terminal { from, to })
    } else if from.can_transition_to(to) {
        Ok(())
    } else {
        Err(IllegalTransition::NotAllowed { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::TicketStatus::*;
    use super::*;

    /// The legal transitions, written out independently of `TICKET_TRANSITIONS`.
    const EXPECTED_LEGAL: [(TicketStatus, TicketStatus); 8] = [
        (PendingApproval, Approved),
        (PendingApproval, Rejected),
        (PendingApproval, Cancelled),
        (Approved, Executing),
        (Approved, Failed),
        (Executing, Succeeded),
        (Executing, Failed),
        (Executing, PartiallySucceeded),
    ];

    const TERMINAL: [TicketStatus; 5] =
        [Rejected, Cancelled, Succeeded, Failed, PartiallySucceeded];

    #[test]
    fn every_pair_of_the_matrix_matches_the_table() {
        let mut checked = 0;
        for from in TicketStatus::ALL {
            for to in TicketStatus::ALL {
                let expected = if TERMINAL.contains(&from) {
                    Err(IllegalTransition::Terminal { from, to })
                } else if EXPECTED_LEGAL.contains(&(from, to)) {
                    Ok(())
                } else {
                    Err(IllegalTransition::NotAllowed { from, to })
                };
                assert_eq!(check_transition(from, to), expected, "{from} -> {to}");
                assert_eq!(
                    from.can_transition_to(to),
                    expected.is_ok(),
                    "{from} -> {to}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 64);
        assert_eq!(TICKET_TRANSITIONS, EXPECTED_LEGAL);
    }

    #[test]
    fn terminal_states_are_exactly_the_five_final_ones() {
        for status in TicketStatus::ALL {
            assert_eq!(status.is_terminal(), TERMINAL.contains(&status), "{status}");
            assert_eq!(
                status.is_terminal(),
                status.next_states().is_empty(),
                "{status}"
            );
        }
    }

    #[test]
    fn next_states() {
        assert_eq!(
            PendingApproval.next_states(),
            [Approved, Rejected, Cancelled]
        );
        assert_eq!(Approved.next_states(), [Executing, Failed]);
        assert_eq!(
            Executing.next_states(),
            [Succeeded, Failed, PartiallySucceeded]
        );
    }

    #[test]
    fn errors_name_both_states() {
        let terminal = check_transition(Succeeded, Executing).unwrap_err();
        assert_eq!(
            terminal.to_string(),
            "illegal ticket transition Succeeded -> Executing: ticket is terminal"
        );
        assert_eq!((terminal.from(), terminal.to()), (Succeeded, Executing));
        let skip = check_transition(PendingApproval, Executing).unwrap_err();
        assert_eq!(
            skip.to_string(),
            "illegal ticket transition PendingApproval -> Executing: \
             PendingApproval may only move to Approved | Rejected | Cancelled"
        );
        assert_eq!((skip.from(), skip.to()), (PendingApproval, Executing));
        assert_eq!(
            check_transition(Approved, Cancelled)
                .unwrap_err()
                .to_string(),
            "illegal ticket transition Approved -> Cancelled: Approved may only move to Executing | Failed"
        );
    }

    #[test]
    fn status_string_forms_round_trip() {
        let names = [
            "PendingApproval",
            "Approved",
            "Rejected",
            "Cancelled",
            "Executing",
            "Succeeded",
            "Failed",
            "PartiallySucceeded",
        ];
        assert_eq!(TicketStatus::ALL.len(), names.len());
        for (status, name) in TicketStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(name.parse::<TicketStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(name)
            );
        }
        for bad in ["PENDING_APPROVAL", "approved", "Success", ""] {
            let err = bad.parse::<TicketStatus>().unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("unknown ticket status {bad:?}")),
                "{err}"
            );
        }
    }
}
