use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_sync::endpoint::Connected;
use k8s_sync::metrics::Metrics;
use k8s_sync::watch::{Replica, Watch, WatchOptions};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Output;
use super::apply::{open_store, pass_options};
use super::diff::endpoints;
use crate::cli::WatchArgs;

pub async fn run(args: WatchArgs, _output: &Output) -> anyhow::Result<ExitCode> {
    let options = WatchOptions {
        pass: pass_options(&args.pass, &args.run),
        resync: args.resync_interval,
        shutdown_timeout: args.shutdown_timeout,
        auto_retries: args.auto_retries,
        coalesce: std::time::Duration::from_millis(50),
    };
    let (primary, replicas) = endpoints(&args.pass)?;
    let Connected::Cluster(primary_cluster) = primary.connect().await.context("primary")? else {
        bail!(
            "primary {}: watch mode needs a kubeconfig, not a directory",
            primary.name
        );
    };
    let mut watched = Vec::new();
    for replica in &replicas {
        let connected = replica
            .connect()
            .await
            .with_context(|| format!("replica {}", replica.name))?;
        let Connected::Cluster(cluster) = connected else {
            bail!(
                "replica {}: watch mode needs a kubeconfig, not a directory",
                replica.name
            );
        };
        watched.push(Arc::new(Replica::new(&replica.name, cluster)));
    }
    let store = Arc::new(open_store(&args.run)?);
    let metrics = Arc::new(Metrics::new());
    let source = args
        .pass
        .source_name
        .clone()
        .unwrap_or_else(|| primary.name.clone());
    let watch = Arc::new(Watch::new(
        &source,
        primary_cluster,
        watched,
        options,
        store,
        metrics,
    ));

    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    info!(primary = %primary.name, replicas = replicas.len(), "watching");
    watch.run(shutdown).await.context("job database")?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    info!("signal received: draining (a second signal exits at once)");
    shutdown.cancel();
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    std::process::exit(130);
}
