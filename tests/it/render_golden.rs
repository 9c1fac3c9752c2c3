//! Golden files of the VM renderer, and their validation against KubeVirt's own OpenAPI
//! document (swagger.json of a pinned KubeVirt commit, definition `v1.VirtualMachine`; `make
//! test` provides it through `scripts/kubevirt-swagger.sh`).
//!
//! `UPDATE_GOLDEN=1 cargo nextest run --test it render_golden` rewrites the golden files.

use serde_json::{Map, Value, json};
use shepherd::domain::render::{RenderInput, render_vm};
use shepherd::domain::resources::FinalResources;
use shepherd::domain::vm_state::PowerState;
use std::path::{Path, PathBuf};

const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/render");

struct Case {
    name: &'static str,
    vm_name: &'static str,
    instance_index: i32,
    template: Value,
    size: Value,
    resources: FinalResources,
    storage_class: Option<&'static str>,
    power: PowerState,
}

const CLOUD_INIT: &str =
    "#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice\n";

fn template(image: Value, cloud_init: Option<&str>, base_vm: Value) -> Value {
    let mut spec = json!({"image": image});
    if let Some(user_data) = cloud_init {
        spec["cloudInit"] = user_data.into();
    }
    if !base_vm.is_null() {
        spec["baseVm"] = base_vm;
    }
    json!({"version": 4, "spec": spec})
}

