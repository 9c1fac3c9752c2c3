//! Day-2 operations (docs/architecture.md#day-2-operations): which operation a VM accepts in
//! which state, the names of the KubeVirt objects an operation creates, and how the progress
//! of those objects reads. Pure: the worker fetches the objects, these rules judge them.

use super::ticket::Operation;
use super::vm_state::{PowerState, VmState};
use serde_json::Value;
use uuid::Uuid;

/// Why a VM does not accept an operation now. The message names the state and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("VMs are created with a VmRequest, not a VmOperation")]
    CreateIsARequest,
    #[error("VM {vm} is {state} and accepts no operation")]
    Gone { vm: String, state: VmState },
    #[error("VM {vm} is {state}; {operation} needs it {needed}")]
    WrongState {
        vm: String,
        state: VmState,
        operation: Operation,
        needed: &'static str,
    },
    #[error("VM {vm} cannot live-migrate: {why}")]
    NotLiveMigratable { vm: String, why: String },
}

/// The state a VM must be in for `op`, as words for the refusal, or None when any live
/// state will do. Stopping an already stopped VM (or starting a running one) is accepted:
/// the operation then succeeds at once.
const fn needed_state(op: Operation) -> Option<(&'static [VmState], &'static str)> {
    match op {
        Operation::Restore => Some((&[VmState::Stopped], "Stopped (stop it first)")),
        Operation::Migrate => Some((&[VmState::Running], "Running")),
        Operation::Restart => Some((&[VmState::Running], "Running")),
        _ => None,
    }
}

/// Whether VM `vm` in `state` accepts `op` now. `not_migratable` is why the watcher last saw
/// its VMI unable to live-migrate (None when it could).
pub fn check_admissible(
    vm: &str,
    state: VmState,
    not_migratable: Option<&str>,
    op: Operation,
) -> Result<(), Refusal> {
    if op == Operation::Create {
        return Err(Refusal::CreateIsARequest);
    }
    if matches!(state, VmState::Deleting | VmState::Deleted) {
        return Err(Refusal::Gone {
            vm: vm.into(),
            state,
        });
    }
    if let Some((states, needed)) = needed_state(op)
        && !states.contains(&state)
    {
        return Err(Refusal::WrongState {
            vm: vm.into(),
            state,
            operation: op,
            needed,
        });
    }
    if op == Operation::Migrate
        && let Some(why) = not_migratable
    {
        return Err(Refusal::NotLiveMigratable {
            vm: vm.into(),
            why: why.into(),
        });
    }
    Ok(())
}

/// The power state a VM is asked for after `op`, when `op` changes it.
pub const fn power_after(op: Operation) -> Option<PowerState> {
    match op {
        Operation::Start | Operation::Restart => Some(PowerState::Running),
        Operation::Stop => Some(PowerState::Stopped),
        _ => None,
    }
}

/// The name of the KubeVirt object (migration, snapshot, restore, clone) an operation's
/// ticket creates: fixed per ticket, so a retried attempt finds the object of the first
/// one instead of making a second.
pub fn object_name(vm: &str, op: Operation, ticket_id: Uuid) -> String {
    let short = &ticket_id.simple().to_string()[..8];
    format!("{vm}-{}-{short}", op.as_str())
}

/// How far a KubeVirt object an operation created has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Finished; the value is what the result records (e.g. the node a VMI moved to).
    Done(Option<String>),
    /// Still under way; the text says where it stands.
    Pending(String),
    Failed(String),
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The message of condition `type_` of `obj`, when its status is `status`.
fn condition<'a>(obj: &'a Value, type_: &str, status: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == status)
}

fn condition_text(c: &Value) -> String {
    str_at(c, "/message")
        .or_else(|| str_at(c, "/reason"))
        .unwrap_or("no reason given")
        .to_string()
}

/// A `VirtualMachineSnapshot`: done when `status.readyToUse`; failed in phase `Failed`
/// (with `status.error.message`).
pub fn snapshot_progress(snapshot: &Value) -> Progress {
    if snapshot["status"]["readyToUse"] == true {
        return Progress::Done(None);
    }
    match str_at(snapshot, "/status/phase") {
        Some("Failed") => Progress::Failed(
            str_at(snapshot, "/status/error/message")
                .unwrap_or("the snapshot failed")
                .to_string(),
        ),
        phase => Progress::Pending(format!("snapshot {}", phase.unwrap_or("not started"))),
    }
}

/// A `VirtualMachineRestore`: done when `status.complete`; failed when it reports an
/// error. A restore waiting (e.g. for its VM to stop) stays pending with KubeVirt's reason.
pub fn restore_progress(restore: &Value) -> Progress {
    if restore["status"]["complete"] == true {
        return Progress::Done(None);
    }
    if let Some(message) = str_at(restore, "/status/error/message") {
        return Progress::Failed(message.to_string());
    }
    match condition(restore, "Ready", "False") {
        Some(c) => Progress::Pending(format!("restore waiting: {}", condition_text(c))),
        None => Progress::Pending("restore not started".into()),
    }
}

