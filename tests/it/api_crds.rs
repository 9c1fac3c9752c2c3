//! The CRDs: committed files match the types, and the static rules (schema and CEL) accept
//! and refuse what docs/reference.md says. CEL is evaluated with kube-cel, as the API server would.

use serde_json::{Value, json};
use shepherd::crd::crdgen;
use std::collections::BTreeSet;

fn crd(name: &str) -> Value {
    crdgen::all()
        .into_iter()
        .find(|(file, _)| file == &format!("{name}.shepherd.kv-shepherd.io.yaml"))
        .unwrap_or_else(|| panic!("no CRD {name}"))
        .1
}

fn schema(name: &str) -> Value {
    crd(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The CEL messages an object fails with (empty when it passes).
fn cel_errors(name: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    match kube_cel::Validator::new().validate(&schema(name), object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// `crds/` and the Helm chart's `crds/` both hold exactly what `shepherd crdgen` writes.
#[test]
fn committed_crds_match_the_types() {
    for dir in ["crds", "charts/kubevirt-shepherd/crds"] {
        let mut expected = BTreeSet::new();
        for (file, crd) in crdgen::all() {
            let path = format!("{dir}/{file}");
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{path} is missing: run `cargo run -- crdgen`"));
            assert_eq!(
                committed,
                crdgen::to_yaml(&crd),
                "{path} drifted: run `cargo run -- crdgen`"
            );
            expected.insert(file);
        }
        let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.ends_with(".yaml"))
            .collect();
        assert_eq!(on_disk, expected, "{dir}/ holds files no type generates");
    }
}

#[test]
fn every_kind_has_status_category_short_name_and_printer_columns() {
    for (file, crd) in crdgen::all() {
        let names = &crd["spec"]["names"];
        assert_eq!(names["categories"], json!(["shepherd"]), "{file}");
        assert!(
            names["shortNames"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{file}"
        );
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}), "{file}");
        let columns = version["additionalPrinterColumns"].as_array().unwrap();
        assert!(columns.iter().any(|c| c["name"] == "Age"), "{file}");
        assert!(
            version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"].is_object(),
            "{file} has no status.conditions"
        );
    }
}

#[test]
fn vm_request_columns_answer_the_obvious_question() {
    let columns: Vec<String> = crd("vmrequests")["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        columns,
        [
            "System",
            "Service",
            "Namespace",
            "Env",
            "Count",
            "Phase",
            "Ticket",
            "Age"
        ]
    );
}

#[test]
fn vm_request_spec_has_no_field_for_identity_names_labels_cloud_init_or_cluster() {
    let spec = &schema("vmrequests")["properties"]["spec"];
    let fields: BTreeSet<&str> = spec["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "count",
            "diskGib",
            "instanceSize",
            "reason",
            "service",
            "system",
            "targetNamespace",
            "template"
        ])
    );
    // No field preserves unknown input, so anything else is pruned or refused.
    assert!(
        !spec
            .to_string()
            .contains("x-kubernetes-preserve-unknown-fields")
    );
    assert_eq!(spec["properties"]["count"]["minimum"], 1.0);
    assert_eq!(spec["properties"]["count"]["maximum"], 10.0);
}

fn vm_request(count: i32) -> Value {
    json!({"apiVersion": "shepherd.kv-shepherd.io/v1alpha1", "kind": "VmRequest",
           "metadata": {"name": "r1", "namespace": "team-a"},
           "spec": {"system": "shop", "service": "web", "targetNamespace": "team-a", "template": "fedora",
                    "instanceSize": "small", "count": count, "reason": "load test"}})
}

#[test]
fn vm_request_spec_is_immutable() {
    let old = vm_request(2);
    assert!(cel_errors("vmrequests", &old, Some(&old)).is_empty());
    let mut status_changed = old.clone();
    status_changed["status"] = json!({"phase": "PendingApproval"});
    assert!(cel_errors("vmrequests", &status_changed, Some(&old)).is_empty());
    let errors = cel_errors("vmrequests", &vm_request(3), Some(&old));
    assert!(errors.iter().any(|m| m.contains("immutable")), "{errors:?}");
}

