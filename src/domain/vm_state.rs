//! VM states (DESIGN §5) and the power state users ask for. How KubeVirt's view of a VM
//! maps onto these states, and what a create ticket's outcome is, live here too.

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
mod tests {
    use super::*;
    use crate::domain::ticket::TicketStatus;
    use serde_json::{Value, json};

    /// A VM as the simulator and KubeVirt render it.
    fn vm(run_strategy: &str, printable: Option<&str>) -> Value {
        let mut v = json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "web-1", "namespace": "team-a"},
            "spec": {"runStrategy": run_strategy, "template": {"spec": {}}},
        });
        if let Some(p) = printable {
            v["status"] =
                json!({"printableStatus": p, "runStrategy": run_strategy, "conditions": []});
        }
        v
    }

    /// A running VMI as the simulator renders it.
    fn running_vmi() -> Value {
        json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "web-1", "namespace": "team-a"},
            "status": {
                "phase": "Running", "nodeName": "node-1",
                "interfaces": [{"name": "default", "ipAddress": "10.244.0.46", "interfaceName": "eth0", "infoSource": "domain, guest-agent"}],
            },
        })
    }

    fn vmi_with_interfaces(interfaces: Value) -> Value {
        json!({"status": {"phase": "Running", "nodeName": "node-1", "interfaces": interfaces}})
    }

    fn state_of(vm: &Value) -> VmState {
        observe(Some(vm), None).unwrap().state
    }

    #[test]
    fn every_state_string_round_trips() {
        for s in VmState::ALL {
            assert_eq!(s.as_str().parse::<VmState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for p in PowerState::ALL {
            assert_eq!(p.as_str().parse::<PowerState>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert!("running".parse::<VmState>().is_err());
        assert!("Paused".parse::<PowerState>().is_err());
    }

    #[test]
    fn power_state_run_strategy_and_reached_state() {
        assert_eq!(PowerState::Running.run_strategy(), "Always");
        assert_eq!(PowerState::Stopped.run_strategy(), "Halted");
        assert_eq!(PowerState::Running.reached_as(), VmState::Running);
        assert_eq!(PowerState::Stopped.reached_as(), VmState::Stopped);
    }

    #[test]
    fn vm_none_is_none() {
        assert_eq!(observe(None, None), None);
        assert_eq!(observe(None, Some(&running_vmi())), None);
    }

    #[test]
    fn every_printable_status_maps() {
        let cases = [
            ("Running", VmState::Running),
            ("Paused", VmState::Running),
            ("Migrating", VmState::Migrating),
            ("Provisioning", VmState::Starting),
            ("Starting", VmState::Starting),
            ("WaitingForVolumeBinding", VmState::Starting),
            ("WaitingForReceiver", VmState::Starting),
            ("Stopping", VmState::Stopping),
            ("Terminating", VmState::Stopping),
            ("Stopped", VmState::Stopped),
        ];
        // Whatever the run strategy: a printable status is what KubeVirt sees now.
        for strategy in ["Always", "Halted", "Manual", "RerunOnFailure", "Once"] {
            for (printable, want) in cases {
                let o = observe(Some(&vm(strategy, Some(printable))), None).unwrap();
                assert_eq!(o.state, want, "{printable} with {strategy}");
                assert_eq!(o.reason, None, "{printable}");
                assert_eq!(o.message, None, "{printable}");
            }
        }
    }

    #[test]
    fn failure_statuses_map_to_failed_with_reason() {
        for printable in [
            "ErrorUnschedulable",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrorPvcNotFound",
            "DataVolumeError",
            "CrashLoopBackOff",
            "ErrorDataVolumeNotFound",
            "ErrorSomethingNew",
            "ErrFuture",
        ] {
            for strategy in ["Always", "Halted"] {
                let o = observe(Some(&vm(strategy, Some(printable))), None).unwrap();
                assert_eq!(o.state, VmState::Failed, "{printable}");
                assert_eq!(o.reason.as_deref(), Some(printable));
                assert_eq!(o.message, None, "no condition, no message");
            }
        }
    }

    #[test]
    fn absent_or_unknown_status_follows_run_strategy() {
        let cases = [
            ("Always", VmState::Starting),
            ("RerunOnFailure", VmState::Starting),
            ("Once", VmState::Starting),
            ("Halted", VmState::Stopped),
            ("Manual", VmState::Stopped),
            ("NotAStrategy", VmState::Stopped),
        ];
        for (strategy, want) in cases {
            // No status at all (just created), an empty status, an empty printableStatus,
            // "Unknown", and a value this version does not know.
            let mut shapes = vec![
                vm(strategy, None),
                vm(strategy, Some("")),
                vm(strategy, Some("Unknown")),
            ];
            shapes.push(vm(strategy, Some("SomeFutureStatus")));
            let mut empty = vm(strategy, None);
            empty["status"] = json!({});
            shapes.push(empty);
            for v in &shapes {
                let o = observe(Some(v), None).unwrap();
                assert_eq!(o.state, want, "{strategy}: {v}");
                assert_eq!((o.reason, o.message), (None, None));
            }
        }
    }

    #[test]
    fn manual_run_strategy_with_a_vmi_is_starting() {
        let v = vm("Manual", None);
        assert_eq!(
            observe(Some(&v), Some(&running_vmi())).unwrap().state,
            VmState::Starting
        );
        assert_eq!(observe(Some(&v), None).unwrap().state, VmState::Stopped);
    }

    #[test]
    fn absent_run_strategy_falls_back_to_deprecated_running() {
        let mut v = vm("Always", None);
        v["spec"].as_object_mut().unwrap().remove("runStrategy");
        assert_eq!(state_of(&v), VmState::Stopped, "neither field: Halted");
        v["spec"]["running"] = json!(true);
        assert_eq!(state_of(&v), VmState::Starting);
        v["spec"]["running"] = json!(false);
        assert_eq!(state_of(&v), VmState::Stopped);
    }

    #[test]
    fn deletion_timestamp_is_deleting() {
        for printable in [
            None,
            Some("Running"),
            Some("Stopped"),
            Some("Stopping"),
            Some("ErrImagePull"),
        ] {
            let mut v = vm("Always", printable);
            v["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
            let o = observe(Some(&v), Some(&running_vmi())).unwrap();
            assert_eq!(o.state, VmState::Deleting, "{printable:?}");
            assert_eq!((o.reason, o.message), (None, None));
            assert_eq!(o.ip.as_deref(), Some("10.244.0.46"));
            assert_eq!(o.node.as_deref(), Some("node-1"));
        }
        let mut v = vm("Always", Some("Running"));
        v["metadata"]["deletionTimestamp"] = Value::Null;
        assert_eq!(state_of(&v), VmState::Running, "null is no deletion");
    }

    #[test]
    fn running_vm_reports_ip_and_node() {
        let o = observe(Some(&vm("Always", Some("Running"))), Some(&running_vmi())).unwrap();
        assert_eq!(
            o,
            Observed {
                state: VmState::Running,
                reason: None,
                message: None,
                ip: Some("10.244.0.46".into()),
                node: Some("node-1".into()),
            }
        );
    }

    #[test]
    fn ip_and_node_reported_whatever_the_state() {
        for printable in [
            "Stopping",
            "Stopped",
            "CrashLoopBackOff",
            "Paused",
            "Unknown",
        ] {
            let o = observe(Some(&vm("Halted", Some(printable))), Some(&running_vmi())).unwrap();
            assert_eq!(o.ip.as_deref(), Some("10.244.0.46"), "{printable}");
            assert_eq!(o.node.as_deref(), Some("node-1"), "{printable}");
        }
    }

    #[test]
    fn no_vmi_means_no_ip_or_node() {
        let o = observe(Some(&vm("Always", Some("Starting"))), None).unwrap();
        assert_eq!((o.ip, o.node), (None, None));
    }

    #[test]
    fn vmi_before_scheduling_has_no_ip_or_node() {
        // The simulator's VMI steps: no status, Pending, Scheduling, Scheduled (node, no IP).
        let v = vm("Always", Some("Starting"));
        for status in [
            Value::Null,
            json!({"phase": "Pending", "conditions": [], "guestOSInfo": {}}),
            json!({"phase": "Scheduling"}),
            json!({"phase": "Scheduling", "nodeName": ""}),
        ] {
            let vmi = json!({"metadata": {"name": "web-1"}, "status": status});
            let o = observe(Some(&v), Some(&vmi)).unwrap();
            assert_eq!((o.ip, o.node), (None, None), "{status}");
        }
        let scheduled = json!({"status": {"phase": "Scheduled", "nodeName": "node-2"}});
        let o = observe(Some(&v), Some(&scheduled)).unwrap();
        assert_eq!((o.ip, o.node.as_deref()), (None, Some("node-2")));
    }

    #[test]
    fn interfaces_without_ip_give_none() {
        for interfaces in [
            json!([]),
            json!([{"name": "default", "interfaceName": "eth0"}]),
            json!([{"name": "default", "ipAddress": ""}, {"name": "storage", "ipAddresses": []}]),
            json!([{"name": "default", "ipAddress": null}]),
            json!("not a list"),
        ] {
            let o = observe(
                Some(&vm("Always", Some("Running"))),
                Some(&vmi_with_interfaces(interfaces.clone())),
            )
            .unwrap();
            assert_eq!(o.ip, None, "{interfaces}");
            assert_eq!(o.node.as_deref(), Some("node-1"));
        }
    }

    #[test]
    fn ip_prefers_default_interface_then_first_with_ip() {
        let v = vm("Always", Some("Running"));
        let ip = |interfaces: Value| {
            observe(Some(&v), Some(&vmi_with_interfaces(interfaces)))
                .unwrap()
                .ip
        };
        assert_eq!(
            ip(json!([
                {"name": "storage", "ipAddress": "192.168.1.5"},
                {"name": "default", "ipAddress": "10.244.0.7"},
            ])),
            Some("10.244.0.7".into()),
            "default wins even when not first"
        );
        assert_eq!(
            ip(json!([
                {"name": "nic0"},
                {"name": "nic1", "ipAddress": "192.168.1.5"},
                {"name": "nic2", "ipAddress": "192.168.2.5"},
            ])),
            Some("192.168.1.5".into()),
            "no default: first interface with an IP"
        );
        assert_eq!(
            ip(json!([
                {"name": "default"},
                {"name": "secondary", "ipAddress": "192.168.1.5"},
            ])),
            Some("192.168.1.5".into()),
            "default without IP: another one"
        );
        assert_eq!(
            ip(json!([{"name": "default", "ipAddresses": ["", "10.244.0.8", "fd00::8"]}])),
            Some("10.244.0.8".into()),
            "ipAddress missing: first of ipAddresses"
        );
        assert_eq!(
            ip(json!([{"interfaceName": "eth0", "ipAddress": "10.0.0.1"}])),
            Some("10.0.0.1".into()),
            "unnamed interface"
        );
    }

    #[test]
    fn failure_message_from_simulated_failure_condition() {
        // The simulator's VM status for a forced failure (annotation or `fail_vm`).
        let mut v = vm("Always", None);
        v["status"] = json!({
            "printableStatus": "ErrImagePull",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "VMINotExists", "message": "VMI does not exist"},
                {"type": "Failure", "status": "True", "reason": "FailedCreate", "message": "simulated failure"},
            ],
        });
        let o = observe(Some(&v), None).unwrap();
        assert_eq!(o.state, VmState::Failed);
        assert_eq!(o.reason.as_deref(), Some("ErrImagePull"));
        assert_eq!(o.message.as_deref(), Some("simulated failure"));
    }

    #[test]
    fn failure_message_from_unschedulable_condition() {
        let mut v = vm("Always", None);
        v["status"] = json!({
            "printableStatus": "ErrorUnschedulable",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "NotReady", "message": "VMI is not ready"},
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available: insufficient resources."},
            ],
        });
        let o = observe(Some(&v), None).unwrap();
        assert_eq!(o.reason.as_deref(), Some("ErrorUnschedulable"));
        assert_eq!(
            o.message.as_deref(),
            Some("0/2 nodes are available: insufficient resources.")
        );
    }

    #[test]
    fn failure_message_from_condition_with_matching_reason() {
        let mut v = vm("Always", None);
        v["status"] = json!({
            "printableStatus": "ErrorPvcNotFound",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "NotReady", "message": "VMI is not ready"},
                {"type": "Synchronized", "status": "False", "reason": "ErrorPvcNotFound", "message": "PVC team-a/disk does not exist"},
            ],
        });
        assert_eq!(
            observe(Some(&v), None).unwrap().message.as_deref(),
            Some("PVC team-a/disk does not exist")
        );
    }

    #[test]
    fn failure_message_falls_back_to_ready_then_vmi() {
        let mut v = vm("Always", None);
        v["status"] = json!({
            "printableStatus": "CrashLoopBackOff",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "", "message": "ignored: true"},
                {"type": "Failure", "status": "True", "message": ""},
                {"type": "Ready", "status": "False", "reason": "NotReady", "message": "VMI is not ready"},
            ],
        });
        assert_eq!(
            observe(Some(&v), None).unwrap().message.as_deref(),
            Some("VMI is not ready")
        );

        v["status"]["conditions"] = json!([]);
        let vmi = json!({"status": {"phase": "Failed", "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodFailed", "message": "guest crashed"},
        ]}});
        let o = observe(Some(&v), Some(&vmi)).unwrap();
        assert_eq!(o.message.as_deref(), Some("guest crashed"));
        assert_eq!((o.ip, o.node), (None, None));
    }

    #[test]
    fn messages_only_for_failed() {
        let mut v = vm("Always", None);
        v["status"] = json!({
            "printableStatus": "Starting",
            "conditions": [{"type": "Ready", "status": "False", "reason": "NotReady", "message": "VMI is not ready"}],
        });
        let o = observe(Some(&v), None).unwrap();
        assert_eq!(
            (o.state, o.reason, o.message),
            (VmState::Starting, None, None)
        );
    }

    /// What one VM alone makes of a create ticket, written out rather than derived.
    fn expected_single(state: VmState, desired: PowerState) -> Option<TicketStatus> {
        use VmState::*;
        match (state, desired) {
            (Running, PowerState::Running) | (Stopped, PowerState::Stopped) => {
                Some(TicketStatus::Succeeded)
            }
            (Failed | Missing | Deleted, _) => Some(TicketStatus::Failed),
            (Creating | Starting | Stopping | Migrating | Deleting, _) => None,
            (Stopped, PowerState::Running) | (Running, PowerState::Stopped) => None,
        }
    }

    #[test]
    fn create_outcome_every_single_vm_combination() {
        for state in VmState::ALL {
            for desired in PowerState::ALL {
                assert_eq!(
                    create_outcome(&[(state, desired)]),
                    expected_single(state, desired),
                    "{state} wanting {desired}"
                );
            }
        }
    }

    #[test]
    fn create_outcome_empty_is_none() {
        assert_eq!(create_outcome(&[]), None);
    }

    #[test]
    fn create_outcome_three_vms() {
        use PowerState as P;
        use VmState as S;
        type Vm = (VmState, PowerState);
        let cases: [(&[Vm], Option<TicketStatus>); 10] = [
            (
                &[
                    (S::Failed, P::Running),
                    (S::Running, P::Running),
                    (S::Running, P::Running),
                ],
                Some(TicketStatus::PartiallySucceeded),
            ),
            (
                &[
                    (S::Failed, P::Running),
                    (S::Failed, P::Running),
                    (S::Failed, P::Running),
                ],
                Some(TicketStatus::Failed),
            ),
            (
                &[
                    (S::Running, P::Running),
                    (S::Running, P::Running),
                    (S::Starting, P::Running),
                ],
                None,
            ),
            (
                &[
                    (S::Running, P::Running),
                    (S::Running, P::Running),
                    (S::Running, P::Running),
                ],
                Some(TicketStatus::Succeeded),
            ),
            (
                &[
                    (S::Running, P::Running),
                    (S::Stopped, P::Stopped),
                    (S::Running, P::Running),
                ],
                Some(TicketStatus::Succeeded),
            ),
            (
                &[
                    (S::Missing, P::Running),
                    (S::Deleted, P::Stopped),
                    (S::Failed, P::Running),
                ],
                Some(TicketStatus::Failed),
            ),
            (
                &[
                    (S::Stopped, P::Stopped),
                    (S::Missing, P::Running),
                    (S::Deleted, P::Running),
                ],
                Some(TicketStatus::PartiallySucceeded),
            ),
            (
                &[
                    (S::Failed, P::Running),
                    (S::Failed, P::Running),
                    (S::Creating, P::Running),
                ],
                None,
            ),
            (
                &[
                    (S::Running, P::Running),
                    (S::Failed, P::Running),
                    (S::Stopped, P::Running),
                ],
                None,
            ),
            (
                &[
                    (S::Running, P::Stopped),
                    (S::Stopped, P::Stopped),
                    (S::Stopped, P::Stopped),
                ],
                None,
            ),
        ];
        for (vms, want) in cases {
            assert_eq!(create_outcome(vms), want, "{vms:?}");
        }
        // Order does not matter.
        let mut vms = [
            (S::Running, P::Running),
            (S::Failed, P::Running),
            (S::Running, P::Running),
        ];
        for _ in 0..vms.len() {
            vms.rotate_left(1);
            assert_eq!(create_outcome(&vms), Some(TicketStatus::PartiallySucceeded));
        }
    }
}
