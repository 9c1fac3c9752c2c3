//! `kubectl shepherd`: the kubectl plugin (see docs/reference.md). kubectl finds this binary
//! on PATH by its name. It calls the REST API with the current kubeconfig's credentials
//! (token, token file or exec plugin, resolved by kube the way kubectl does) and prints
//! tables, JSON or YAML.
//!
//! Exit codes, for scripts: see [`exit_code::ExitCode`], which also writes them under
//! `--help`.

mod cli;
mod client;
mod commands;
mod exit_code;
mod output;
mod views;

use clap::Parser;

fn main() {
    shepherd_types::default_sigpipe();
    let cli = cli::Cli::parse();
    let code = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(commands::run(cli));
    std::process::exit(code.code());
}
