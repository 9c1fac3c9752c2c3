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

    /// Log lines as text for people or as JSON (timestamp, level, target, span fields) for
    /// log pipelines. Logs go to stderr; RUST_LOG selects what is logged.
    #[arg(
        long,
        env = "SHEPHERD_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the process's log subscriber (stderr, filtered by RUST_LOG).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into());
    // Colours only on a terminal: log files and container logs get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .init(),
    }
}

impl Cli {
    /// `shepherd run` serves clients; every other command prints and exits.
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }
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
    /// Run the webhook, health endpoints and reconcilers against the current kubeconfig's
    /// cluster (or in-cluster config).
    Run(Box<RunArgs>),
    /// Bind a role to a user, group or service account (platform bootstrap).
    Bind {
        /// user:NAME, group:NAME or serviceaccount:NS/NAME.
        #[arg(long, value_parser = parse_subject)]
        subject: Subject,
        #[arg(long)]
        role: String,
        /// Scope the binding to one System (global when absent).
        #[arg(long)]
        system: Option<String>,
        /// Environments the binding counts for.
        #[arg(long = "env", value_delimiter = ',', default_value = "test")]
        environments: Vec<crate::domain::Environment>,
    },
    /// Write a private CA and a webhook serving certificate (ca.crt, tls.crt, tls.key).
    Certs {
        #[arg(long)]
        out: std::path::PathBuf,
        /// DNS names or IP addresses the certificate is valid for.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
    /// Print the REST API's OpenAPI 3.1 document (committed as openapi/v1.json).
    Openapi,
    /// Write the CustomResourceDefinitions generated from the API types.
    Crdgen {
        /// Directory to write one YAML file per CRD into; repeat for several. By default
        /// `crds/` and the Helm chart's `charts/kubevirt-shepherd/crds/`.
        #[arg(long, default_values = ["crds", "charts/kubevirt-shepherd/crds"])]
        out: Vec<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Serve the admission webhook (TLS) here; needs --webhook-cert and --webhook-key.
    #[arg(long, env = "SHEPHERD_WEBHOOK_ADDR", requires_all = ["webhook_cert", "webhook_key"])]
    webhook_addr: Option<std::net::SocketAddr>,
    #[arg(long, env = "SHEPHERD_WEBHOOK_CERT")]
    webhook_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "SHEPHERD_WEBHOOK_KEY")]
    webhook_key: Option<std::path::PathBuf>,
    /// Serve only clients presenting a certificate signed by this CA bundle (PEM): the API
    /// server's webhook client certificate (its admission kubeconfig). Without it, any
    /// client that can reach the port may ask the webhook to sign a stamp.
    #[arg(long, env = "SHEPHERD_WEBHOOK_CLIENT_CA", requires = "webhook_addr")]
    webhook_client_ca: Option<std::path::PathBuf>,
    /// Serve the REST API (/api/v1) here. TLS with --api-cert/--api-key, or the webhook's
    /// certificate when those are absent; plain HTTP only with --api-plain-http.
    #[arg(long, env = "SHEPHERD_API_ADDR")]
    api_addr: Option<std::net::SocketAddr>,
    #[arg(long, env = "SHEPHERD_API_CERT", requires = "api_key")]
    api_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "SHEPHERD_API_KEY", requires = "api_cert")]
    api_key: Option<std::path::PathBuf>,
    /// Serve the REST API without TLS (behind a TLS-terminating proxy only: bearer tokens
    /// travel in it).
    #[arg(long, env = "SHEPHERD_API_PLAIN_HTTP")]
    api_plain_http: bool,
    /// Requests per second each user may make to the REST API (burst: twice as many).
    #[arg(long, env = "SHEPHERD_API_RATE_LIMIT", default_value = "20")]
    api_rate_limit: std::num::NonZeroU32,
    /// Seconds an accepted bearer token is trusted before TokenReview is asked again.
    #[arg(long, env = "SHEPHERD_TOKEN_CACHE_SECONDS", default_value = "30")]
    token_cache_seconds: u64,
    /// An audience bearer tokens must be valid for (TokenReview spec.audiences); repeat for
    /// several. Without it, tokens for the management cluster's API server are accepted.
    #[arg(
        long = "token-audience",
        env = "SHEPHERD_TOKEN_AUDIENCES",
        value_delimiter = ','
    )]
    token_audience: Vec<String>,
    /// Minutes a web console login (/ui/) lasts before the user must log in again.
    #[arg(long, env = "SHEPHERD_CONSOLE_SESSION_MINUTES", default_value = "480",
          value_parser = clap::value_parser!(u64).range(1..=10080))]
    console_session_minutes: u64,
    /// /healthz and /readyz.
    #[arg(long, env = "SHEPHERD_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: std::net::SocketAddr,
    /// Do not run the reconcilers and status watchers on this replica.
    #[arg(long)]
    no_controllers: bool,
    /// Do not work River jobs on this replica.
    #[arg(long)]
    no_workers: bool,
    /// River jobs this replica works at once.
    #[arg(long, env = "SHEPHERD_WORKER_CONCURRENCY", default_value = "10")]
    worker_concurrency: std::num::NonZeroUsize,
    /// Concurrent writes to one target cluster from this replica.
    #[arg(long, env = "SHEPHERD_CLUSTER_WRITE_CONCURRENCY", default_value = "5")]
    cluster_write_concurrency: std::num::NonZeroUsize,
    /// How long one job attempt may run before it is cancelled and retried (seconds; at
    /// least 300 is advised: target clusters can be slow).
    #[arg(long, env = "SHEPHERD_JOB_TIMEOUT_SECONDS", default_value = "600")]
    job_timeout_seconds: u64,
    /// After how long a job left running by a process that died is retried (seconds; at
    /// least the job timeout).
    #[arg(long, env = "SHEPHERD_JOB_RESCUE_AFTER_SECONDS", default_value = "900")]
    job_rescue_after_seconds: u64,
    /// How often every target cluster is probed (health, KubeVirt version, capabilities),
    /// in seconds; a changed Cluster or kubeconfig Secret is probed at once.
    #[arg(long, env = "SHEPHERD_PROBE_INTERVAL_SECONDS", default_value = "60", value_parser = clap::value_parser!(u64).range(5..))]
    probe_interval_seconds: u64,
    /// How often every target cluster is scanned for VMs missing behind our back, orphans
    /// and drift, in seconds.
    #[arg(long, env = "SHEPHERD_DRIFT_SCAN_INTERVAL_SECONDS", default_value = "600", value_parser = clap::value_parser!(u64).range(5..))]
    drift_scan_interval_seconds: u64,
    /// How long finished River jobs are kept, in hours (discarded ones seven times as long).
    /// Audit rows are never deleted.
    #[arg(long, env = "SHEPHERD_JOB_RETENTION_HOURS", default_value = "24", value_parser = clap::value_parser!(u64).range(1..))]
    job_retention_hours: u64,
    /// How long domain events are kept, in days (at least 7). Audit rows are never deleted.
    #[arg(long, env = "SHEPHERD_EVENT_RETENTION_DAYS", default_value = "30", value_parser = clap::value_parser!(i32).range(7..))]
    event_retention_days: i32,
    /// The Secret NAMESPACE/NAME holding the identity-stamp HMAC key (data key `key`, at
    /// least 32 bytes) and, after a rotation, the key before it (data key `previous`), which
    /// still verifies the stamps it signed.
    #[arg(
        long,
        env = "SHEPHERD_IDENTITY_KEY_SECRET",
        conflicts_with = "identity_key_file"
    )]
    identity_key_secret: Option<String>,
    /// A file holding the identity-stamp HMAC key (at least 32 bytes). Repeat the flag after
    /// a rotation: the first key signs, the others only verify.
    #[arg(long, env = "SHEPHERD_IDENTITY_KEY_FILE", value_delimiter = ',')]
    identity_key_file: Vec<std::path::PathBuf>,
    /// Run even when the database user is a superuser or owns the tables: such a user can
    /// rewrite the audit log whole. For throwaway development databases only.
    #[arg(long, env = "SHEPHERD_ALLOW_PRIVILEGED_DATABASE_USER")]
    allow_privileged_database_user: bool,
    /// How often the audit chain's head (row count and newest hash) is exported to the log
    /// and the ConfigMap kubevirt-shepherd-audit-anchor, when it moved (seconds).
    #[arg(long, env = "SHEPHERD_AUDIT_ANCHOR_INTERVAL_SECONDS", default_value = "300", value_parser = clap::value_parser!(u64).range(1..))]
    audit_anchor_interval_seconds: u64,
    /// Namespace of the leader-election Lease (and of the audit anchor ConfigMap).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubevirt-shepherd")]
    lease_namespace: String,
    /// This replica's name in the Lease (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first row where an edit, removal or reordering happened.
    Verify {
        /// A chain head exported earlier (ROWS:HASH, from the `audit anchor` log line or the
        /// kubevirt-shepherd-audit-anchor ConfigMap): the chain must still hold that row, so
        /// a rewrite of the whole chain by the database owner is caught.
        #[arg(long)]
        anchor: Option<crate::domain::audit_chain::Anchor>,
    },
}

