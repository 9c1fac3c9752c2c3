//! The simulated KubeVirt: VM lifecycle through runStrategy and the subresources,
//! migrations, snapshots, restores, clones, DataVolumes, forced failures, cluster
//! inventory, and field names checked against KubeVirt's real swagger.json.

mod common;

use common::*;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn api(client: &Client, g: &str, v: &str, k: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural),
    )
}

fn vms(c: &Client) -> Api<DynamicObject> {
    api(c, "kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
}

fn vmis(c: &Client) -> Api<DynamicObject> {
    api(
        c,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    )
}

fn vm(name: &str, strategy: &str, gpu: Option<&str>) -> DynamicObject {
    let mut o = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {"app": "demo", "kubevirt-shepherd.io/ticket-id": "t1"}},
        "spec": {"runStrategy": strategy, "template": {"metadata": {"labels": {"app": "demo"}}, "spec": {
            "domain": {"cpu": {"cores": 1}, "resources": {"requests": {"memory": "1Gi"}}, "devices": {"disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}}]}},
            "volumes": [{"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora"}}],
        }}},
    });
    if let Some(g) = gpu {
        o["spec"]["template"]["spec"]["domain"]["devices"]["gpus"] =
            json!([{"name": "gpu1", "deviceName": g}]);
    }
    serde_json::from_value(o).unwrap()
}

async fn status_is(api: &Api<DynamicObject>, name: &str, printable: &str) -> DynamicObject {
    eventually(&format!("{name} {printable}"), || async {
        let o = api.get(name).await.ok()?;
        (o.data["status"]["printableStatus"] == printable).then_some(o)
    })
    .await
}

async fn put(client: &Client, path: &str) -> Result<String, kube::Error> {
    client
        .request_text(
            http::Request::put(path)
                .header("content-type", "application/json")
                .body(b"{}".to_vec())
                .unwrap(),
        )
        .await
}

