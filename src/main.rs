//! The `k8s-sync` binary: parse the command line, run the command, map the outcome to an exit
//! code (0 success, 1 drift or tampering, 2 error).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::seed_form(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("k8s-sync: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = cli::Cli::parse_from(args);
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
