//! The real kubectl against the simulator: apply a CRD and custom objects, get with
//! printer columns, patch status, wait for a condition, delete with finalizers.
//! kubectl comes from `SHEPHERD_KUBECTL` or `<workspace>/.cache/tools/kubectl/bin/kubectl`
//! (installed by `make kubectl`).

mod common;

use common::*;
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[path = "common/tools.rs"]
mod tools;
use tools::Cli;

const WIDGETS: &str = r#"
apiVersion: bars.example.com/v1
kind: Widget
metadata:
  name: alpha
  finalizers: [example.com/hold]
spec:
  size: 3
---
apiVersion: bars.example.com/v1
kind: Widget
metadata:
  name: beta
spec:
  size: 1
  color: blue
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_patch_wait_delete() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let sim = shepherd_sim::SimCluster::start(shepherd_sim::ClusterConfig::new("kubectl"))
        .await
        .unwrap();
    let k = Cli::kubectl(&sim);
    let k = tokio::task::spawn_blocking(move || {
        let out = k.ok(&["apply", "-f", "-"], Some(CRD_YAML));
        assert!(
            out.contains(
                "customresourcedefinition.apiextensions.k8s.io/widgets.bars.example.com created"
            ),
            "{out}"
        );
        let out = k.ok(&["apply", "-f", "-"], Some(WIDGETS));
        assert!(
            out.contains("widget.bars.example.com/alpha created")
                && out.contains("widget.bars.example.com/beta created"),
            "{out}"
        );
        // A second apply with no change is "unchanged"; a change is "configured".
        let out = k.ok(&["apply", "-f", "-"], Some(WIDGETS));
        assert!(
            out.contains("widget.bars.example.com/alpha unchanged"),
            "{out}"
        );
        let out = k.ok(
            &["apply", "-f", "-"],
            Some(&WIDGETS.replace("size: 3", "size: 4")),
        );
        assert!(
            out.contains("widget.bars.example.com/alpha configured"),
            "{out}"
        );
        // Strict field validation refuses unknown fields.
        let (ok, _, err) = k.run(
            &["apply", "-f", "-"],
            Some(
                &WIDGETS
                    .split("---")
                    .nth(1)
                    .unwrap()
                    .replace("size: 1\n", "size: 1\n  bogus: 1\n"),
            ),
        );
        assert!(!ok && err.contains("unknown field \"spec.bogus\""), "{err}");
        // Server-side apply.
        let out = k.ok(
            &["apply", "--server-side", "-f", "-"],
            Some(
                &WIDGETS
                    .split("---")
                    .nth(1)
                    .unwrap()
                    .replace("name: beta", "name: gamma"),
            ),
        );
        assert!(out.contains("gamma serverside-applied"), "{out}");
        // get shows the printer columns, also by short name.
        let out = k.ok(&["get", "widgets"], None);
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "SIZE", "PHASE", "AGE"], "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("alpha") && l.contains(" 4 ")),
            "{out}"
        );
        let out = k.ok(&["get", "wd", "beta", "-o", "jsonpath={.spec.color}"], None);
        assert_eq!(out, "blue");
        // Status patch, then wait for it.
        k.ok(
            &[
                "patch",
                "widget",
                "alpha",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True"}]}}"#,
            ],
            None,
        );
        let out = k.ok(
            &[
                "wait",
                "--for=condition=Ready",
                "widget/alpha",
                "--timeout=20s",
            ],
            None,
        );
        assert!(out.contains("condition met"), "{out}");
        let out = k.ok(&["get", "widget", "alpha"], None);
        assert!(out.contains("Ready"), "{out}");
        k.ok(&["describe", "widget", "alpha"], None);
        // Delete with a finalizer: the object stays, marked for deletion.
        let out = k.ok(&["delete", "widget", "alpha", "--wait=false"], None);
        assert!(out.contains("deleted"), "{out}");
        let ts = k.ok(
            &[
                "get",
                "widget",
                "alpha",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ],
            None,
        );
        assert!(!ts.is_empty(), "deletionTimestamp set");
        k.ok(
            &[
                "patch",
                "widget",
                "alpha",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            None,
        );
        let (ok, _, err) = k.run(&["get", "widget", "alpha"], None);
        assert!(!ok && err.contains("NotFound"), "{err}");
        k.ok(&["delete", "widget", "beta"], None);
        k
    })
    .await
    .unwrap();
    // Wait for a condition that only becomes true later, set through a kube client.
    let client = sim.kube_client("admin").unwrap();
    let k2 = tokio::task::spawn_blocking(move || {
        k.run(
            &[
                "wait",
                "--for=jsonpath={.status.phase}=Done",
                "widget/gamma",
                "--timeout=20s",
            ],
            None,
        )
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    widgets(&client, "default")
        .patch_status(
            "gamma",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Done"}})),
        )
        .await
        .unwrap();
    let (ok, out, err) = k2.await.unwrap();
    assert!(ok && out.contains("condition met"), "{out} {err}");
}
