//! `shepherd-sim up --out DIR` starts the clusters, writes kubeconfigs and prints ready.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn up_writes_a_kubeconfig_per_cluster_and_user_and_prints_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shepherd-sim"))
        .args(["up", "--out"])
        .arg(dir.path())
        .args([
            "--target",
            "east:prod",
            "--target",
            "west:test",
            "--user",
            "alice:dev",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = vec![];
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line == "ready";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert_eq!(lines.last().map(String::as_str), Some("ready"), "{lines:?}");
    for cluster in ["management", "east", "west"] {
        for user in ["admin", "alice"] {
            assert!(
                dir.path()
                    .join(cluster)
                    .join(format!("{user}.kubeconfig"))
                    .exists(),
                "{cluster}/{user}"
            );
        }
    }
    // The written kubeconfig works.
    let kc = kube::config::Kubeconfig::read_from(dir.path().join("east/alice.kubeconfig")).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    assert_eq!(
        nodes.list(&Default::default()).await.unwrap().items.len(),
        2,
        "target clusters simulate KubeVirt nodes"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn up_with_rbac_enforces_rbac_in_every_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shepherd-sim"))
        .args(["up", "--rbac", "--user", "alice:dev", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            if line.unwrap() == "ready" {
                break;
            }
        }
    })
    .await
    .unwrap();
    for (cluster, user, allowed) in [
        ("management", "alice", false),
        ("target-1", "alice", false),
        ("target-1", "admin", true),
    ] {
        let kc = kube::config::Kubeconfig::read_from(
            dir.path().join(cluster).join(format!("{user}.kubeconfig")),
        )
        .unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(kube::Client::try_from(cfg).unwrap());
        match nss.list(&Default::default()).await {
            Ok(_) => assert!(allowed, "{cluster}/{user} may not list namespaces"),
            Err(kube::Error::Api(s)) => {
                assert!(!allowed && s.code == 403, "{cluster}/{user}: {s:?}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The config file spells it per cluster.
    let cfg: shepherd_sim::SimConfig = serde_saphyr::from_str(
        "management: {name: m, authorization: RBAC}\ntargets: [{name: t}]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.management.authorization,
        shepherd_sim::Authorization::Rbac
    );
    assert_eq!(
        cfg.targets[0].authorization,
        shepherd_sim::Authorization::AlwaysAllow
    );
}
