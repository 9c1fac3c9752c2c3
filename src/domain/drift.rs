//! What a comparison of a cluster's managed VirtualMachines with the VM rows placed on it
//! means (docs/architecture.md#vms): VMs gone behind our back (`Missing`), VMs carrying our
//! label that nobody recorded (orphans), and VMs whose spec another field manager changed
//! (drift), with one safety: when more than half of the VMs a cluster should hold look
//! missing at once, wrong credentials or the wrong cluster behind a kubeconfig are likelier
//! than a mass deletion, so nothing is marked and the cluster is reported as suspect.

use super::vm_state::VmState;
use std::collections::BTreeSet;

/// Reasons of failed VMs that were never applied, so are not expected on the cluster.
const NEVER_APPLIED: [&str; 2] = ["NameConflict", "ProvisioningFailed"];

/// Whether a VM row in `state` says its VirtualMachine exists on its cluster.
pub fn expected_on_cluster(state: VmState, reason: Option<&str>) -> bool {
    match state {
        VmState::Starting
        | VmState::Running
        | VmState::Stopping
        | VmState::Stopped
        | VmState::Migrating => true,
        VmState::Failed => !reason.is_some_and(|r| NEVER_APPLIED.contains(&r)),
        VmState::Creating | VmState::Deleting | VmState::Deleted | VmState::Missing => false,
    }
}

/// More than half of the `expected` VMs look missing at once.
pub fn suspect(expected: usize, missing: usize) -> bool {
    missing > 0 && missing * 2 > expected
}

/// A VM row placed on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedVm {
    pub namespace: String,
    pub name: String,
    pub state: VmState,
    pub reason: Option<String>,
}

/// A VirtualMachine with our managed-by label found on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVm {
    pub namespace: String,
    pub name: String,
    /// Field managers other than ours that own fields of its spec.
    pub foreign_spec_managers: Vec<String>,
}

/// The outcome of one scan of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Rows to mark `Missing` (empty when `suspect`).
    pub missing: Vec<String>,
    /// Why nothing was marked, when too many VMs look missing.
    pub suspect: Option<String>,
    /// `namespace/name` of VMs with our label that no live row records.
    pub orphans: Vec<String>,
    /// Recorded VMs whose spec other managers changed, with those managers.
    pub drifted: Vec<(String, Vec<String>)>,
}

/// Compares what the cluster holds with what PostgreSQL records for it.
pub fn judge(recorded: &[RecordedVm], found: &[FoundVm]) -> Verdict {
    let key = |ns: &str, name: &str| format!("{ns}/{name}");
    let found_keys: BTreeSet<String> = found.iter().map(|f| key(&f.namespace, &f.name)).collect();
    let recorded_keys: BTreeSet<String> = recorded
        .iter()
        .filter(|r| r.state != VmState::Deleted)
        .map(|r| key(&r.namespace, &r.name))
        .collect();
    let expected: Vec<&RecordedVm> = recorded
        .iter()
        .filter(|r| expected_on_cluster(r.state, r.reason.as_deref()))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|r| !found_keys.contains(&key(&r.namespace, &r.name)))
        .map(|r| r.name.clone())
        .collect();
    let (missing, suspect) = if suspect(expected.len(), missing.len()) {
        let why = format!(
            "{} of the {} VMs recorded on this cluster are absent from it: nothing is marked \
             missing; check that the kubeconfig Secret points at this cluster with working \
             credentials",
            missing.len(),
            expected.len()
        );
        (Vec::new(), Some(why))
    } else {
        (missing, None)
    };
    Verdict {
        missing,
        suspect,
        orphans: found_keys.difference(&recorded_keys).cloned().collect(),
        drifted: found
            .iter()
            .filter(|f| {
                !f.foreign_spec_managers.is_empty()
                    && recorded_keys.contains(&key(&f.namespace, &f.name))
            })
            .map(|f| (f.name.clone(), f.foreign_spec_managers.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: VmState) -> RecordedVm {
        RecordedVm {
            namespace: "team-a".into(),
            name: name.into(),
            state,
            reason: None,
        }
    }

    fn vm(name: &str, managers: &[&str]) -> FoundVm {
        FoundVm {
            namespace: "team-a".into(),
            name: name.into(),
            foreign_spec_managers: managers.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn only_applied_live_vms_are_expected() {
        use VmState::*;
        for (state, expected) in [
            (Creating, false),
            (Starting, true),
            (Running, true),
            (Stopping, true),
            (Stopped, true),
            (Migrating, true),
            (Deleting, false),
            (Deleted, false),
            (Failed, true),
            (Missing, false),
        ] {
            assert_eq!(expected_on_cluster(state, None), expected, "{state:?}");
        }
        assert!(!expected_on_cluster(Failed, Some("NameConflict")));
        assert!(!expected_on_cluster(Failed, Some("ProvisioningFailed")));
        assert!(expected_on_cluster(Failed, Some("ErrorUnschedulable")));
    }

    #[test]
    fn one_vm_gone_of_three_is_missing() {
        let recorded = [
            row("a", VmState::Running),
            row("b", VmState::Running),
            row("c", VmState::Stopped),
            row("d", VmState::Creating),
        ];
        let v = judge(&recorded, &[vm("a", &[]), vm("c", &[])]);
        assert_eq!(v.missing, ["b"]);
        assert_eq!(v.suspect, None);
        assert!(v.orphans.is_empty() && v.drifted.is_empty());
    }

    #[test]
    fn more_than_half_gone_marks_nothing_and_says_why() {
        let recorded = [row("a", VmState::Running), row("b", VmState::Running)];
        for found in [vec![], vec![vm("other", &[])]] {
            let v = judge(&recorded, &found);
            assert!(v.missing.is_empty());
            assert!(
                v.suspect.as_deref().unwrap().starts_with("2 of the 2 VMs"),
                "{v:?}"
            );
        }
        // Exactly half is not more than half.
        let v = judge(&recorded, &[vm("a", &[])]);
        assert_eq!((v.missing, v.suspect), (vec!["b".to_string()], None));
        assert!(suspect(1, 1) && !suspect(4, 2) && !suspect(0, 0));
    }

    #[test]
    fn unrecorded_labelled_vms_are_orphans_and_foreign_spec_managers_are_drift() {
        let recorded = [row("a", VmState::Running), row("gone", VmState::Deleted)];
        let v = judge(
            &recorded,
            &[vm("a", &["kubectl-edit"]), vm("x", &[]), vm("gone", &[])],
        );
        assert_eq!(v.orphans, ["team-a/gone", "team-a/x"]);
        assert_eq!(
            v.drifted,
            [("a".to_string(), vec!["kubectl-edit".to_string()])]
        );
        assert!(v.missing.is_empty());
    }
}
