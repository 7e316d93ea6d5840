//! `serve`: the HTTP API and metrics over the job database, until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_sync::api::{self, Api, Authenticator, PassContext, Server, auth, status};
use k8s_sync::diff::render::Detail;
use k8s_sync::kinds::KindSet;
use k8s_sync::metrics::Metrics;
use tracing::info;

use super::Output;
use super::diff::endpoints;
use crate::cli::{PassArgs, ScopeArgs, ServeArgs};

pub async fn run(args: ServeArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&args.db)?;
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    auth::create_first_user(&store, cost)?;
    let pass = pass_context(&args)?;

    let authenticator =
        tokio::task::spawn_blocking(move || Authenticator::new(cost, args.server.token_ttl))
            .await
            .context("preparing password checks")?
            .context("preparing password checks")?;
    let mut service = Api::new(
        Arc::new(store),
        Arc::new(Metrics::new()),
        authenticator,
        tokio::runtime::Handle::current(),
    )
    .with_access_log(output.detail == Detail::Verbose);
    if let Some(pass) = pass {
        let names: Vec<&str> = pass.replicas.iter().map(|r| r.name.as_str()).collect();
        info!(primary = %pass.primary.name, replicas = %names.join(","), "status and retries enabled");
        service = service.with_pass(pass);
    }
    let listen = args.server.listen;
    let server = Server::start(listen, api::WORKERS, Arc::new(service))
        .with_context(|| format!("listening on {listen}"))?;
    info!("listening on http://{}", server.local_addr());

    tokio::select! {
        signal = wait_for_signal() => signal?,
        reason = server.failed() => {
            bail!("the HTTP server stopped accepting connections: {reason}")
        }
    }
    info!("signal received: finishing the requests in flight");
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .context("stopping the HTTP server")?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The primary and replicas given on the command line, if any.
fn pass_context(args: &ServeArgs) -> anyhow::Result<Option<PassContext>> {
    let Some(primary) = &args.primary else {
        if !args.replica.is_empty() || args.replica_dir.is_some() {
            bail!("--replica and --replica-dir need --primary");
        }
        return Ok(None);
    };
    let pass = PassArgs {
        primary: primary.clone(),
        replica: args.replica.clone(),
        replica_dir: args.replica_dir.clone(),
        source_name: args.source_name.clone(),
        no_adopt: false,
        no_prune: false,
        scope: ScopeArgs {
            sync_namespaces: Vec::new(),
            allow_sensitive_namespaces: false,
            kinds: KindSet::all(),
        },
    };
    let (primary, replicas) = endpoints(&pass)?;
    Ok(Some(PassContext {
        primary,
        replicas,
        options: status::default_options(),
        source_name: args.source_name.clone(),
    }))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}
