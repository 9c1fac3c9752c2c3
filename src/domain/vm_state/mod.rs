//! VM states (docs/architecture.md#vms) and the power state users ask for. How KubeVirt's view of a
//! VM maps onto these states, and what a create ticket's outcome is, live here too.

use super::parse::impl_str_enum;
use serde::{Deserialize, Serialize};

/// The state of a VM as the platform reports it. The variant names are the stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VmState {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Migrating,
    Deleting,
    Deleted,
    Failed,
    /// Gone from its cluster without the platform deleting it.
    Missing,
}

impl VmState {
    pub const ALL: [VmState; 10] = [
        VmState::Creating,
        VmState::Starting,
        VmState::Running,
        VmState::Stopping,
        VmState::Stopped,
        VmState::Migrating,
        VmState::Deleting,
        VmState::Deleted,
        VmState::Failed,
        VmState::Missing,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            VmState::Creating => "Creating",
            VmState::Starting => "Starting",
            VmState::Running => "Running",
            VmState::Stopping => "Stopping",
            VmState::Stopped => "Stopped",
            VmState::Migrating => "Migrating",
            VmState::Deleting => "Deleting",
            VmState::Deleted => "Deleted",
            VmState::Failed => "Failed",
            VmState::Missing => "Missing",
        }
    }
}

impl_str_enum!(VmState, "VM state");

/// The power state users asked for; rendering derives `runStrategy` from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    Running,
    Stopped,
}

impl PowerState {
    pub const ALL: [PowerState; 2] = [PowerState::Running, PowerState::Stopped];

    pub const fn as_str(self) -> &'static str {
        match self {
            PowerState::Running => "Running",
            PowerState::Stopped => "Stopped",
        }
    }

    /// KubeVirt's `spec.runStrategy` for this power state (never the deprecated `running`).
    pub const fn run_strategy(self) -> &'static str {
        match self {
            PowerState::Running => "Always",
            PowerState::Stopped => "Halted",
        }
    }

    /// The VM state that means this power state was reached.
    pub const fn reached_as(self) -> VmState {
        match self {
            PowerState::Running => VmState::Running,
            PowerState::Stopped => VmState::Stopped,
        }
    }
}

impl_str_enum!(PowerState, "power state");

/// What a target cluster shows for one managed VM, read from its VirtualMachine and
/// VirtualMachineInstance objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub state: VmState,
    /// For `Failed`: KubeVirt's `status.printableStatus` (e.g. "ErrImagePull"); else None.
    pub reason: Option<String>,
    /// For `Failed`: the message of the VM (or VMI) condition that explains the failure.
    pub message: Option<String>,
    /// The VMI's IP address (`status.interfaces[].ipAddress`), whatever the state.
    pub ip: Option<String>,
    /// The node the VMI runs on (`status.nodeName`), whatever the state.
    pub node: Option<String>,
    /// Why the VMI cannot live-migrate (`domain::operation::not_live_migratable`); None
    /// when it can or when no VMI exists.
    pub not_migratable: Option<String>,
}

/// `printableStatus` values (KubeVirt's `VirtualMachinePrintableStatus`) that mean the VM
/// failed; any other value starting with "Err" (which covers "Error…") counts too.
const FAILED_STATUSES: [&str; 7] = [
    "ErrorUnschedulable",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrorPvcNotFound",
    "DataVolumeError",
    "CrashLoopBackOff",
    "ErrorDataVolumeNotFound",
];

/// Maps KubeVirt's objects to the platform's state. `vm` is the VirtualMachine JSON (None
/// when it does not exist), `vmi` the VirtualMachineInstance JSON (None when absent).
/// Returns None when the VM does not exist (the caller decides between Creating and
/// Missing).
///
/// A VM being deleted (`metadata.deletionTimestamp`) is `Deleting`. Otherwise the state
/// comes from `status.printableStatus`; when that is absent or "Unknown" (e.g. a VM just
/// created) it comes from what the VM was asked to do: `Starting` when its run strategy
/// makes it run, else `Stopped`. IP and node are reported whenever the VMI shows them.
pub fn observe(
    vm: Option<&serde_json::Value>,
    vmi: Option<&serde_json::Value>,
) -> Option<Observed> {
    let vm = vm?;
    let printable = non_empty(&vm["status"]["printableStatus"]);
    let mut reason = None;
    let mut message = None;
    let state = if !vm["metadata"]["deletionTimestamp"].is_null() {
        VmState::Deleting
    } else {
        match printable {
            Some("Running" | "Paused") => VmState::Running,
            Some("Migrating") => VmState::Migrating,
            Some(
                "Provisioning" | "Starting" | "WaitingForVolumeBinding" | "WaitingForReceiver",
            ) => VmState::Starting,
            Some("Stopping" | "Terminating") => VmState::Stopping,
            Some("Stopped") => VmState::Stopped,
            Some(s) if FAILED_STATUSES.contains(&s) || s.starts_with("Err") => {
                reason = Some(s.to_owned());
                message =
                    failure_message(vm, s).or_else(|| vmi.and_then(|i| failure_message(i, s)));
                VmState::Failed
            }
            // Absent, "Unknown", or a value this version does not know.
            _ if asked_to_run(vm, vmi) => VmState::Starting,
            _ => VmState::Stopped,
        }
    };
    let vmi_status = vmi.map(|i| &i["status"]);
    Some(Observed {
        state,
        reason,
        message,
        ip: vmi_status.and_then(ip_of),
        node: vmi_status
            .and_then(|s| non_empty(&s["nodeName"]))
            .map(str::to_owned),
        not_migratable: vmi.and_then(super::operation::not_live_migratable),
    })
}