fn named(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "shepherd.kv-shepherd.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

#[test]
fn system_and_namespace_names_follow_the_name_rules() {
    for crd_name in ["systems", "vmnamespaces"] {
        let spec = if crd_name == "systems" {
            json!({})
        } else {
            json!({"environment": "test"})
        };
        let kind = if crd_name == "systems" {
            "System"
        } else {
            "VmNamespace"
        };
        for good in ["shop", "a", "team-a1", "abcdefghijklmno"] {
            let errors = cel_errors(crd_name, &named(kind, good, spec.clone()), None);
            assert!(errors.is_empty(), "{crd_name} {good}: {errors:?}");
        }
        let bad = [
            ("Shop", "lowercase"),
            ("1shop", "start with a lowercase letter"),
            ("shop-", "end with a letter or digit"),
            ("sh--op", "'--'"),
            ("abcdefghijklmnop", "at most 15"),
            ("default", "reserved name"),
            ("admin", "reserved name"),
            ("kube-x", "reserved prefix 'kube-'"),
            (
                "kubevirt-shepherd-x",
                "reserved prefix 'kubevirt-shepherd-'",
            ),
        ];
        for (name, expect) in bad {
            let errors = cel_errors(crd_name, &named(kind, name, spec.clone()), None);
            assert!(
                errors.iter().any(|m| m.contains(expect)),
                "{crd_name} {name}: {errors:?}"
            );
        }
    }
}

#[test]
fn service_names_are_system_dot_service() {
    let ok = named("Service", "shop.web", json!({"system": "shop"}));
    assert!(cel_errors("services", &ok, None).is_empty());
    let cases = [
        ("shopweb", "shop", "<system>.<service>"),
        ("shop.web.x", "shop", "<system>.<service>"),
        ("crm.web", "shop", "must start with spec.system"),
        ("shop.Web", "shop", "lowercase"),
        ("shop.default", "shop", "reserved name"),
        ("shop.abcdefghijklmnop", "shop", "at most 15"),
    ];
    for (name, system, expect) in cases {
        let errors = cel_errors(
            "services",
            &named("Service", name, json!({"system": system})),
            None,
        );
        assert!(
            errors.iter().any(|m| m.contains(expect)),
            "{name}: {errors:?}"
        );
    }
    let moved = named("Service", "shop.web", json!({"system": "crm"}));
    let errors = cel_errors("services", &moved, Some(&ok));
    assert!(
        errors
            .iter()
            .any(|m| m.contains("spec.system is immutable")),
        "{errors:?}"
    );
}

#[test]
fn namespace_environment_is_immutable() {
    let old = named("VmNamespace", "team-a", json!({"environment": "test"}));
    let new = named("VmNamespace", "team-a", json!({"environment": "prod"}));
    let errors = cel_errors("vmnamespaces", &new, Some(&old));
    assert!(
        errors
            .iter()
            .any(|m| m.contains("environment is immutable")),
        "{errors:?}"
    );
    assert_eq!(
        schema("vmnamespaces")["properties"]["spec"]["properties"]["environment"]["enum"],
        json!(["test", "prod"])
    );
}

#[test]
fn instance_size_rules() {
    let size = |dedicated: bool, overcommit: f64, min: i32, max: i32| {
        named(
            "InstanceSize",
            "small",
            json!({"cpu": {"cores": 2, "overcommit": overcommit, "dedicated": dedicated},
            "memory": {"mib": 2048}, "disk": {"minGiB": min, "maxGiB": max}}),
        )
    };
    assert!(cel_errors("instancesizes", &size(false, 2.0, 10, 50), None).is_empty());
    assert!(cel_errors("instancesizes", &size(true, 1.0, 10, 50), None).is_empty());
    let errors = cel_errors("instancesizes", &size(true, 2.0, 10, 50), None);
    assert!(
        errors.iter().any(|m| m.contains("dedicated CPUs")),
        "{errors:?}"
    );
    let errors = cel_errors("instancesizes", &size(false, 1.0, 60, 50), None);
    assert!(
        errors.iter().any(|m| m.contains("minGiB must not exceed")),
        "{errors:?}"
    );
}

#[test]
fn template_image_needs_exactly_one_source() {
    let t = |image: Value| named("VmTemplate", "fedora", json!({"image": image}));
    assert!(
        cel_errors(
            "vmtemplates",
            &t(json!({"containerDisk": "quay.io/containerdisks/fedora:40"})),
            None
        )
        .is_empty()
    );
    for bad in [
        json!({}),
        json!({"containerDisk": "x", "dataVolume": {"httpUrl": "https://x/y.img"}}),
    ] {
        let errors = cel_errors("vmtemplates", &t(bad.clone()), None);
        assert!(
            errors.iter().any(|m| m.contains("exactly one")),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn operation_and_approval_rules() {
    let op = |spec: Value| json!({"metadata": {"name": "o", "namespace": "n"}, "spec": spec});
    let errors = cel_errors(
        "vmoperations",
        &op(json!({"vm": "v", "operation": "restore", "reason": "r"})),
        None,
    );
    assert!(
        errors
            .iter()
            .any(|m| m.contains("spec.snapshot is required")),
        "{errors:?}"
    );
    assert!(
        cel_errors(
            "vmoperations",
            &op(json!({"vm": "v", "operation": "restore", "reason": "r", "snapshot": "s"})),
            None
        )
        .is_empty()
    );
    let errors = cel_errors(
        "vmoperations",
        &op(json!({"vm": "v", "operation": "stop", "reason": "r", "confirmName": "v"})),
        None,
    );
    assert!(
        errors.iter().any(|m| m.contains("only a delete takes it")),
        "{errors:?}"
    );
    let errors = cel_errors(
        "vmoperations",
        &op(json!({"vm": "v", "operation": "delete", "reason": "r", "confirmName": "w"})),
        None,
    );
    assert!(
        errors
            .iter()
            .any(|m| m.contains("confirmName must equal spec.vm")),
        "{errors:?}"
    );
    assert!(
        cel_errors(
            "vmoperations",
            &op(json!({"vm": "v", "operation": "delete", "reason": "r", "confirmName": "v"})),
            None
        )
        .is_empty()
    );

    let appr = |decision: &str| {
        json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"target": {"kind": "VmRequest", "name": "r1"},
            "decision": decision, "reason": "r", "overrides": {"cluster": "c1"}}})
    };
    assert!(cel_errors("approvals", &appr("approve"), None).is_empty());
    let errors = cel_errors("approvals", &appr("reject"), None);
    assert!(
        errors
            .iter()
            .any(|m| m.contains("overrides apply only to approvals")),
        "{errors:?}"
    );
}
