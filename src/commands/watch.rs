//! `watch`: the continuous mode, with the HTTP API and metrics beside it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use k8s_sync::accounts::{Accounts, SecretAccounts};
use k8s_sync::api::{Api, Driver};
use k8s_sync::endpoint::served::{self, Selection};
use k8s_sync::endpoint::{Connected, own_namespace};
use k8s_sync::lease::{Leadership, LeaseOptions};
use k8s_sync::metrics::Metrics;
use k8s_sync::store::Store;
use k8s_sync::watch::{Replica, Watch, WatchOptions};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Output;
use super::context::{endpoints, pass_options};
use super::listeners::Listeners;
use super::open_store;
use super::signals::StopSignals;
use crate::cli::{ElectionArgs, WatchArgs};

pub async fn run(args: WatchArgs, _output: &Output) -> anyhow::Result<ExitCode> {
    // A bcrypt run: made while the clusters are connected, not after.
    let authenticator = tokio::spawn(super::listeners::authenticator(args.server.token_ttl));
    let mut pass = pass_options(&args.pass, Some(&args.run), false);
    // A replica that stops answering mid-write is caught up when it is back.
    pass.apply.pending_when_unreachable = true;
    let selection = Selection {
        kinds: args.pass.scope.selection(),
        sync_crds: args.pass.scope.sync_crds,
    };
    let mut options = WatchOptions {
        selection: selection.clone(),
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
    if selection.kinds.needs_discovery() {
        // Resolved now when the primary answers, so that a name it does not serve stops the
        // start; else watch mode resolves it once the primary answers (nothing syncs before).
        let connected = Connected::Cluster(primary_cluster.clone());
        match served::resolve(&mut options.pass.scope, &selection, &connected, &[]).await {
            Ok(()) => {}
            Err(error @ k8s_sync::endpoint::Error::Select(_)) => {
                return Err(anyhow::Error::new(error).context(format!("primary {}", primary.name)));
            }
            Err(error) => {
                warn!(primary = %primary.name, error = %format!("{error:#}"), "the primary does not answer discovery yet: the synced kinds wait for it");
            }
        }
    }
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
    let primary_client = primary_cluster.client();
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

    let shutdown = CancellationToken::new();
    let accounts = accounts(
        &args.election,
        &lease_namespace(&args.election),
        &primary_client,
        &store,
        &shutdown,
    )
    .await?;

    // The same server as `serve`; ready only while the replicas are in step with an
    // authoritative primary state.
    let authenticator = authenticator.await.context("preparing password checks")??;
    let ready = watch.clone();
    let mut service = Api::new(
        store,
        metrics,
        authenticator,
        tokio::runtime::Handle::current(),
    )
    .with_driver(Driver::Watch(watch.clone()))
    .with_readiness(Arc::new(move || ready.readiness()));
    if let Some(shared) = accounts {
        service = service.with_accounts(shared);
    }
    // The API never stops replication: an address that cannot be bound is tried again.
    let listeners = Listeners::start(&args.server, Arc::new(service), true).await?;

    tokio::spawn(drain_on_signal(StopSignals::listen()?, shutdown.clone()));
    info!(primary = %primary.name, replicas = replicas.len(), "watching");
    let outcome = watch.run(shutdown.clone()).await.context("job database");
    listeners.shutdown().await;
    outcome?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Where the API's users, sessions and audit trail live: in the job database of a copy that
/// runs alone (`None`); with an election, in a Secret beside the Lease that every copy
/// watches, so that they outlive a change of leader. The first user is made from `K8S_SYNC_ADMIN_PASSWORD` once
/// the Secret has been read; the API waits for that at most [`ACCOUNTS_WAIT`], since the
/// primary may be down at start and the API must answer then.
async fn accounts(
    args: &ElectionArgs,
    namespace: &str,
    client: &kube::Client,
    store: &Arc<Store>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Arc<dyn Accounts>>> {
    if !args.leader_elect {
        super::listeners::first_user(store.clone()).await?;
        return Ok(None);
    }
    let shared = Arc::new(SecretAccounts::new(
        client.clone(),
        namespace,
        tokio::runtime::Handle::current(),
    ));
    info!(secret = %shared.secret(), "the API's users and sessions are shared by the copies");
    tokio::spawn(shared.clone().run(shutdown.clone()));
    let first = shared.clone();
    let mut made = tokio::spawn(async move {
        first.loaded().await;
        if let Err(error) = super::listeners::first_user(first.clone()).await {
            error!("{error:#}");
        }
    });
    if tokio::time::timeout(ACCOUNTS_WAIT, &mut made)
        .await
        .is_err()
    {
        warn!(
            secret = %shared.secret(),
            "the API's accounts are not read yet: logins answer 503 until they are"
        );
    }
    Ok(Some(shared))
}

/// How long the API waits for the shared accounts before it starts.
const ACCOUNTS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
        namespace: lease_namespace(args),
        identity,
        duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
        pod: args.pod_name.clone(),
    }))
}

/// `--lease-namespace`, else the namespace k8s-sync runs in, else `k8s-sync`.
fn lease_namespace(args: &ElectionArgs) -> String {
    args.lease_namespace
        .clone()
        .or_else(own_namespace)
        .unwrap_or_else(|| "k8s-sync".to_string())
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
