use super::*;

fn resources() -> FinalResources {
    FinalResources {
        cpu_request_millis: 2000,
        cpu_limit_millis: 2000,
        memory_request_mib: 4096,
        memory_limit_mib: 4096,
        disk_gib: 20,
    }
}

fn size(overrides: Value) -> Value {
    json!({
        "name": "medium", "cpuCores": 2, "memoryMiB": 4096, "cpuOvercommit": 1.0,
        "memoryOvercommit": 1.0, "dedicatedCpu": false, "hugepages": null, "gpus": [],
        "specOverrides": overrides,
    })
}

fn template(base: Value) -> Value {
    json!({"version": 3, "spec": {
        "image": {"containerDisk": "quay.io/containerdisks/fedora:40"},
        "cloudInit": "#cloud-config\n",
        "baseVm": base,
    }})
}

fn render(template: &Value, size: &Value, resources: &FinalResources) -> Value {
    render_with(template, size, resources, PowerState::Running).unwrap()
}

fn render_with(
    template: &Value,
    size: &Value,
    resources: &FinalResources,
    power: PowerState,
) -> Result<Value, RenderError> {
    render_vm(&RenderInput {
        vm_name: "dev-shop-web-01",
        namespace: "dev",
        system: "shop",
        service: "web",
        instance_index: 1,
        ticket_id: uuid::Uuid::nil(),
        created_by: "alice@example.com",
        template,
        size,
        resources,
        storage_class: None,
        power,
    })
}

fn at<'v>(vm: &'v Value, pointer: &str) -> &'v Value {
    vm.pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} missing in {vm:#}"))
}

const DOMAIN_PTR: &str = "/spec/template/spec/domain";

#[test]
fn size_overrides_beat_the_template() {
    let t = template(json!({"template": {"spec": {
        "domain": {"machine": {"type": "q35"}, "firmware": {"serial": "a"}},
        "terminationGracePeriodSeconds": 30,
    }}}));
    let s = size(json!({"template": {"spec": {
        "domain": {"machine": {"type": "pc-q35-rhel9"}},
        "terminationGracePeriodSeconds": null,
    }}}));
    let vm = render(&t, &s, &resources());
    assert_eq!(
        at(&vm, &format!("{DOMAIN_PTR}/machine/type")),
        "pc-q35-rhel9"
    );
    // Deep merge keeps what the override does not mention; null removes.
    assert_eq!(at(&vm, &format!("{DOMAIN_PTR}/firmware/serial")), "a");
    assert!(
        vm.pointer("/spec/template/spec/terminationGracePeriodSeconds")
            .is_none()
    );
}

#[test]
fn final_resources_beat_size_overrides() {
    let s = size(json!({"template": {"spec": {"domain": {
        "resources": {"requests": {"cpu": "16", "memory": "64Gi"}, "limits": {"cpu": "32"}},
        "memory": {"guest": "1Gi"},
        "cpu": {"cores": 64, "sockets": 1},
    }}}}));
    let vm = render(&template(Value::Null), &s, &resources());
    let domain = at(&vm, DOMAIN_PTR);
    assert_eq!(
        domain["resources"],
        json!({"requests": {"cpu": "2", "memory": "4096Mi"}, "limits": {"cpu": "2", "memory": "4096Mi"}})
    );
    // Not overcommitted: a fragment's guest size is dropped.
    assert!(domain["memory"].get("guest").is_none());
    // The size's shape beats its own overrides; other CPU fields stay.
    assert_eq!(domain["cpu"], json!({"cores": 2, "sockets": 1}));
}