fn parse_subject(s: &str) -> Result<Subject, String> {
    Subject::parse_flag(s.trim()).map_err(|e| e.to_string())
}

/// Runs the command; the exit code is 0 on success, 1 when `audit verify` finds tampering.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Crdgen { out } = &cli.command {
        for dir in out {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, crd) in crate::crd::crdgen::all() {
                let path = dir.join(file);
                std::fs::write(&path, crate::crd::crdgen::to_yaml(&crd))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("crdgen: wrote {}", path.display());
            }
        }
        return Ok(0);
    }
    if let Command::Openapi = &cli.command {
        print!("{}", crate::http::api::openapi_json());
        return Ok(0);
    }
    if let Command::Certs { out, hosts } = &cli.command {
        crate::certs::write_webhook_certs(out, hosts)?;
        println!(
            "certs: wrote ca.crt, tls.crt and tls.key to {}",
            out.display()
        );
        return Ok(0);
    }
    let url = cli
        .database_url
        .context("no database: set DATABASE_URL or pass --database-url (`make db` starts one)")?;
    let command = match cli.command {
        // `run` gives each component its own pool (webhook, REST API, controllers, workers).
        Command::Run(args) => return run_process(*args, &url).await,
        other => other,
    };
    let pool = crate::db::connect(&url, 5)
        .await
        .context("connecting to PostgreSQL")?;
    match command {
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
            command: AuditCommand::Verify { anchor },
        } => {
            let report = app::audit::verify_against(&pool, anchor.as_ref()).await?;
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
                    | ChainBreak::BrokenStart { id }
                    | ChainBreak::AnchorMismatch { id, .. } = problem
                    {
                        eprintln!("audit verify: first bad row: {id}");
                    }
                    return Ok(1);
                }
            }
        }
        Command::Show => print_inventory(&app::inventory::load(&pool).await?),
        Command::Crdgen { .. } | Command::Certs { .. } | Command::Openapi => {
            unreachable!("handled before connecting")
        }
        Command::Bind {
            subject,
            role,
            system,
            environments,
        } => {
            let created = app::rbac::bind(
                &pool,
                app::rbac::Granter::Bootstrap,
                &subject,
                &role,
                system.as_deref(),
                &environments,
            )
            .await?;
            println!(
                "bind: {role} for {subject} {}",
                if created.is_some() {
                    "created"
                } else {
                    "already existed"
                }
            );
        }
        Command::Run(_) => unreachable!("handled before connecting"),
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

