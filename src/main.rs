use clap::Parser;

fn main() {
    let cli = shepherd::cli::Cli::parse();
    // Commands that print end quietly on a closed pipe; the server keeps Rust's default
    // (SIGPIPE ignored), so a peer that hangs up never kills it.
    if !cli.is_server() {
        shepherd::default_sigpipe();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(run(cli));
}

async fn run(cli: shepherd::cli::Cli) {
    shepherd::cli::init_logging(cli.log_format);
    match shepherd::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("shepherd: error: {err:#}");
            std::process::exit(2);
        }
    }
}
