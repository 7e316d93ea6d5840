//! `serve`: the HTTP API and metrics over the job database, until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_sync::accounts::Accounts;
use k8s_sync::api::{self, Api, Authenticator, Driver, PassContext, Server, auth, status};
use k8s_sync::diff::render::Detail;
use tracing::info;

use super::Output;
use super::signals::StopSignals;
use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&args.db)?;
    store.settle_abandoned()?;
    let store = Arc::new(store);
    first_user(store.clone()).await?;
    let authenticator = authenticator(args.server.token_ttl).await?;
    let pass = pass_context(&args)?;
    let mut service = Api::new(
        store,
        Arc::new(k8s_sync::metrics::Metrics::new()),
        authenticator,
        tokio::runtime::Handle::current(),
    )
    .with_access_log(output.detail == Detail::Verbose);
    if let Some(pass) = pass {
        let names: Vec<&str> = pass.replicas.iter().map(|r| r.name.as_str()).collect();
        info!(primary = %pass.primary.name, replicas = %names.join(","), "status and retries enabled");
        service = service.with_driver(Driver::Endpoints(Box::new(pass)));
    }
    let mut signals = StopSignals::listen()?;
    let listen = args.server.listen;
    let server = Server::start(listen, api::WORKERS, Arc::new(service))
        .with_context(|| format!("listening on {listen}"))?;
    info!("listening on http://{}", server.local_addr());

    tokio::select! {
        () = signals.next() => {}
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

/// Adds the first user from `K8S_SYNC_ADMIN_PASSWORD` when `accounts` have none. Shared by
/// `serve` and `watch`.
pub(super) async fn first_user(accounts: Arc<dyn Accounts>) -> anyhow::Result<()> {
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    // bcrypt, and accounts on a cluster, block.
    tokio::task::spawn_blocking(move || auth::create_first_user(accounts.as_ref(), cost))
        .await
        .context("adding the first user")??;
    Ok(())
}

/// The API's authenticator. Shared by `serve` and `watch`.
pub(super) async fn authenticator(token_ttl: std::time::Duration) -> anyhow::Result<Authenticator> {
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    // Preparing the dummy hash that evens out login times costs a bcrypt run.
    tokio::task::spawn_blocking(move || Authenticator::new(cost, token_ttl))
        .await
        .context("preparing password checks")?
        .context("preparing password checks")
}

/// The primary and replicas given on the command line, if any.
fn pass_context(args: &ServeArgs) -> anyhow::Result<Option<PassContext>> {
    let Some(primary) = &args.primary else {
        if !args.replica.is_empty() || args.replica_dir.is_some() {
            bail!("--replica and --replica-dir need --primary");
        }
        return Ok(None);
    };
    let (primary, replicas) =
        super::context::endpoints_of(primary, &args.replica, args.replica_dir.as_deref())?;
    Ok(Some(PassContext {
        primary,
        replicas,
        options: status::default_options(),
        source_name: args.source_name.clone(),
    }))
}
