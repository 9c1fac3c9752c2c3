//! `kubectl shepherd ...`: kubectl finds this binary on PATH by its name.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let code = shepherd::plugin::run(shepherd::plugin::Cli::parse()).await;
    std::process::exit(code);
}
