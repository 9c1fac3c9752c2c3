//! The real kubectl and helm against a simulated cluster, each run with a fresh HOME and
//! cache. kubectl comes from `SHEPHERD_KUBECTL` or `<workspace>/.cache/tools/kubectl/bin/kubectl`
//! (`make kubectl`), helm from `SHEPHERD_HELM` or `<workspace>/.cache/tools/helm/helm`
//! (`bash scripts/helm.sh`). Included with `#[path = "common/tools.rs"] mod tools;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn tool(env: &str, rel: &str, install: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    assert!(
        p.exists(),
        "{} not found: run `{install}` (or set {env})",
        p.display()
    );
    p
}

pub fn kubectl_path() -> PathBuf {
    tool(
        "SHEPHERD_KUBECTL",
        ".cache/tools/kubectl/bin/kubectl",
        "make kubectl",
    )
}

pub fn helm_path() -> PathBuf {
    tool(
        "SHEPHERD_HELM",
        ".cache/tools/helm/helm",
        "bash scripts/helm.sh",
    )
}

/// One CLI (kubectl or helm) bound to an admin kubeconfig of a simulated cluster.
pub struct Cli {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub home: tempfile::TempDir,
    helm: bool,
}

impl Cli {
    fn new(sim: &shepherd_sim::SimCluster, bin: PathBuf, helm: bool) -> Self {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = sim.write_kubeconfig(home.path(), "admin").unwrap();
        Cli {
            bin,
            kubeconfig,
            home,
            helm,
        }
    }

    pub fn kubectl(sim: &shepherd_sim::SimCluster) -> Self {
        Self::new(sim, kubectl_path(), false)
    }

    pub fn helm(sim: &shepherd_sim::SimCluster) -> Self {
        Self::new(sim, helm_path(), true)
    }

    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// Runs the tool; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(&self.bin);
        cmd.env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.helm {
            let h = self.home.path();
            cmd.env("HELM_CACHE_HOME", h.join("helm-cache"))
                .env("HELM_CONFIG_HOME", h.join("helm-config"))
                .env("HELM_DATA_HOME", h.join("helm-data"));
        } else {
            cmd.arg("--cache-dir").arg(self.home.path().join("cache"));
        }
        cmd.args(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("the tool runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Runs the tool, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin);
        assert!(
            ok,
            "{} {args:?} failed:\nstdout: {out}\nstderr: {err}",
            self.bin.display()
        );
        out
    }
}