#[tokio::test]
async fn vm_lifecycle_follows_run_strategy_and_subresources() {
    let sim = start_target().await;
    let c = sim.kube_client("admin").unwrap();
    let (vms, vmis) = (vms(&c), vmis(&c));
    vms.create(&PostParams::default(), &vm("vm1", "Always", None))
        .await
        .unwrap();
    let running = status_is(&vms, "vm1", "Running").await;
    assert_eq!(running.data["status"]["ready"], true);
    assert!(
        running.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );
    let vmi = vmis.get("vm1").await.unwrap();
    assert_eq!(vmi.data["status"]["phase"], "Running");
    assert!(vmi.data["status"]["nodeName"].is_string());
    assert_eq!(vmi.metadata.owner_references.unwrap()[0].name, "vm1");

    let base = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1";
    let e = status_of(put(&c, &format!("{base}/start")).await.unwrap_err());
    assert_eq!(e.code, 409);
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is already running"
    );

    put(&c, &format!("{base}/stop")).await.unwrap();
    let stopped = status_is(&vms, "vm1", "Stopped").await;
    assert_eq!(stopped.data["spec"]["runStrategy"], "Halted");
    assert!(vmis.get_opt("vm1").await.unwrap().is_none(), "VMI removed");
    let e = status_of(put(&c, &format!("{base}/stop")).await.unwrap_err());
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            409,
            "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"vm1\": VM is not running"
        )
    );
    let e = status_of(put(&c, &format!("{base}/restart")).await.unwrap_err());
    assert_eq!(e.code, 409);

    put(&c, &format!("{base}/start")).await.unwrap();
    status_is(&vms, "vm1", "Running").await;
    let uid_before = vmis.get("vm1").await.unwrap().metadata.uid;
    put(&c, &format!("{base}/restart")).await.unwrap();
    eventually("restarted VMI", || async {
        let v = vmis.get("vm1").await.ok()?;
        (v.metadata.uid != uid_before && v.data["status"]["phase"] == "Running").then_some(())
    })
    .await;

    // Migration moves the VMI to another node.
    let node = vmis.get("vm1").await.unwrap().data["status"]["nodeName"].clone();
    put(&c, &format!("{base}/migrate")).await.unwrap();
    let migs = api(
        &c,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
    );
    eventually("migration succeeded", || async {
        let l = migs.list(&Default::default()).await.ok()?;
        l.items
            .iter()
            .any(|m| m.data["status"]["phase"] == "Succeeded")
            .then_some(())
    })
    .await;
    let vmi = vmis.get("vm1").await.unwrap();
    assert_ne!(vmi.data["status"]["nodeName"], node);
    assert_eq!(vmi.data["status"]["migrationState"]["completed"], true);

    // Deleting the VM removes its VMI too.
    vms.delete("vm1", &Default::default()).await.unwrap();
    eventually("vm and vmi gone", || async {
        (vms.get_opt("vm1").await.ok()?.is_none() && vmis.get_opt("vm1").await.ok()?.is_none())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn snapshots_restores_clones_and_datavolumes() {
    let sim = start_target().await;
    let c = sim.kube_client("admin").unwrap();
    let vms = vms(&c);
    let mut v = vm("src", "Always", None);
    v.data["spec"]["dataVolumeTemplates"] = json!([{"metadata": {"name": "src-rootdisk"}, "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}]);
    vms.create(&PostParams::default(), &v).await.unwrap();
    status_is(&vms, "src", "Running").await;
    let dvs = api(
        &c,
        "cdi.kubevirt.io",
        "v1beta1",
        "DataVolume",
        "datavolumes",
    );
    assert_eq!(
        dvs.get("src-rootdisk").await.unwrap().data["status"]["phase"],
        "Succeeded"
    );

    let snaps = api(
        &c,
        "snapshot.kubevirt.io",
        "v1beta1",
        "VirtualMachineSnapshot",
        "virtualmachinesnapshots",
    );
    let s: DynamicObject = serde_json::from_value(json!({"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
        "metadata": {"name": "snap1"}, "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"}}}))
    .unwrap();
    snaps.create(&PostParams::default(), &s).await.unwrap();
    eventually("snapshot ready", || async {
        (snaps.get("snap1").await.ok()?.data["status"]["readyToUse"] == true).then_some(())
    })
    .await;

    // Restore waits for a stopped VM.
    let restores = api(
        &c,
        "snapshot.kubevirt.io",
        "v1beta1",
        "VirtualMachineRestore",
        "virtualmachinerestores",
    );
    let r: DynamicObject = serde_json::from_value(json!({"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineRestore",
        "metadata": {"name": "r1"}, "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"}, "virtualMachineSnapshotName": "snap1"}}))
    .unwrap();
    restores.create(&PostParams::default(), &r).await.unwrap();
    eventually("restore blocked", || async {
        let r = restores.get("r1").await.ok()?;
        (r.data["status"]["complete"] == false
            && r.data["status"]["conditions"]
                .to_string()
                .contains("must be stopped"))
        .then_some(())
    })
    .await;
    put(
        &c,
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/src/stop",
    )
    .await
    .unwrap();
    eventually("restore complete", || async {
        (restores.get("r1").await.ok()?.data["status"]["complete"] == true).then_some(())
    })
    .await;

    let clones = api(
        &c,
        "clone.kubevirt.io",
        "v1beta1",
        "VirtualMachineClone",
        "virtualmachineclones",
    );
    let cl: DynamicObject = serde_json::from_value(json!({"apiVersion": "clone.kubevirt.io/v1beta1", "kind": "VirtualMachineClone",
        "metadata": {"name": "c1"}, "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"},
        "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "copy"}, "labelFilters": ["*", "!kubevirt-shepherd.io/*"]}}))
    .unwrap();
    clones.create(&PostParams::default(), &cl).await.unwrap();
    eventually("clone succeeded", || async {
        (clones.get("c1").await.ok()?.data["status"]["phase"] == "Succeeded").then_some(())
    })
    .await;
    let copy = vms.get("copy").await.unwrap();
    let labels = copy.metadata.labels.unwrap();
    assert_eq!(labels.get("app").map(String::as_str), Some("demo"));
    assert!(
        !labels.contains_key("kubevirt-shepherd.io/ticket-id"),
        "label filtered out"
    );
}

#[tokio::test]
async fn vms_fail_when_forced_or_unschedulable() {
    let sim = start_target().await;
    let c = sim.kube_client("admin").unwrap();
    let vms = vms(&c);
    sim.kubevirt()
        .unwrap()
        .fail_vm("default", "doomed", "ErrorUnschedulable");
    vms.create(&PostParams::default(), &vm("doomed", "Always", None))
        .await
        .unwrap();
    let v = status_is(&vms, "doomed", "ErrorUnschedulable").await;
    assert!(
        v.data["status"]["conditions"]
            .to_string()
            .contains("Unschedulable")
    );
    // A GPU no node has cannot be scheduled either.
    vms.create(
        &PostParams::default(),
        &vm("nogpu", "Always", Some("nvidia.com/H100")),
    )
    .await
    .unwrap();
    status_is(&vms, "nogpu", "ErrorUnschedulable").await;
    vms.create(
        &PostParams::default(),
        &vm("gpu", "Always", Some("nvidia.com/GA102GL_A10")),
    )
    .await
    .unwrap();
    let vmi = eventually("gpu vm on node-1", || async {
        let v = vmis(&c).get("gpu").await.ok()?;
        (v.data["status"]["phase"] == "Running").then_some(v)
    })
    .await;
    assert_eq!(vmi.data["status"]["nodeName"], "node-1");
    // Cleared failure recovers.
    sim.kubevirt().unwrap().clear_failure("default", "doomed");
    status_is(&vms, "doomed", "Running").await;
}

#[tokio::test]
async fn cluster_inventory_reports_version_capacity_and_storage() {
    let sim = start_target().await;
    let c = sim.kube_client("admin").unwrap();
    let kv = Api::<DynamicObject>::namespaced_with(
        c.clone(),
        "kubevirt",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "KubeVirt"),
            "kubevirts",
        ),
    );
    let kvo = kv.get("kubevirt").await.unwrap();
    assert_eq!(kvo.data["status"]["observedKubeVirtVersion"], "v1.5.2");
    assert!(
        kvo.data["spec"]["configuration"]["developerConfiguration"]["featureGates"]
            .to_string()
            .contains("Snapshot")
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.clone());
    let n1 = nodes.get("node-1").await.unwrap();
    let alloc = n1.status.unwrap().allocatable.unwrap();
    assert_eq!(alloc["nvidia.com/GA102GL_A10"].0, "2");
    assert_eq!(alloc["hugepages-2Mi"].0, "4Gi");
    let scs: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(c.clone());
    let list = scs.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(
        list.items
            .iter()
            .any(|s| s.metadata.annotations.as_ref().is_some_and(|a| a
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some()))
    );
    let v: Value = serde_json::from_str(
        &c.request_text(
            http::Request::get("/apis/subresources.kubevirt.io/v1/version")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["gitVersion"], "v1.5.2");
}

/// Every field the simulator writes must exist in KubeVirt's swagger definitions.
#[tokio::test]
async fn simulated_objects_use_field_names_from_kubevirt_swagger() {
    // `make test` names the pinned swagger.json (scripts/kubevirt-swagger.sh); a bare
    // `cargo test` looks in the project cache and says when it skips.
    let named = std::env::var_os("SHEPHERD_KUBEVIRT_SWAGGER");
    let path = named
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kubevirt/swagger.json")
        });
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if named.is_some() => panic!("SHEPHERD_KUBEVIRT_SWAGGER={}: {e}", path.display()),
        Err(_) => {
            eprintln!("{} not found: skipping the swagger check", path.display());
            return;
        }
    };
    let swagger: Value = serde_json::from_str(&text).unwrap();
    let defs = &swagger["definitions"];
    let sim = start_target().await;
    let c = sim.kube_client("admin").unwrap();
    let vms = vms(&c);
    vms.create(&PostParams::default(), &vm("chk", "Always", None))
        .await
        .unwrap();
    status_is(&vms, "chk", "Running").await;
    put(
        &c,
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/chk/migrate",
    )
    .await
    .unwrap();
    let migs = api(
        &c,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
    );
    let mig = eventually("migration done", || async {
        let l = migs.list(&Default::default()).await.ok()?;
        l.items
            .into_iter()
            .find(|m| m.data["status"]["phase"] == "Succeeded")
    })
    .await;
    let snaps = api(
        &c,
        "snapshot.kubevirt.io",
        "v1beta1",
        "VirtualMachineSnapshot",
        "virtualmachinesnapshots",
    );
    snaps
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
            "metadata": {"name": "s"}, "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "chk"}}})).unwrap())
        .await
        .unwrap();
    let snap = eventually("snapshot", || async {
        let s = snaps.get("s").await.ok()?;
        (s.data["status"]["readyToUse"] == true).then_some(s)
    })
    .await;
    let kv = Api::<DynamicObject>::namespaced_with(
        c.clone(),
        "kubevirt",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubevirt.io", "v1", "KubeVirt"),
            "kubevirts",
        ),
    );
    let checks = [
        (
            "v1.VirtualMachineStatus",
            vms.get("chk").await.unwrap().data["status"].clone(),
        ),
        (
            "v1.VirtualMachineInstanceStatus",
            vmis(&c).get("chk").await.unwrap().data["status"].clone(),
        ),
        (
            "v1.VirtualMachineInstanceMigrationStatus",
            mig.data["status"].clone(),
        ),
        (
            "v1beta1.VirtualMachineSnapshotStatus",
            snap.data["status"].clone(),
        ),
        (
            "v1.KubeVirtStatus",
            kv.get("kubevirt").await.unwrap().data["status"].clone(),
        ),
    ];
    let mut unknown = vec![];
    for (def, value) in checks {
        assert!(
            defs[def]["properties"].is_object(),
            "{def} is in swagger.json"
        );
        assert!(value.is_object(), "{def}: the simulator wrote a status");
        check_fields(defs, &defs[def], &value, def, &mut unknown);
    }
    assert!(
        unknown.is_empty(),
        "fields not in KubeVirt's swagger: {unknown:?}"
    );
}

fn check_fields(defs: &Value, schema: &Value, v: &Value, path: &str, unknown: &mut Vec<String>) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => &defs[r.trim_start_matches("#/definitions/")],
        None => schema,
    };
    match v {
        Value::Object(m) => {
            let Some(props) = schema["properties"].as_object() else {
                return;
            };
            for (k, child) in m {
                match props.get(k) {
                    Some(s) => check_fields(defs, s, child, &format!("{path}.{k}"), unknown),
                    None => unknown.push(format!("{path}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_fields(
                    defs,
                    &schema["items"],
                    item,
                    &format!("{path}[{i}]"),
                    unknown,
                );
            }
        }
        _ => {}
    }
}