/// A `VirtualMachineInstanceMigration`: done in phase `Succeeded` with the target node;
/// failed in phase `Failed`.
pub fn migration_progress(migration: &Value) -> Progress {
    match str_at(migration, "/status/phase") {
        Some("Succeeded") => Progress::Done(
            str_at(migration, "/status/migrationState/targetNode").map(str::to_string),
        ),
        Some("Failed") => Progress::Failed(
            str_at(migration, "/status/migrationState/failureReason")
                .unwrap_or("the migration failed")
                .to_string(),
        ),
        phase => Progress::Pending(format!("migration {}", phase.unwrap_or("not started"))),
    }
}

/// A `VirtualMachineClone`: done in phase `Succeeded` with the new VM's name; failed in
/// phase `Failed`.
pub fn clone_progress(clone: &Value) -> Progress {
    match str_at(clone, "/status/phase") {
        Some("Succeeded") => {
            Progress::Done(str_at(clone, "/status/targetName").map(str::to_string))
        }
        Some("Failed") => Progress::Failed("the clone failed".into()),
        phase => Progress::Pending(format!("clone {}", phase.unwrap_or("not started"))),
    }
}

/// Why a VMI cannot live-migrate (its `LiveMigratable` condition is not True), or None
/// when it can. A VMI without the condition has not been judged by KubeVirt yet: that
/// counts as not migratable.
pub fn not_live_migratable(vmi: &Value) -> Option<String> {
    if condition(vmi, "LiveMigratable", "True").is_some() {
        return None;
    }
    Some(match condition(vmi, "LiveMigratable", "False") {
        Some(c) => match (str_at(c, "/reason"), str_at(c, "/message")) {
            (Some(reason), Some(message)) => format!("{reason}: {message}"),
            _ => condition_text(c),
        },
        None => "KubeVirt has not reported the VMI LiveMigratable".into(),
    })
}