fn size(name: &str, cores: i32, memory_mib: i64, extra: Value) -> Value {
    let mut size = json!({
        "name": name, "cpuCores": cores, "memoryMiB": memory_mib, "cpuOvercommit": 1.0,
        "memoryOvercommit": 1.0, "dedicatedCpu": false, "hugepages": null, "gpus": [],
        "specOverrides": {},
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        size[key] = value.clone();
    }
    size
}

fn exact(cores: i64, memory_mib: i64, disk_gib: i32) -> FinalResources {
    FinalResources {
        cpu_request_millis: cores * 1000,
        cpu_limit_millis: cores * 1000,
        memory_request_mib: memory_mib,
        memory_limit_mib: memory_mib,
        disk_gib,
    }
}

/// A typical template base: machine type, firmware and a guest agent channel.
fn base_vm() -> Value {
    json!({"template": {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {
            "domain": {"machine": {"type": "q35"}, "features": {"acpi": {}}},
            "terminationGracePeriodSeconds": 180,
            "evictionStrategy": "LiveMigrate",
        },
    }})
}

fn cases() -> Vec<Case> {
    let fedora = json!({"containerDisk": "quay.io/containerdisks/fedora:40"});
    vec![
        Case {
            name: "container_disk",
            vm_name: "dev-shop-web-01",
            instance_index: 1,
            template: template(fedora.clone(), Some(CLOUD_INIT), base_vm()),
            size: size("small", 2, 4096, json!({})),
            resources: exact(2, 4096, 20),
            storage_class: None,
            power: PowerState::Running,
        },
        Case {
            name: "datavolume_storage_class",
            vm_name: "prod-shop-db-02",
            instance_index: 2,
            template: template(
                json!({"dataVolume": {"httpUrl": "https://cloud.centos.org/centos/9-stream/x86_64/images/CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2"}}),
                Some(CLOUD_INIT),
                Value::Null,
            ),
            size: size("medium", 4, 8192, json!({})),
            resources: exact(4, 8192, 80),
            storage_class: Some("ceph-block"),
            power: PowerState::Stopped,
        },
        Case {
            name: "dedicated_cpu",
            vm_name: "prod-trade-engine-01",
            instance_index: 1,
            template: template(fedora.clone(), None, base_vm()),
            size: size(
                "dedicated-large",
                8,
                16384,
                json!({"dedicatedCpu": true, "specOverrides": {"template": {"spec": {
                    "domain": {"cpu": {"isolateEmulatorThread": true}},
                }}}}),
            ),
            resources: exact(8, 16384, 40),
            storage_class: None,
            power: PowerState::Running,
        },
        Case {
            name: "hugepages",
            vm_name: "prod-trade-cache-03",
            instance_index: 3,
            template: template(fedora.clone(), Some(CLOUD_INIT), Value::Null),
            size: size("hugepages-medium", 4, 8192, json!({"hugepages": "1Gi"})),
            resources: exact(4, 8192, 20),
            storage_class: None,
            power: PowerState::Running,
        },
        Case {
            name: "gpu",
            vm_name: "dev-ml-train-12",
            instance_index: 12,
            template: template(
                json!({"dataVolume": {"registryUrl": "docker://quay.io/containerdisks/ubuntu:24.04"}}),
                Some(CLOUD_INIT),
                base_vm(),
            ),
            size: size(
                "gpu-t4",
                8,
                32768,
                json!({
                    "gpus": [{"name": "gpu1", "deviceName": "nvidia.com/TU104GL_Tesla_T4"}],
                    "specOverrides": {"template": {"spec": {
                        "nodeSelector": {"nvidia.com/gpu.present": "true"},
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    }}},
                }),
            ),
            resources: exact(8, 32768, 100),
            storage_class: None,
            power: PowerState::Running,
        },
        Case {
            name: "overcommit",
            vm_name: "dev-shop-batch-01",
            instance_index: 1,
            template: template(fedora, Some(CLOUD_INIT), base_vm()),
            size: size(
                "burstable",
                2,
                4096,
                json!({"cpuOvercommit": 4.0, "memoryOvercommit": 2.0}),
            ),
            resources: FinalResources {
                cpu_request_millis: 500,
                cpu_limit_millis: 2000,
                memory_request_mib: 2048,
                memory_limit_mib: 4096,
                disk_gib: 20,
            },
            storage_class: None,
            power: PowerState::Running,
        },
    ]
}

fn render(case: &Case) -> Value {
    let namespace = case.vm_name.split('-').next().unwrap();
    let input = RenderInput {
        vm_name: case.vm_name,
        namespace,
        system: case.vm_name.split('-').nth(1).unwrap(),
        service: case.vm_name.split('-').nth(2).unwrap(),
        instance_index: case.instance_index,
        ticket_id: uuid::Uuid::from_u128(0x6a1f_0c2e_4b7d_4e58_9c3a_1d2e_3f40_5a6b),
        created_by: "alice@example.com",
        template: &case.template,
        size: &case.size,
        resources: &case.resources,
        storage_class: case.storage_class,
        power: case.power,
    };
    render_vm(&input).unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// Keys sorted at every level, whatever serde_json's map order is.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn golden_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&canonical(value)).unwrap();
    text.push('\n');
    text
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(GOLDEN_DIR).join(format!("{name}.json"))
}

fn read_golden(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_GOLDEN=1 cargo test --test render_golden",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn renders_match_the_golden_files() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for case in cases() {
        let text = golden_text(&render(&case));
        let path = golden_path(case.name);
        if update {
            std::fs::create_dir_all(GOLDEN_DIR).unwrap();
            // Written aside and renamed, so the schema test never reads half a file.
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        if golden != text {
            eprintln!(
                "--- {} (golden)\n{golden}\n+++ rendered\n{text}",
                path.display()
            );
            stale.push(case.name);
        }
    }
    assert!(
        stale.is_empty(),
        "rendered VMs differ from their golden files: {stale:?}; if intended, run \
         UPDATE_GOLDEN=1 cargo test --test render_golden and review the diff"
    );
}

#[test]
fn every_golden_file_has_a_case() {
    let mut files: Vec<String> = std::fs::read_dir(GOLDEN_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let mut expected: Vec<String> = cases().iter().map(|c| format!("{}.json", c.name)).collect();
    expected.sort();
    assert_eq!(files, expected);
}

// --- Validation against KubeVirt's swagger.json ---------------------------------------

struct KubeVirtSchema {
    definitions: Map<String, Value>,
    validator: jsonschema::Validator,
}

/// KubeVirt's `v1.VirtualMachine` schema, or `None` (test skipped) without the swagger.
fn kubevirt_schema() -> Option<KubeVirtSchema> {
    let text = crate::common::kubevirt_swagger()?;
    let swagger: Value = serde_json::from_str(&text).expect("swagger.json is JSON");
    let definitions = swagger["definitions"]
        .as_object()
        .expect("swagger.json has definitions")
        .clone();
    // Swagger 2.0 schema objects are a subset of JSON Schema draft 4.
    let schema = json!({
        "$ref": "#/definitions/v1.VirtualMachine",
        "definitions": definitions,
    });
    let validator = jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("KubeVirt's swagger compiles as a draft 4 schema");
    Some(KubeVirtSchema {
        definitions,
        validator,
    })
}

impl KubeVirtSchema {
    /// Schema violations and keys unknown to their definition, as readable lines.
    fn problems(&self, vm: &Value) -> Vec<String> {
        let mut problems: Vec<String> = self
            .validator
            .iter_errors(vm)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        let root = json!({"$ref": "#/definitions/v1.VirtualMachine"});
        self.unknown_keys(&root, vm, "", &mut problems);
        problems
    }

    fn resolve<'s>(&'s self, mut schema: &'s Value) -> &'s Value {
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            schema = self
                .definitions
                .get(name)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        schema
    }

    /// The swagger sets no `additionalProperties: false`, so a misspelled field would pass
    /// the validator: every key of an object whose definition declares `properties` must be
    /// one of them. Maps (labels, resources) declare `additionalProperties` instead.
    fn unknown_keys(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        match value {
            Value::Object(map) => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (key, child) in map {
                        let child_path = format!("{path}/{key}");
                        match properties.get(key) {
                            Some(s) => self.unknown_keys(s, child, &child_path, out),
                            None => out.push(format!("{child_path}: unknown field")),
                        }
                    }
                } else if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    for (key, child) in map {
                        self.unknown_keys(additional, child, &format!("{path}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.unknown_keys(item_schema, item, &format!("{path}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn goldens_are_valid_kubevirt_virtual_machines() {
    let Some(schema) = kubevirt_schema() else {
        return;
    };
    for case in cases() {
        let path = golden_path(case.name);
        let problems = schema.problems(&read_golden(&path));
        assert!(
            problems.is_empty(),
            "{} is not a valid v1.VirtualMachine:\n{}",
            path.display(),
            problems.join("\n")
        );
    }
}

/// What is broken, and how.
type Corruption = (&'static str, fn(&mut Value));

#[test]
fn corrupted_goldens_fail_validation() {
    let Some(schema) = kubevirt_schema() else {
        return;
    };
    let golden = read_golden(&golden_path("container_disk"));
    assert!(schema.problems(&golden).is_empty());
    let corruptions: [Corruption; 7] = [
        ("runStrategy a number", |vm| {
            vm["spec"]["runStrategy"] = json!(42)
        }),
        ("disk bus a number", |vm| {
            vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] =
                json!(7)
        }),
        ("cores a string", |vm| {
            vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = json!("two")
        }),
        ("label value a number", |vm| {
            vm["metadata"]["labels"]["app"] = json!(1)
        }),
        ("volume without a name", |vm| {
            vm["spec"]["template"]["spec"]["volumes"][0]
                .as_object_mut()
                .unwrap()
                .remove("name");
        }),
        ("misspelled spec field", |vm| {
            vm["spec"]["runStratgy"] = json!("Always")
        }),
        ("misspelled nested field", |vm| {
            vm["spec"]["template"]["spec"]["domain"]["memory"]["gest"] = json!("1Gi")
        }),
    ];
    for (what, corrupt) in corruptions {
        let mut vm = golden.clone();
        corrupt(&mut vm);
        let problems = schema.problems(&vm);
        assert!(!problems.is_empty(), "{what}: accepted by the schema");
        println!("{what}: {problems:?}");
    }
}
