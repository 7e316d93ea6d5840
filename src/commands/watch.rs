//! `watch`: the continuous mode, with the HTTP API and metrics beside it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_sync::api::{self, Api, Driver, Server};
use k8s_sync::endpoint::{Connected, own_namespace};
use k8s_sync::lease::{Leadership, LeaseOptions};
use k8s_sync::metrics::Metrics;
use k8s_sync::watch::{Replica, Watch, WatchOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Output;
use super::context::{endpoints, pass_options};
use super::open_store;
use super::signals::StopSignals;
use crate::cli::{ElectionArgs, WatchArgs};

pub async fn run(args: WatchArgs, _output: &Output) -> anyhow::Result<ExitCode> {
    let mut pass = pass_options(&args.pass, Some(&args.run), false);
    // A replica that stops answering mid-write is caught up when it is back.
    pass.apply.pending_when_unreachable = true;
    let options = WatchOptions {
        pass,
        resync: args.resync_interval,
        shutdown_timeout: args.shutdown_timeout,
        auto_retries: args.auto_retries,
        coalesce: std::time::Duration::from_millis(50),
        probe_interval: args.probe_interval,
        prune_window: args.max_prune_window,
    };
    let (primary, mut replicas) = endpoints(&args.pass)?;
    let shard = args.election.shard;
    replicas.retain(|replica| shard.owns(&replica.name));
    if replicas.is_empty() {
        warn!(%shard, "no replica is in this shard: this copy syncs nothing");
    }
    let leadership = leadership(&args.election)?;
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
        watched.push(Arc::new(Replica::new(
            &replica.name,
            cluster.with_fence(leadership.fence()),
            options.prune_window,
            options.coalesce,
        )));
    }
    let store = Arc::new(open_store(&args.run.db)?);
    let metrics = Arc::new(Metrics::new());
    metrics.track_requests(&primary.name, primary_cluster.requests().clone());
    for replica in &watched {
        metrics.track_requests(&replica.name, replica.cluster.requests().clone());
    }
    let watch = Arc::new(
        Watch::new(
            &primary.name,
            args.pass.source_name.clone(),
            primary_cluster,
            watched,
            options,
            store.clone(),
            metrics.clone(),
        )
        .with_leadership(leadership),
    );

    // The same server as `serve`; ready only while the replicas are in step with an
    // authoritative primary state.
    let authenticator = super::serve::authenticator(&store, args.server.token_ttl).await?;
    let ready = watch.clone();
    let service = Api::new(
        store,
        metrics,
        authenticator,
        tokio::runtime::Handle::current(),
    )
    .with_driver(Driver::Watch(watch.clone()))
    .with_readiness(Arc::new(move || ready.readiness()));
    let listen = args.server.listen;
    let server = Server::start(listen, api::WORKERS, Arc::new(service))
        .with_context(|| format!("listening on {listen}"))?;
    info!("listening on http://{}", server.local_addr());

    let shutdown = CancellationToken::new();
    tokio::spawn(drain_on_signal(StopSignals::listen()?, shutdown.clone()));
    info!(primary = %primary.name, replicas = replicas.len(), "watching");
    let mut running = tokio::spawn(watch.run(shutdown.clone()));
    let outcome = tokio::select! {
        result = &mut running => result.context("watch mode stopped unexpectedly")?.context("job database"),
        reason = server.failed() => {
            shutdown.cancel();
            let _ = running.await;
            Err(anyhow::anyhow!("the HTTP server stopped accepting connections: {reason}"))
        }
    };
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .context("stopping the HTTP server")?;
    outcome?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// No election unless `--leader-elect`; else one on the shard's own Lease.
fn leadership(args: &ElectionArgs) -> anyhow::Result<Arc<Leadership>> {
    if !args.leader_elect {
        return Ok(Leadership::sole());
    }
    if args.renew_deadline >= args.lease_duration {
        bail!(
            "--renew-deadline must be shorter than --lease-duration: the leader stops writing before another copy may take the lease"
        );
    }
    if args.retry_period >= args.renew_deadline {
        bail!(
            "--retry-period must be shorter than --renew-deadline: the leader renews several times before it gives up"
        );
    }
    let name = if args.shard.count > 1 {
        format!(
            "{}-shard-{}-of-{}",
            args.lease_name, args.shard.index, args.shard.count
        )
    } else {
        args.lease_name.clone()
    };
    let identity = args
        .lease_identity
        .clone()
        .or_else(|| args.pod_name.clone())
        .unwrap_or_else(|| format!("{}_{}", host_name(), std::process::id()));
    Ok(Leadership::elect(LeaseOptions {
        name,
        namespace: args
            .lease_namespace
            .clone()
            .or_else(own_namespace)
            .unwrap_or_else(|| "k8s-sync".to_string()),
        identity,
        duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
        pod: args.pod_name.clone(),
    }))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "k8s-sync".to_string())
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn drain_on_signal(mut signals: StopSignals, shutdown: CancellationToken) {
    signals.next().await;
    info!("signal received: draining (a second signal exits at once)");
    shutdown.cancel();
    signals.next().await;
    std::process::exit(130);
}
