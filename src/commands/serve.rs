//! `serve`: the HTTP API and metrics over the job database, until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use k8s_sync::api::{Api, Driver, PassContext, status};
use k8s_sync::diff::render::Detail;
use tracing::info;

use super::Output;
use super::listeners::{Listeners, authenticator, first_user};
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
    let listeners = Listeners::start(&args.server, Arc::new(service), false).await?;
    signals.next().await;
    info!("signal received: finishing the requests in flight");
    listeners.shutdown().await;
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
    let (primary, replicas) =
        super::context::endpoints_of(primary, &args.replica, args.replica_dir.as_deref())?;
    Ok(Some(PassContext {
        primary,
        replicas,
        options: status::default_options(),
        source_name: args.source_name.clone(),
    }))
}
