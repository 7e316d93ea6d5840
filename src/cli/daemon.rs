//! The long-running commands' flags: `watch` and `serve`, and the HTTP server they share.

use std::path::PathBuf;

use clap::Args;

use super::{DbArgs, ElectionArgs, PassArgs, RunArgs, parse_duration};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Time between full passes, e.g. 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub resync_interval: std::time::Duration,
    /// How long writes in flight may take to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,
    /// Automatic retries of a failed change before it stays failed (for /retry).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub auto_retries: u32,
    /// The sliding window over which --max-prune counts the prunes of one replica.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub max_prune_window: std::time::Duration,
    /// How often the primary is asked whether it answers, and how long it may take.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub probe_interval: std::time::Duration,
    #[command(flatten)]
    pub election: ElectionArgs,
}

/// The HTTP server's settings, shared by `serve` and `watch`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        env = "K8S_SYNC_LISTEN"
    )]
    pub listen: std::net::SocketAddr,
    /// How long a login token stays valid, e.g. 12h, 30m.
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = parse_duration)]
    pub token_ttl: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// The primary, for /api/status and /retry.
    #[arg(long, value_name = "SRC", requires = "replicas")]
    pub primary: Option<String>,
    /// A replica (repeatable), for /api/status and /retry.
    #[arg(long, value_name = "DST", group = "replicas")]
    pub replica: Vec<String>,
    /// A directory of replica kubeconfigs, for /api/status and /retry.
    #[arg(long, value_name = "DIR", group = "replicas")]
    pub replica_dir: Option<PathBuf>,
    /// Name written into the source annotation when /retry applies (default: the primary's).
    #[arg(long, value_name = "NAME")]
    pub source_name: Option<String>,
}
