//! `shepherd-sim up --out DIR`: start a management cluster and target clusters, write a
//! kubeconfig per cluster and user at `DIR/<cluster>/<user>.kubeconfig`, print `ready`,
//! and run until interrupted.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shepherd_sim::{Authorization, ClusterConfig, Sim, SimConfig, User};

#[derive(Parser)]
#[command(name = "shepherd-sim", about = "Kubernetes API and KubeVirt simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the simulated clusters.
    Up {
        /// Directory for kubeconfigs (`<cluster>/<user>.kubeconfig`).
        #[arg(long)]
        out: PathBuf,
        /// YAML config file (`management`, `targets`: name, environment, users, kubevirt).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Target clusters as `name[:environment]` (default: `target-1:test`).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Extra users in every cluster as `name[:group,group]`.
        #[arg(long = "user")]
        users: Vec<String>,
        /// Enforce RBAC in every cluster (default: every authenticated user may do
        /// everything; a config file can set `authorization: RBAC` per cluster).
        #[arg(long)]
        rbac: bool,
    },
}

fn parse_user(s: &str) -> User {
    let (name, groups) = s.split_once(':').unwrap_or((s, ""));
    User {
        name: name.into(),
        groups: groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
        token: String::new(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let Command::Up {
        out,
        config,
        targets,
        users,
        rbac,
    } = Cli::parse().command;
    let mut cfg = match &config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_saphyr::from_str::<SimConfig>(&text)
                .with_context(|| format!("parsing {}", p.display()))?
        }
        None => SimConfig::default(),
    };
    if !targets.is_empty() {
        cfg.targets = targets
            .iter()
            .map(|t| {
                let (name, env) = t
                    .split_once(':')
                    .map(|(n, e)| (n, Some(e.to_string())))
                    .unwrap_or((t.as_str(), None));
                ClusterConfig {
                    environment: env,
                    ..ClusterConfig::target(name)
                }
            })
            .collect();
    } else if config.is_none() {
        cfg.targets[0].environment = Some("test".into());
    }
    for u in &users {
        let u = parse_user(u);
        cfg.management.users.push(u.clone());
        for t in cfg.targets.iter_mut() {
            t.users.push(u.clone());
        }
    }
    if rbac {
        cfg.management.authorization = Authorization::Rbac;
        for t in cfg.targets.iter_mut() {
            t.authorization = Authorization::Rbac;
        }
    }
    let sim = Sim::start(cfg).await?;
    let paths = sim.write_kubeconfigs(&out)?;
    std::fs::write(out.join("ca.crt"), sim.ca_pem())?;
    for c in sim.clusters() {
        println!("cluster {} {}", c.name(), c.url());
    }
    for p in &paths {
        println!("kubeconfig {}", p.display());
    }
    println!("ready");
    tokio::signal::ctrl_c().await?;
    sim.shutdown();
    Ok(())
}
