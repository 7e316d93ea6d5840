//! What each command does, on top of the library.

mod apply;
mod context;
mod diff;
mod jobs;
mod listeners;
mod progress;
mod replica_credentials;
mod serve;
mod signals;
mod snapshot;
mod users;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use k8s_sync::diff::render::Detail;

use crate::cli::{Cli, ColorChoice, Command, DbArgs, Format, OutputArgs};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let output = Output::new(&cli.output);
    match cli.command {
        Command::Diff(args) => diff::run(&args, &output).await,
        Command::Snapshot(args) => snapshot::run(&args, &output).await,
        Command::Apply(args) => apply::run(&args, &output).await,
        Command::Jobs(args) => jobs::run(args, &output).await,
        Command::Serve(args) => serve::run(args, &output).await,
        Command::Watch(args) => watch::run(*args, &output).await,
        Command::Users(args) => users::run(args, &output),
        Command::ReplicaCredentials(args) => replica_credentials::run(&args, &output).await,
    }
}

/// How to print.
pub struct Output {
    pub format: Format,
    pub color: bool,
    pub detail: Detail,
}

impl Output {
    fn new(args: &OutputArgs) -> Self {
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        let detail = match (args.quiet, args.verbose) {
            (true, _) => Detail::Quiet,
            (_, true) => Detail::Verbose,
            _ => Detail::Normal,
        };
        Output {
            format: args.format,
            color,
            detail,
        }
    }

    /// A diagnostic line on stderr, shown unless `--quiet`.
    pub fn note(&self, line: impl std::fmt::Display) {
        if self.detail > Detail::Quiet {
            eprintln!("{line}");
        }
    }

    /// A diagnostic line on stderr, shown with `--verbose`.
    pub fn detail(&self, line: impl std::fmt::Display) {
        if self.detail == Detail::Verbose {
            eprintln!("{line}");
        }
    }
}

/// Opens the job database named on the command line.
fn open_store(db: &DbArgs) -> anyhow::Result<k8s_sync::store::Store> {
    use anyhow::Context;
    k8s_sync::store::Store::open(&db.path)
        .with_context(|| format!("opening job database {}", db.path.display()))
}

/// Prints what a snapshot left out, with `--verbose`.
fn report_skipped(output: &Output, name: &str, snapshot: &k8s_sync::snapshot::Snapshot) {
    for (why, count) in &snapshot.skipped {
        output.detail(format_args!("{name}: skipped {count} ({why})"));
    }
}
