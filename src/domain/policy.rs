//! Which operations need approval (docs/architecture.md#tickets-and-approval). The policy is data
//! in PostgreSQL; this module holds the seeded defaults and the decision over whatever rules are
//! stored.

use serde::{Deserialize, Serialize};

use super::environment::Environment;
use super::ticket::Operation;

/// One row of the approval policy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRule {
    pub operation: Operation,
    pub environment: Environment,
    pub requires_approval: bool,
}

/// The seeded default for one (operation, environment).
pub const fn default_requires_approval(operation: Operation, environment: Environment) -> bool {
    match operation {
        // Creating and destroying VMs, and writing disks from a snapshot or a clone,
        // change what exists: always reviewed.
        Operation::Create | Operation::Delete | Operation::Restore | Operation::Clone => true,
        // Power and placement changes only matter enough to review in prod.
        Operation::Start | Operation::Stop | Operation::Restart | Operation::Migrate => {
            matches!(environment, Environment::Prod)
        }
        // A snapshot is read-only for the VM.
        Operation::Snapshot => false,
    }
}

/// One rule for every (operation, environment), in `Operation::ALL` x `Environment::ALL`
/// order.
pub fn default_policies() -> Vec<PolicyRule> {
    Operation::ALL
        .iter()
        .flat_map(|&operation| {
            Environment::ALL.iter().map(move |&environment| PolicyRule {
                operation,
                environment,
                requires_approval: default_requires_approval(operation, environment),
            })
        })
        .collect()
}

/// Whether `op` in `env` needs an approver. Fails safe: with no matching rule, or with
/// contradicting duplicates, approval is required.
pub fn requires_approval(rules: &[PolicyRule], op: Operation, env: Environment) -> bool {
    let mut matching = rules
        .iter()
        .filter(|r| r.operation == op && r.environment == env)
        .peekable();
    matching.peek().is_none() || matching.any(|r| r.requires_approval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Environment::{Prod, Test};
    use Operation::*;

    /// (operation, test, prod), written out from docs/architecture.md#tickets-and-approval.
    const EXPECTED: [(Operation, bool, bool); 9] = [
        (Create, true, true),
        (Delete, true, true),
        (Start, false, true),
        (Stop, false, true),
        (Restart, false, true),
        (Migrate, false, true),
        (Snapshot, false, false),
        (Restore, true, true),
        (Clone, true, true),
    ];

    #[test]
    fn defaults_for_every_operation_and_environment() {
        let rules = default_policies();
        assert_eq!(rules.len(), Operation::ALL.len() * Environment::ALL.len());
        for (op, test, prod) in EXPECTED {
            assert_eq!(requires_approval(&rules, op, Test), test, "{op} in test");
            assert_eq!(requires_approval(&rules, op, Prod), prod, "{op} in prod");
            assert_eq!(default_requires_approval(op, Test), test, "{op} in test");
            assert_eq!(default_requires_approval(op, Prod), prod, "{op} in prod");
        }
    }

    #[test]
    fn defaults_have_exactly_one_rule_per_pair() {
        let rules = default_policies();
        for op in Operation::ALL {
            for env in Environment::ALL {
                let n = rules
                    .iter()
                    .filter(|r| r.operation == op && r.environment == env)
                    .count();
                assert_eq!(n, 1, "{op} {env}");
            }
        }
    }

    #[test]
    fn missing_rule_fails_safe() {
        for op in Operation::ALL {
            for env in Environment::ALL {
                assert!(requires_approval(&[], op, env), "{op} {env}");
            }
        }
        // A rule for another pair does not count.
        let only_test = [PolicyRule {
            operation: Snapshot,
            environment: Test,
            requires_approval: false,
        }];
        assert!(!requires_approval(&only_test, Snapshot, Test));
        assert!(requires_approval(&only_test, Snapshot, Prod));
        assert!(requires_approval(&only_test, Start, Test));
    }

    #[test]
    fn stored_rules_override_defaults() {
        let rules = [
            PolicyRule {
                operation: Create,
                environment: Test,
                requires_approval: false,
            },
            PolicyRule {
                operation: Snapshot,
                environment: Prod,
                requires_approval: true,
            },
        ];
        assert!(!requires_approval(&rules, Create, Test));
        assert!(requires_approval(&rules, Snapshot, Prod));
    }

    #[test]
    fn contradicting_duplicates_require_approval() {
        let rules = [
            PolicyRule {
                operation: Stop,
                environment: Test,
                requires_approval: false,
            },
            PolicyRule {
                operation: Stop,
                environment: Test,
                requires_approval: true,
            },
        ];
        assert!(requires_approval(&rules, Stop, Test));
        assert!(requires_approval(&[rules[1], rules[0]], Stop, Test));
        assert!(!requires_approval(&[rules[0], rules[0]], Stop, Test));
    }
}
