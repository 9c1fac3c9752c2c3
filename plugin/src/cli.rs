//! The command line: global flags and one subcommand per REST call.

use crate::exit_code::ExitCode;
use clap::{Parser, Subcommand, ValueEnum};
use shepherd_types::api::Overrides;
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-shepherd",
    about = "KubeVirt Shepherd from kubectl: pending approvals, decisions, VMs, audit",
    after_help = ExitCode::help_text()
)]
pub struct Cli {
    /// The Shepherd REST API, e.g. https://shepherd.example:8443. Must be https: every request
    /// carries your kubeconfig credentials (see --allow-loopback-http).
    // This doc comment is also the `--help` text, where a bare URL reads best.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, env = "SHEPHERD_API_URL", global = true)]
    pub server: Option<String>,
    /// PEM file with the CA that signed the API's certificate.
    #[arg(long, env = "SHEPHERD_API_CA", global = true)]
    pub certificate_authority: Option<PathBuf>,
    /// Do not verify the API's certificate (testing only).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Allow an http:// --server on a loopback IP address (127.0.0.0/8 or ::1), for a local
    /// development API: your credentials then travel unencrypted. Any other http:// server
    /// is refused. No environment variable, so that it is never on by accident.
    #[arg(long, global = true)]
    pub allow_loopback_http: bool,
    /// Kubeconfig whose current user's credentials are sent (default: KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to take the credentials from.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Who the API thinks you are, and your bindings.
    Whoami,
    /// Open the web console logged in as your kubeconfig user: a link that works once,
    /// within a minute (also printed, to open elsewhere).
    Ui {
        /// Only print the link; do not start a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Tickets waiting for your decision, oldest first.
    Pending,
    /// Tickets you may see.
    Tickets {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        system: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        requester: Option<String>,
        /// Operation: create, delete, start, ...
        #[arg(long = "type")]
        operation: Option<String>,
    },
    /// One ticket with its VMs.
    Ticket { id: Uuid },
    /// What approving would create: clusters, resources, VM names, warnings. Writes nothing.
    Preview {
        id: Uuid,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Approve a ticket, optionally overriding placement and resources.
    Approve {
        id: Uuid,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Reject a ticket; the reason is shown to the requester.
    Reject {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending ticket.
    Cancel {
        id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// VMs you may see.
    Vms {
        #[arg(long)]
        system: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// VMs with the platform's label that no VM record knows, as the clusters' drift scans
    /// found them (needs cluster:manage).
    Orphans,
    /// The snapshots of a VM (what a restore can name), needs vm:read.
    Snapshots {
        /// The VM's name.
        vm: String,
    },
    /// Audit records (needs audit:read).
    Audit {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        resource_type: Option<String>,
        #[arg(long)]
        resource_id: Option<String>,
        /// Actions starting with this, e.g. `approval.`.
        #[arg(long)]
        action: Option<String>,
        #[arg(long = "env")]
        environment: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// At most this many records.
        #[arg(long, default_value = "100")]
        limit: usize,
    },
}

#[derive(Debug, clap::Args)]
pub struct OverrideArgs {
    /// Place the VMs on this cluster (same environment, healthy, capable).
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long)]
    storage_class: Option<String>,
    #[arg(long)]
    template_version: Option<i32>,
    /// CPU request/limit in millicores.
    #[arg(long)]
    cpu_request: Option<i64>,
    #[arg(long)]
    cpu_limit: Option<i64>,
    /// Memory request/limit in MiB.
    #[arg(long)]
    memory_request: Option<i64>,
    #[arg(long)]
    memory_limit: Option<i64>,
    /// Root disk in GiB.
    #[arg(long)]
    disk: Option<i32>,
}

impl From<OverrideArgs> for Overrides {
    fn from(a: OverrideArgs) -> Self {
        Overrides {
            cluster: a.cluster,
            storage_class: a.storage_class,
            template_version: a.template_version,
            cpu_request_millis: a.cpu_request,
            cpu_limit_millis: a.cpu_limit,
            memory_request_mib: a.memory_request,
            memory_limit_mib: a.memory_limit,
            disk_gib: a.disk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_ends_with_the_exit_codes() {
        let help = Cli::command().render_help().to_string();
        assert!(help.trim_end().ends_with(&ExitCode::help_text()), "{help}");
    }

    #[test]
    fn usage_errors_exit_with_the_usage_code() {
        let error = Cli::try_parse_from(["kubectl-shepherd", "--no-such-flag"]).unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::Usage.code());
    }
}