#[test]
fn platform_fields_beat_everything() {
    let hostile = json!({
        "running": true,
        "runStrategy": "Manual",
        "template": {
            "metadata": {
                "labels": {
                    "kubevirt-shepherd.io/ticket-id": "forged",
                    "kubevirt-shepherd.io/extra": "x",
                    "team.kubevirt-shepherd.io/owner": "x",
                    "app": "web",
                },
                "annotations": {"kubevirt-shepherd.io/fqdn": "evil", "note": "kept"},
            },
            "spec": {
                "domain": {"devices": {"disks": [
                    {"name": "rootdisk", "disk": {"bus": "sata"}},
                    {"name": "cloudinitdisk", "cdrom": {}},
                    {"name": "data", "disk": {"bus": "virtio"}},
                ]}},
                "volumes": [
                    {"name": "rootdisk", "containerDisk": {"image": "evil:latest"}},
                    {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
                ],
            },
        },
    });
    let s = size(json!({
        "runStrategy": "Always",
        "template": {"spec": {"volumes": [
            {"name": "rootdisk", "containerDisk": {"image": "evil2:latest"}},
            {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
        ]}},
    }));
    let vm = render_with(&template(hostile), &s, &resources(), PowerState::Stopped).unwrap();
    assert_eq!(at(&vm, "/spec/runStrategy"), "Halted");
    assert!(vm.pointer("/spec/running").is_none());
    let labels = at(&vm, "/spec/template/metadata/labels")
        .as_object()
        .unwrap();
    assert_eq!(labels[TICKET_LABEL], uuid::Uuid::nil().to_string());
    assert_eq!(labels["app"], "web");
    assert!(!labels.contains_key("kubevirt-shepherd.io/extra"));
    assert!(!labels.contains_key("team.kubevirt-shepherd.io/owner"));
    assert_eq!(
        at(&vm, "/metadata/labels"),
        &Value::Object({
            let mut ours = labels.clone();
            ours.remove("app");
            ours
        })
    );
    assert_eq!(
        at(&vm, "/spec/template/metadata/annotations"),
        &json!({"note": "kept"})
    );
    assert_eq!(
        at(&vm, "/metadata/annotations/kubevirt-shepherd.io~1fqdn"),
        "dev-shop-web-01.dev.svc.cluster.local"
    );
    assert_eq!(
        at(&vm, &format!("{DOMAIN_PTR}/devices/disks")),
        &json!([
            {"name": "rootdisk", "disk": {"bus": "virtio"}},
            {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
            {"name": "data", "disk": {"bus": "virtio"}},
        ])
    );
    assert_eq!(
        at(&vm, "/spec/template/spec/volumes"),
        &json!([
            {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:40"}},
            {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
            {"name": "data", "emptyDisk": {"capacity": "1Gi"}},
        ])
    );
    assert_eq!(at(&vm, "/metadata/name"), "dev-shop-web-01");
    assert_eq!(at(&vm, "/metadata/namespace"), "dev");
}

#[test]
fn labels_are_the_documented_set() {
    let vm = render(&template(Value::Null), &size(json!({})), &resources());
    let created_by = label_value("alice@example.com");
    assert_eq!(
        at(&vm, "/metadata/labels"),
        &json!({
            "kubevirt-shepherd.io/managed-by": "kubevirt-shepherd",
            "kubevirt-shepherd.io/system": "shop",
            "kubevirt-shepherd.io/service": "web",
            "kubevirt-shepherd.io/instance": "01",
            "kubevirt-shepherd.io/ticket-id": "00000000-0000-0000-0000-000000000000",
            "kubevirt-shepherd.io/created-by": created_by,
        })
    );
    assert_eq!(
        at(
            &vm,
            "/metadata/annotations/kubevirt-shepherd.io~1template-version"
        ),
        "3"
    );
    assert_eq!(at(&vm, "/apiVersion"), "kubevirt.io/v1");
    assert_eq!(at(&vm, "/kind"), "VirtualMachine");
}

#[test]
fn power_states_render_run_strategy() {
    let t = template(Value::Null);
    let s = size(json!({}));
    for (power, strategy) in [
        (PowerState::Running, "Always"),
        (PowerState::Stopped, "Halted"),
    ] {
        let vm = render_with(&t, &s, &resources(), power).unwrap();
        assert_eq!(at(&vm, "/spec/runStrategy"), strategy);
    }
}

#[test]
fn overcommitted_memory_sets_the_guest_size() {
    let r = FinalResources {
        cpu_request_millis: 500,
        cpu_limit_millis: 2000,
        memory_request_mib: 2048,
        memory_limit_mib: 4096,
        disk_gib: 20,
    };
    let vm = render(&template(Value::Null), &size(json!({})), &r);
    let domain = at(&vm, DOMAIN_PTR);
    assert_eq!(domain["memory"]["guest"], "4096Mi");
    assert_eq!(domain["resources"]["requests"]["cpu"], "500m");
    assert_eq!(domain["resources"]["limits"]["cpu"], "2");
    assert_eq!(domain["resources"]["requests"]["memory"], "2048Mi");
}

#[test]
fn dedicated_cpu_is_placed_and_only_from_the_size() {
    let mut s = size(json!({}));
    s["dedicatedCpu"] = true.into();
    let vm = render(&template(Value::Null), &s, &resources());
    assert_eq!(
        at(&vm, &format!("{DOMAIN_PTR}/cpu")),
        &json!({"cores": 2, "dedicatedCpuPlacement": true})
    );
    // A fragment cannot ask for what placement did not check.
    let t = template(json!({"template": {"spec": {"domain": {
        "cpu": {"dedicatedCpuPlacement": true},
        "memory": {"hugepages": {"pageSize": "1Gi"}},
        "devices": {"gpus": [{"name": "g", "deviceName": "nvidia.com/x"}]},
    }}}}));
    let vm = render(&t, &size(json!({})), &resources());
    let domain = at(&vm, DOMAIN_PTR);
    assert_eq!(domain["cpu"], json!({"cores": 2}));
    assert_eq!(domain["memory"], json!({}));
    assert!(domain["devices"].get("gpus").is_none());
}

#[test]
fn fragments_keep_their_own_networking() {
    let t = template(json!({"template": {"spec": {
        "domain": {"devices": {"interfaces": [{"name": "br", "bridge": {}}]}},
        "networks": [{"name": "br", "multus": {"networkName": "vlan10"}}],
    }}}));
    let vm = render(&t, &size(json!({})), &resources());
    assert_eq!(
        at(&vm, &format!("{DOMAIN_PTR}/devices/interfaces")),
        &json!([{"name": "br", "bridge": {}}])
    );
    assert_eq!(
        at(&vm, "/spec/template/spec/networks"),
        &json!([{"name": "br", "multus": {"networkName": "vlan10"}}])
    );
    let vm = render(&template(Value::Null), &size(json!({})), &resources());
    assert_eq!(
        at(&vm, "/spec/template/spec/networks"),
        &json!([{"name": "default", "pod": {}}])
    );
}

#[test]
fn data_volume_root_disk() {
    let t = json!({"version": 1, "spec": {"image": {"dataVolume": {"registryUrl": "docker://quay.io/x:1"}}}});
    let vm = render(&t, &size(json!({})), &resources());
    assert_eq!(
        at(&vm, "/spec/template/spec/volumes"),
        &json!([{"name": "rootdisk", "dataVolume": {"name": "dev-shop-web-01-rootdisk"}}])
    );
    assert_eq!(
        at(&vm, "/spec/dataVolumeTemplates/0/spec"),
        &json!({"source": {"registry": {"url": "docker://quay.io/x:1"}},
                "storage": {"resources": {"requests": {"storage": "20Gi"}}}})
    );
    let mut no_disk = resources();
    no_disk.disk_gib = 0;
    assert_eq!(
        render_with(&t, &size(json!({})), &no_disk, PowerState::Running),
        Err(RenderError::DataVolumeWithoutStorage { disk_gib: 0 })
    );
}

#[test]
fn broken_snapshots_name_the_field() {
    let r = resources();
    let mut s = size(json!({}));
    s.as_object_mut().unwrap().remove("cpuCores");
    let err = render_with(&template(Value::Null), &s, &r, PowerState::Running).unwrap_err();
    assert!(err.to_string().contains("`cpuCores`"), "{err}");
    let err = render_with(
        &template(json!([1])),
        &size(json!({})),
        &r,
        PowerState::Running,
    )
    .unwrap_err();
    assert_eq!(
        err,
        RenderError::FragmentNotObject {
            field: "template snapshot `spec.baseVm`"
        }
    );
    let err = render_with(
        &template(json!({"template": {"spec": "x"}})),
        &size(json!({})),
        &r,
        PowerState::Running,
    )
    .unwrap_err();
    assert!(err.to_string().contains("`spec.template.spec`"), "{err}");
    let both = json!({"version": 1, "spec": {"image": {"containerDisk": "a", "dataVolume": {"httpUrl": "b"}}}});
    assert_eq!(
        render_with(&both, &size(json!({})), &r, PowerState::Running),
        Err(RenderError::ImageSource)
    );
}

#[test]
fn rendering_is_deterministic() {
    let t = template(json!({"template": {"spec": {"domain": {"machine": {"type": "q35"}}}}}));
    let a = serde_json::to_string(&render(&t, &size(json!({})), &resources())).unwrap();
    let b = serde_json::to_string(&render(&t, &size(json!({})), &resources())).unwrap();
    assert_eq!(a, b);
}

fn assert_valid(value: &str) {
    assert!(
        is_valid_label_value(value),
        "{value:?} ({} chars) is not a label value",
        value.len()
    );
}

#[test]
fn valid_label_values_are_unchanged() {
    for v in ["", "a", "web", "shop-01", "A.b_c-9", &"x".repeat(63)] {
        assert_eq!(label_value(v), v);
    }
}

#[test]
fn label_values_are_sanitised() {
    let email = label_value("alice@example.com");
    assert_valid(&email);
    assert!(email.starts_with("alice-example.com-"), "{email}");
    assert_ne!(email, label_value("alice.example.com"));
    let sa = label_value("system:serviceaccount:apps:ci");
    assert_valid(&sa);
    assert!(sa.starts_with("system-serviceaccount-apps-ci-"), "{sa}");

    let long = "a".repeat(100);
    let cut = label_value(&long);
    assert_valid(&cut);
    assert_eq!(cut.len(), 63);
    assert_ne!(cut, label_value(&"a".repeat(99)));

    for only_invalid in ["@@@", "::", "é", " "] {
        let v = label_value(only_invalid);
        assert_valid(&v);
        assert_eq!(v.len(), 8, "{v}");
    }
    assert_ne!(label_value("@@@"), label_value("::"));

    for edgy in ["-web", "web-", ".web.", "_web_", "--", "-.-"] {
        let v = label_value(edgy);
        assert_valid(&v);
    }
    assert!(label_value("-web").starts_with("web-"));
    // Deterministic.
    assert_eq!(label_value("a b"), label_value("a b"));
}

#[test]
fn selector_and_namespace_labels() {
    assert_eq!(
        managed_selector(),
        "kubevirt-shepherd.io/managed-by=kubevirt-shepherd"
    );
    assert_eq!(
        Value::Object(namespace_labels("prod")),
        json!({"kubevirt-shepherd.io/managed-by": "kubevirt-shepherd", "kubevirt-shepherd.io/environment": "prod"})
    );
}