/// A JSON string that is present and not empty.
fn non_empty(v: &serde_json::Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// Whether the VM's run strategy makes KubeVirt run it: `spec.runStrategy`, or the
/// deprecated `spec.running` when there is none. `Manual` runs only once started, which
/// shows as an existing VMI.
fn asked_to_run(vm: &serde_json::Value, vmi: Option<&serde_json::Value>) -> bool {
    match non_empty(&vm["spec"]["runStrategy"]) {
        Some("Always" | "RerunOnFailure" | "Once") => true,
        Some("Manual") => vmi.is_some(),
        Some(_) => false,
        None => vm["spec"]["running"].as_bool() == Some(true),
    }
}

/// The message of the condition of `obj` (a VM or VMI) that best explains the failure
/// `printable`: a true `Failure` condition, then a false condition whose reason is the
/// printable status, then a false `PodScheduled`, `Synchronized` or `Ready` condition.
fn failure_message(obj: &serde_json::Value, printable: &str) -> Option<String> {
    let conditions = obj["status"]["conditions"].as_array()?;
    let with_message = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        conditions
            .iter()
            .filter(|c| pred(c))
            .find_map(|c| non_empty(&c["message"]))
    };
    let is = |c: &serde_json::Value, type_: &str, status: &str| {
        c["type"] == type_ && c["status"] == status
    };
    with_message(&|c| is(c, "Failure", "True"))
        .or_else(|| with_message(&|c| c["status"] == "False" && c["reason"] == printable))
        .or_else(|| with_message(&|c| is(c, "PodScheduled", "False")))
        .or_else(|| with_message(&|c| is(c, "Synchronized", "False")))
        .or_else(|| with_message(&|c| is(c, "Ready", "False")))
        .map(str::to_owned)
}

/// The VMI's IP: that of the interface named "default" when it has one, else of the first
/// interface that has one. `ipAddress` is the first of `ipAddresses`, which is read when
/// `ipAddress` is empty.
fn ip_of(status: &serde_json::Value) -> Option<String> {
    let interfaces = status["interfaces"].as_array()?;
    fn ip(i: &serde_json::Value) -> Option<&str> {
        non_empty(&i["ipAddress"]).or_else(|| {
            i["ipAddresses"]
                .as_array()
                .and_then(|a| a.iter().find_map(non_empty))
        })
    }
    interfaces
        .iter()
        .filter(|i| i["name"] == "default")
        .find_map(ip)
        .or_else(|| interfaces.iter().find_map(ip))
        .map(str::to_owned)
}

/// The outcome of a create ticket from its VMs' states and desired power states:
/// Some(Succeeded) when every VM reached its desired power state; Some(Failed) when every
/// VM is final and none succeeded; Some(PartiallySucceeded) when every VM is final and
/// results are mixed; None while any VM is still on its way (and for no VMs).
///
/// A VM is final when it reached its desired power state (`PowerState::reached_as`), or is
/// `Failed`, `Missing` or `Deleted`.
pub fn create_outcome(
    vms: &[(VmState, PowerState)],
) -> Option<crate::domain::ticket::TicketStatus> {
    use crate::domain::ticket::TicketStatus;
    if vms.is_empty() {
        return None;
    }
    let mut succeeded = 0;
    for &(state, desired) in vms {
        if state == desired.reached_as() {
            succeeded += 1;
        } else if !matches!(state, VmState::Failed | VmState::Missing | VmState::Deleted) {
            return None;
        }
    }
    Some(if succeeded == vms.len() {
        TicketStatus::Succeeded
    } else if succeeded == 0 {
        TicketStatus::Failed
    } else {
        TicketStatus::PartiallySucceeded
    })
}

#[cfg(test)]
mod tests;