/// The labels a clone must not copy from its source: every label the platform owns (the
/// clone gets its own). KubeVirt's `labelFilters` syntax: `*` keeps all, `!` drops.
pub fn clone_label_filters(prefix: &str) -> Vec<String> {
    vec!["*".into(), format!("!{prefix}/*")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day_two() -> impl Iterator<Item = Operation> {
        Operation::ALL.into_iter().filter(|op| op.is_day_two())
    }

    #[test]
    fn every_operation_in_every_state_has_one_answer() {
        for op in day_two() {
            for state in VmState::ALL {
                let answer = check_admissible("vm-1", state, None, op);
                let expected_ok = match (op, state) {
                    (_, VmState::Deleting | VmState::Deleted) => false,
                    (Operation::Restore, s) => s == VmState::Stopped,
                    (Operation::Migrate | Operation::Restart, s) => s == VmState::Running,
                    _ => true,
                };
                assert_eq!(
                    answer.is_ok(),
                    expected_ok,
                    "{op:?} in {state:?}: {answer:?}"
                );
            }
        }
    }

    #[test]
    fn refusals_name_the_state_and_the_rule() {
        let gone = check_admissible("vm-1", VmState::Deleted, None, Operation::Stop).unwrap_err();
        assert_eq!(
            gone.to_string(),
            "VM vm-1 is Deleted and accepts no operation"
        );
        let running =
            check_admissible("vm-1", VmState::Running, None, Operation::Restore).unwrap_err();
        assert_eq!(
            running.to_string(),
            "VM vm-1 is Running; restore needs it Stopped (stop it first)"
        );
        let create =
            check_admissible("vm-1", VmState::Running, None, Operation::Create).unwrap_err();
        assert_eq!(create, Refusal::CreateIsARequest);
    }

    #[test]
    fn a_vm_known_not_to_migrate_is_refused_only_for_migrate() {
        let why = Some("HostDeviceNotLiveMigratable: VMI uses a PCI host device");
        let refused = check_admissible("vm-1", VmState::Running, why, Operation::Migrate);
        assert_eq!(
            refused.unwrap_err().to_string(),
            "VM vm-1 cannot live-migrate: HostDeviceNotLiveMigratable: VMI uses a PCI host device"
        );
        for op in day_two().filter(|o| *o != Operation::Migrate) {
            let state = if op == Operation::Restore {
                VmState::Stopped
            } else {
                VmState::Running
            };
            assert!(check_admissible("vm-1", state, why, op).is_ok(), "{op:?}");
        }
    }

    #[test]
    fn power_operations_set_the_desired_power_state_and_others_leave_it() {
        for op in day_two() {
            let expected = match op {
                Operation::Start | Operation::Restart => Some(PowerState::Running),
                Operation::Stop => Some(PowerState::Stopped),
                _ => None,
            };
            assert_eq!(power_after(op), expected, "{op:?}");
        }
    }

    #[test]
    fn object_names_are_fixed_per_ticket_and_distinct_per_operation() {
        let ticket = Uuid::parse_str("0123abcd-0000-4000-8000-000000000000").unwrap();
        assert_eq!(
            object_name("ns-sys-svc-01", Operation::Snapshot, ticket),
            "ns-sys-svc-01-snapshot-0123abcd"
        );
        assert_eq!(
            object_name("ns-sys-svc-01", Operation::Snapshot, ticket),
            object_name("ns-sys-svc-01", Operation::Snapshot, ticket)
        );
        assert_ne!(
            object_name("ns-sys-svc-01", Operation::Migrate, ticket),
            object_name("ns-sys-svc-01", Operation::Clone, ticket)
        );
    }

    #[test]
    fn snapshots_are_done_when_ready_to_use() {
        assert_eq!(
            snapshot_progress(&json!({"status": {"phase": "Succeeded", "readyToUse": true}})),
            Progress::Done(None)
        );
        assert_eq!(
            snapshot_progress(&json!({"status": {"phase": "InProgress", "readyToUse": false}})),
            Progress::Pending("snapshot InProgress".into())
        );
        assert_eq!(
            snapshot_progress(&json!({})),
            Progress::Pending("snapshot not started".into())
        );
        assert_eq!(
            snapshot_progress(
                &json!({"status": {"phase": "Failed", "error": {"message": "VirtualMachine \"x\" does not exist"}}})
            ),
            Progress::Failed("VirtualMachine \"x\" does not exist".into())
        );
    }

    #[test]
    fn restores_are_done_when_complete_and_say_why_they_wait() {
        assert_eq!(
            restore_progress(&json!({"status": {"complete": true}})),
            Progress::Done(None)
        );
        let waiting = json!({"status": {"complete": false, "conditions": [
            {"type": "Ready", "status": "False", "reason": "VM not stopped",
             "message": "restore target VirtualMachine must be stopped"}]}});
        assert_eq!(
            restore_progress(&waiting),
            Progress::Pending(
                "restore waiting: restore target VirtualMachine must be stopped".into()
            )
        );
        assert_eq!(
            restore_progress(&json!({"status": {"error": {"message": "boom"}}})),
            Progress::Failed("boom".into())
        );
        assert_eq!(
            restore_progress(&json!({})),
            Progress::Pending("restore not started".into())
        );
    }

    #[test]
    fn migrations_are_done_on_their_target_node() {
        assert_eq!(
            migration_progress(
                &json!({"status": {"phase": "Succeeded", "migrationState": {"targetNode": "node-2"}}})
            ),
            Progress::Done(Some("node-2".into()))
        );
        assert_eq!(
            migration_progress(&json!({"status": {"phase": "Running"}})),
            Progress::Pending("migration Running".into())
        );
        assert_eq!(
            migration_progress(&json!({"status": {"phase": "Failed"}})),
            Progress::Failed("the migration failed".into())
        );
        assert_eq!(
            migration_progress(
                &json!({"status": {"phase": "Failed", "migrationState": {"failureReason": "target pod unschedulable"}}})
            ),
            Progress::Failed("target pod unschedulable".into())
        );
    }

    #[test]
    fn clones_are_done_with_their_target() {
        assert_eq!(
            clone_progress(&json!({"status": {"phase": "Succeeded", "targetName": "vm-02"}})),
            Progress::Done(Some("vm-02".into()))
        );
        assert_eq!(
            clone_progress(&json!({"status": {"phase": "CreatingTargetVM"}})),
            Progress::Pending("clone CreatingTargetVM".into())
        );
        assert_eq!(
            clone_progress(&json!({"status": {"phase": "Failed"}})),
            Progress::Failed("the clone failed".into())
        );
    }

    #[test]
    fn live_migratable_reads_the_vmi_condition() {
        let vmi = |status: &str| {
            json!({"status": {"conditions": [{"type": "LiveMigratable", "status": status,
                "reason": "HostDeviceNotLiveMigratable", "message": "VMI uses a PCI host device"}]}})
        };
        assert_eq!(not_live_migratable(&vmi("True")), None);
        assert_eq!(
            not_live_migratable(&vmi("False")).as_deref(),
            Some("HostDeviceNotLiveMigratable: VMI uses a PCI host device")
        );
        assert_eq!(
            not_live_migratable(&json!({"status": {}})).as_deref(),
            Some("KubeVirt has not reported the VMI LiveMigratable")
        );
    }

    #[test]
    fn clones_drop_every_platform_label() {
        assert_eq!(
            clone_label_filters("kubevirt-shepherd.io"),
            ["*", "!kubevirt-shepherd.io/*"]
        );
    }
}
