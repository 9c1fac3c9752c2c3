//! The `shepherd` command line.

use crate::app;
use crate::domain::audit_chain::ChainBreak;
use crate::domain::subject::Subject;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shepherd",
    version,
    about = "KubeVirt Shepherd: governance for KubeVirt virtual machines"
)]
pub struct Cli {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply River's and Shepherd's database migrations and the application role's grants.
    Migrate,
    /// Seed permissions, built-in roles, approval policies and bootstrap platform admins.
    Seed {
        /// A bootstrap platform admin: user:NAME, group:NAME or serviceaccount:NS/NAME.
        /// Repeat the flag, or give a comma-separated list in the environment.
        #[arg(long = "bootstrap-admin", env = "SHEPHERD_BOOTSTRAP_ADMINS", value_delimiter = ',',
              value_parser = parse_subject)]
        bootstrap_admins: Vec<Subject>,
    },
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Show what exists: inventory counts, roles, approval policies, bootstrap admins.
    Show,
    /// Write the CustomResourceDefinitions generated from the API types.
    Crdgen {
        /// Directory to write one YAML file per CRD into.
        #[arg(long, default_value = "crds")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first row where an edit, removal or reordering happened.
    Verify,
}

fn parse_subject(s: &str) -> Result<Subject, String> {
    Subject::parse_flag(s.trim()).map_err(|e| e.to_string())
}

/// Runs the command; the exit code is 0 on success, 1 when `audit verify` finds tampering.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Crdgen { out } = &cli.command {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for (file, crd) in crate::api::crdgen::all() {
            let path = out.join(file);
            std::fs::write(&path, crate::api::crdgen::to_yaml(&crd))
                .with_context(|| format!("writing {}", path.display()))?;
            println!("crdgen: wrote {}", path.display());
        }
        return Ok(0);
    }
    let url = cli
        .database_url
        .context("no database: set DATABASE_URL or pass --database-url (`make db` starts one)")?;
    let pool = crate::db::connect(&url, 5)
        .await
        .context("connecting to PostgreSQL")?;
    match cli.command {
        Command::Migrate => {
            let report = app::migrate::run(&pool).await?;
            if report.is_noop() {
                println!("migrate: schema is up to date");
            } else {
                println!(
                    "migrate: applied River migrations {:?} and schema migrations {:?}",
                    report.river_applied, report.schema_applied
                );
            }
        }
        Command::Seed { bootstrap_admins } => {
            let config = app::seed::SeedConfig { bootstrap_admins };
            let report = app::seed::run(&pool, &config).await?;
            println!(
                "seed: {} permissions, {} roles {:?}, {} policies added; admins added {:?}, revoked {:?}",
                report.permissions_added,
                report.roles_added.len(),
                report.roles_added,
                report.policies_added,
                report
                    .admins_added
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                report
                    .admins_revoked
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            );
            for d in &report.drifted_roles {
                println!(
                    "seed: warning: built-in role {} was edited (kept): missing {:?}, extra {:?}",
                    d.role, d.missing, d.extra
                );
            }
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = app::audit::verify(&pool).await?;
            match report.problem {
                None => println!(
                    "audit verify: ok, {} rows, chain intact",
                    report.rows_checked
                ),
                Some(problem) => {
                    eprintln!(
                        "audit verify: FAILED after {} good rows: {problem}",
                        report.rows_checked
                    );
                    if let ChainBreak::Edited { id }
                    | ChainBreak::BrokenLink { id, .. }
                    | ChainBreak::BrokenStart { id } = problem
                    {
                        eprintln!("audit verify: first bad row: {id}");
                    }
                    return Ok(1);
                }
            }
        }
        Command::Show => print_inventory(&app::inventory::load(&pool).await?),
        Command::Crdgen { .. } => unreachable!("handled before connecting"),
    }
    Ok(0)
}

fn print_inventory(inv: &app::inventory::Inventory) {
    let c = &inv.counts;
    println!(
        "inventory: {} systems, {} services, {} namespaces, {} clusters, {} tickets, {} vms",
        c.systems, c.services, c.namespaces, c.clusters, c.tickets, c.vms
    );
    println!("roles:");
    for r in &inv.roles {
        let kind = if r.builtin { "built-in" } else { "custom" };
        println!("  {:<16} {:<9} {}", r.name, kind, r.permissions.join(", "));
    }
    println!("approval policies (operation: test / prod):");
    let mut ops: Vec<&str> = inv.policies.iter().map(|p| p.operation.as_str()).collect();
    ops.dedup();
    for op in ops {
        let needs = |env: &str| {
            inv.policies
                .iter()
                .find(|p| p.operation == op && p.environment == env)
                .map(|p| {
                    if p.requires_approval {
                        "approval"
                    } else {
                        "auto"
                    }
                })
                .unwrap_or("approval (no rule)")
        };
        println!("  {:<9} {} / {}", op, needs("test"), needs("prod"));
    }
    println!("bootstrap platform admins:");
    for b in &inv.bootstrap_admins {
        println!(
            "  {} {} ({})",
            b.subject_kind,
            b.subject_name,
            b.allowed_environments.join(", ")
        );
    }
    println!("audit log: {} rows", inv.audit_rows);
}
