//! Whether each cluster answers: a probe of the primary (and its identity, until known) and of
//! each replica, every probe interval. The primary's failure makes every kind wait; its first
//! answer after one makes every watcher list again. A replica's first answer after an outage
//! catches it up with a full pass.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::health::Health;
use super::{Replica, Watch};
use crate::endpoint::Cluster;

/// Asks `cluster` whether it answers within `interval`, recording its version in `health` when
/// it does; returns why not when it does not.
async fn ask(cluster: &Cluster, health: &Health, interval: Duration) -> Option<String> {
    match tokio::time::timeout(interval, cluster.probe()).await {
        Ok(Ok(version)) => {
            health.answered(version);
            None
        }
        Ok(Err(error)) => Some(format!("{error:#}")),
        Err(_) => Some(format!("no answer within {interval:?}")),
    }
}

/// Asks the primary whether it answers every probe interval. Its identity is asked for until
/// known. A failure makes every kind wait; the first answer after one makes every watcher list
/// again.
pub(super) async fn primary_probe(watch: Arc<Watch>, stop: CancellationToken) {
    let interval = watch.options.probe_interval;
    loop {
        let problem = ask(&watch.primary, &watch.primary_health, interval).await;
        match (problem, watch.state.unreachable()) {
            (Some(problem), None) => {
                watch.primary_health.down(&problem);
                watch.state.set_unreachable(Some(problem));
                watch.losses.fetch_add(1, Ordering::AcqRel);
                watch.authority_changed.notify_waiters();
            }
            (None, Some(_)) => {
                watch.primary_health.up();
                watch.state.set_unreachable(None);
                watch.relist.send_modify(|generation| *generation += 1);
            }
            _ => {}
        }
        if watch.state.source().is_none() && watch.state.unreachable().is_none() {
            match watch.primary.identity().await {
                Ok(identity) => {
                    info!(source = %identity, "the primary's identity");
                    watch.state.set_identity(identity);
                    watch.authority_changed.notify_waiters();
                }
                Err(error) => warn!(%error, "cannot learn the primary's identity"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Asks a replica whether it answers every probe interval; once it answers after an outage, a
/// full pass of it catches up on everything it missed, and its workers resume.
pub(super) async fn replica_probe(
    watch: Arc<Watch>,
    replica: Arc<Replica>,
    stop: CancellationToken,
) {
    let interval = watch.options.probe_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let problem = ask(&replica.cluster, &replica.health, interval).await;
        match (problem, replica.health.is_up()) {
            (Some(problem), _) => {
                replica.health.down(&problem);
            }
            (None, false) => {
                if let Err(error) = watch.catch_up(&replica).await {
                    warn!(%error, "job database error");
                }
            }
            (None, true) => {}
        }
    }
}
