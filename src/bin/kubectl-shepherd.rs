//! `kubectl shepherd ...`: kubectl finds this binary on PATH by its name.

use clap::Parser;

fn main() {
    shepherd::default_sigpipe();
    let cli = shepherd::plugin::Cli::parse();
    let code = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(shepherd::plugin::run(cli));
    std::process::exit(code);
}
