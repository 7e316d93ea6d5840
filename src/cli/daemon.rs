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
#[command(next_help_heading = "HTTP API")]
pub struct ServerArgs {
    /// Address to listen on. Loopback by default: give `0.0.0.0:8080` (as deploy/ does) to
    /// be reached from other hosts. `watch` keeps replicating when the address cannot be
    /// bound, and tries it again; `serve` exits 2.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "K8S_SYNC_LISTEN"
    )]
    pub listen: std::net::SocketAddr,
    /// Serve /metrics, /healthz and /readyz on this address too, on a port of their own
    /// (plain HTTP; they stay on --listen as well).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a login token stays valid, e.g. 12h, 30m.
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = parse_duration)]
    pub token_ttl: std::time::Duration,
    /// Connections held at most; when full, the oldest one still sending its request is
    /// closed to make room.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Time a client has for its TLS handshake and for each request's headers.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Time a client has to send a request's body (408 after it).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: std::time::Duration,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); read again when it or the
    /// key changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServerArgs {
    /// The API listener's options.
    pub fn options(&self) -> k8s_sync::api::ServerOptions {
        k8s_sync::api::ServerOptions {
            name: "api",
            max_connections: self.max_connections as usize,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            tls: self
                .tls_cert
                .clone()
                .zip(self.tls_key.clone())
                .map(|(cert, key)| k8s_sync::api::server::tls::TlsFiles { cert, key }),
            served: k8s_sync::api::Served::All,
        }
    }

    /// The metrics listener's options, when there is one.
    pub fn metrics_options(&self) -> Option<(std::net::SocketAddr, k8s_sync::api::ServerOptions)> {
        let listen = self.metrics_listen?;
        Some((
            listen,
            k8s_sync::api::ServerOptions {
                name: "metrics",
                tls: None,
                served: k8s_sync::api::Served::Health,
                ..self.options()
            },
        ))
    }
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
