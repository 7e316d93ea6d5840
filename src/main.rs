//! The `k8s-sync` binary: parse the command line, run the command, map the outcome to an exit
//! code (0 success, 1 drift, failed objects or tampering, 2 error).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::seed_form(std::env::args_os().collect()));
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("k8s-sync: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("k8s-sync: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Log lines on stderr: the daemons (`watch`, `serve`) say what they do; one-shot commands
/// print their own output and log only warnings. kube's line per failed request is left out:
/// k8s-sync reports each failure once, with the cluster or object it concerns, and a cluster
/// that is down once per change of state. `RUST_LOG` overrides all of this.
fn init_logging(cli: &cli::Cli) {
    let daemon = matches!(cli.command, cli::Command::Watch(_) | cli::Command::Serve(_));
    let level = match (cli.output.quiet, cli.output.verbose, daemon) {
        (true, _, _) => "error",
        (_, true, _) => "info,kube=warn,kube_client::client::builder=off",
        (_, _, true) => "info,kube=warn,kube_client::client::builder=off",
        _ => "warn,kube=error,kube_client::client::builder=off",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