async fn run_process(args: RunArgs, url: &str) -> anyhow::Result<i32> {
    let sizes = crate::db::PoolSizes::for_workers(
        u32::try_from(args.worker_concurrency.get()).unwrap_or(u32::MAX),
    );
    let pools = crate::db::Pools::connect_lazy(url, &sizes).context("the database URL")?;
    let privilege = crate::app::migrate::privilege(&pools.controllers)
        .await
        .context("connecting to PostgreSQL")?;
    if let Some(why) = privilege.refusal() {
        if !args.allow_privileged_database_user {
            anyhow::bail!(
                "refusing to run as database user {:?}: {why}. Connect as a login role that is a \
                 member of {} (created by `shepherd migrate`), or pass \
                 --allow-privileged-database-user for a throwaway development database",
                privilege.user,
                crate::db::APP_ROLE
            );
        }
        tracing::warn!(user = %privilege.user, reason = %why, "running as a privileged database user");
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to the management cluster (KUBECONFIG or in-cluster config)")?;
    let keys = match (&args.identity_key_secret, args.identity_key_file.as_slice()) {
        (Some(secret), _) => {
            let (ns, name) = secret
                .split_once('/')
                .context("--identity-key-secret must be NAMESPACE/NAME")?;
            crate::run::identity_keys_from_secret(&client, ns, name).await?
        }
        (None, [current, previous @ ..]) => {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))
            };
            crate::domain::identity::KeyRing::new(
                read(current)?,
                previous.iter().map(read).collect::<Result<_, _>>()?,
            )?
        }
        (None, []) => anyhow::bail!(
            "an identity key is required: --identity-key-secret NS/NAME or --identity-key-file PATH"
        ),
    };
    let instance = args.instance.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "shepherd".into())
    });
    let webhook = match (args.webhook_addr, args.webhook_cert, args.webhook_key) {
        (Some(addr), Some(cert), Some(key)) => Some(crate::run::WebhookOptions {
            addr,
            cert,
            key,
            client_ca: args.webhook_client_ca,
        }),
        _ => None,
    };
    let api = match args.api_addr {
        None => None,
        Some(addr) => {
            let tls = match (args.api_cert, args.api_key, &webhook) {
                _ if args.api_plain_http => None,
                (Some(cert), Some(key), _) => Some((cert, key)),
                (_, _, Some(w)) => Some((w.cert.clone(), w.key.clone())),
                _ => anyhow::bail!(
                    "--api-addr needs --api-cert and --api-key (or the webhook's), or --api-plain-http"
                ),
            };
            let burst = args
                .api_rate_limit
                .saturating_mul(std::num::NonZeroU32::new(2).expect("2 is not zero"));
            Some(crate::run::ApiOptions {
                addr,
                tls,
                config: crate::http::api::ApiConfig {
                    token_cache_ttl: std::time::Duration::from_secs(args.token_cache_seconds),
                    rate_limit: crate::http::api::auth::RateLimit {
                        per_second: args.api_rate_limit,
                        burst,
                    },
                    token_audiences: args.token_audience,
                    session_ttl: std::time::Duration::from_secs(args.console_session_minutes * 60),
                },
            })
        }
    };
    let opts = crate::run::RunOptions {
        webhook,
        api,
        health_addr: Some(args.health_addr),
        controllers: !args.no_controllers,
        lease: crate::controller::lease::LeaseConfig::new(
            &args.lease_namespace,
            "kubevirt-shepherd-controller",
            &instance,
        ),
        workers: (!args.no_workers).then(|| {
            let job_timeout = std::time::Duration::from_secs(args.job_timeout_seconds.max(1));
            crate::jobs::WorkerOptions {
                concurrency: args.worker_concurrency.get(),
                cluster_write_concurrency: args.cluster_write_concurrency.get(),
                job_timeout,
                rescue_after: std::time::Duration::from_secs(args.job_rescue_after_seconds)
                    .max(job_timeout),
                probe_interval: std::time::Duration::from_secs(args.probe_interval_seconds),
                drift_interval: std::time::Duration::from_secs(args.drift_scan_interval_seconds),
                job_retention: std::time::Duration::from_secs(args.job_retention_hours * 3600),
                event_retention_days: args.event_retention_days,
                ..Default::default()
            }
        }),
        cluster_write_concurrency: args.cluster_write_concurrency.get(),
        audit_anchor_interval: std::time::Duration::from_secs(args.audit_anchor_interval_seconds),
    };
    let running = crate::run::start(opts, pools, client, keys).await?;
    if let Some(addr) = running.webhook_addr {
        println!("run: webhook listening on https://{addr}");
    }
    if let Some(addr) = running.api_addr {
        println!("run: REST API listening on {addr}");
    }
    if let Some(addr) = running.health_addr {
        println!("run: health on http://{addr}/healthz");
    }
    println!("run: ready");
    let stop = running.stop_token();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        stop.cancel();
    });
    running.wait().await;
    Ok(0)
}
