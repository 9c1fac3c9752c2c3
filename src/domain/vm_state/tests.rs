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
        v["status"] = json!({"printableStatus": p, "runStrategy": run_strategy, "conditions": []});
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
            "conditions": [{"type": "LiveMigratable", "status": "True"}],
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
            not_migratable: None,
        }
    );
}

#[test]
fn a_vmi_that_cannot_live_migrate_says_why() {
    let mut vmi = running_vmi();
    vmi["status"]["conditions"] = json!([{"type": "LiveMigratable", "status": "False",
        "reason": "HostDeviceNotLiveMigratable", "message": "VMI uses a PCI host device"}]);
    let o = observe(Some(&vm("Always", Some("Running"))), Some(&vmi)).unwrap();
    assert_eq!(
        o.not_migratable.as_deref(),
        Some("HostDeviceNotLiveMigratable: VMI uses a PCI host device")
    );
    let stopped = observe(Some(&vm("Halted", Some("Stopped"))), None).unwrap();
    assert_eq!(
        stopped.not_migratable, None,
        "nothing runs, nothing to judge"
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
