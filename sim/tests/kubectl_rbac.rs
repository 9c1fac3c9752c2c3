//! The real kubectl against an RBAC cluster: RBAC objects applied as admin, then a
//! ServiceAccount kubeconfig (minted by `SimCluster::write_service_account_kubeconfig`)
//! gets what its Role grants and the real Forbidden message otherwise.
//! kubectl comes from `SHEPHERD_KUBECTL` or `<workspace>/.cache/tools/kubectl/bin/kubectl`.

use std::path::Path;
use std::process::Command;

use shepherd_sim::{ClusterConfig, SimCluster};

#[path = "common/tools.rs"]
mod tools;
use tools::kubectl_path;

/// Runs kubectl with `kubeconfig`; returns (success, stdout, stderr).
fn kubectl(
    home: &Path,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = Command::new(kubectl_path());
    cmd.env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: team}
---
apiVersion: v1
kind: Secret
metadata: {name: token-store, namespace: team}
stringData: {k: v}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secret-reader, namespace: team}
rules:
- {apiGroups: [""], resources: [secrets], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads-secrets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-reader}
subjects:
- {kind: ServiceAccount, name: robot, namespace: team}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_as_a_service_account_gets_only_what_its_role_grants() {
    let sim = SimCluster::start(ClusterConfig::new("kubectl-rbac").with_rbac())
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let admin = sim.write_kubeconfig(home.path(), "admin").unwrap();
    let h = home.path().to_path_buf();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let (h, admin) = (h.clone(), admin.clone());
        move || kubectl(&h, &admin, &["apply", "-f", "-"], Some(OBJECTS))
    })
    .await
    .unwrap();
    assert!(ok, "apply failed:\n{out}\n{err}");
    assert!(
        out.contains("rolebinding.rbac.authorization.k8s.io/robot-reads-secrets created"),
        "{out}"
    );

    let robot = sim
        .write_service_account_kubeconfig(home.path(), "team", "robot")
        .unwrap();
    tokio::task::spawn_blocking(move || {
        // The kubeconfig's namespace is the ServiceAccount's.
        let (ok, out, err) = kubectl(&h, &robot, &["get", "secrets", "-o", "name"], None);
        assert!(ok, "get secrets failed:\n{out}\n{err}");
        assert_eq!(out.trim(), "secret/token-store");
        let (ok, _, err) = kubectl(&h, &robot, &["get", "secrets", "-n", "default"], None);
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:team:robot\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        );
        let (ok, _, err) = kubectl(&h, &robot, &["delete", "secret", "token-store"], None);
        assert!(!ok);
        assert_eq!(
            err.trim(),
            "Error from server (Forbidden): secrets \"token-store\" is forbidden: User \"system:serviceaccount:team:robot\" cannot delete resource \"secrets\" in API group \"\" in the namespace \"team\""
        );
        let (ok, _, err) = kubectl(&h, &robot, &["get", "rolebindings"], None);
        assert!(!ok);
        assert!(err.contains("cannot list resource \"rolebindings\" in API group \"rbac.authorization.k8s.io\""), "{err}");
        // The admin sees the RBAC objects as kubectl lists them.
        let (ok, out, err) = kubectl(&h, &admin, &["get", "rolebindings", "-n", "team"], None);
        assert!(ok, "{err}");
        assert!(out.contains("robot-reads-secrets"), "{out}");
    })
    .await
    .unwrap();
}
