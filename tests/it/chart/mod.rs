//! The Helm chart (`charts/kubevirt-shepherd`) with the real Helm 4: lint, render and validate
//! every built-in object against Kubernetes 1.37's schemas (`render`); install, upgrade and
//! uninstall into the simulated management cluster, then run the rendered Deployment's
//! process as the chart's ServiceAccount under RBAC (`install`), and show that every RBAC
//! rule it grants is needed (`least_privilege`). `node` plays the kubelet for those tests.

mod render;

use serde_json::Value;
use std::path::{Path, PathBuf};

pub const CHART: &str = "charts/kubevirt-shepherd";
/// The namespace the tests install into.
pub const NAMESPACE: &str = "kubevirt-shepherd";
/// The release name; objects are named `shepherd-kubevirt-shepherd...` unless overridden.
pub const RELEASE: &str = "shepherd";
/// The base name of every object of the release (`fullnameOverride` in the tests' values).
pub const FULLNAME: &str = "kubevirt-shepherd";

/// A pinned tool from the environment variable, else the project cache (`make test`
/// installs both).
fn tool(var: &str, cached: &str, make_target: &str) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return path.into();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(cached);
    assert!(
        path.exists(),
        "{} is missing: run `make {make_target}` (or `make test`), or set {var}",
        path.display()
    );
    path
}

pub fn helm_path() -> PathBuf {
    tool("SHEPHERD_HELM", ".cache/tools/helm/helm", "helm")
}

pub fn kubernetes_validate_path() -> PathBuf {
    tool(
        "SHEPHERD_KUBERNETES_VALIDATE",
        ".cache/tools/kubernetes-validate/run",
        "kubernetes-validate",
    )
}

/// Runs helm with a private HOME (no user configuration, no repositories); (ok, stdout, stderr).
pub fn helm(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(helm_path())
        .args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The YAML documents of a rendered manifest, empty ones left out.
pub fn documents(manifest: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in manifest.lines().chain(std::iter::once("---")) {
        if line.starts_with("---") {
            if !current.trim().is_empty() {
                let doc: Value = serde_saphyr::from_str(&current)
                    .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{current}"));
                if !doc.is_null() {
                    docs.push(doc);
                }
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

/// The one rendered object of `kind` named `name`.
pub fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}
