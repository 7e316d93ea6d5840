//! Full passes in watch mode: the first once the primary is listed in full, one after every
//! loss of that (an outage, a relist), one per replica when it answers again, and one every
//! resync interval. Each plans against the primary's state, never a listing of its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::listing::Part;
use super::sources;
use super::{Replica, Watch, Work};
use crate::diff::Deferral;
use crate::endpoint::ListError;
use crate::pass::{self, Focus};
use crate::safety;
use crate::snapshot::{ObjectRef, Snapshot};
use crate::store;

/// How often the first full pass looks again whether a replica's watchers failed while it
/// waits for their listings.
const LISTING_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// How long the first full pass waits for every watcher of a replica to start its listing.
const LISTING_START: std::time::Duration = std::time::Duration::from_secs(10);

impl Watch {
    /// Runs a full pass whenever the primary's state becomes complete: first at start, then
    /// after every loss of completeness, however short.
    pub(super) async fn coordinate(self: Arc<Self>, stop: CancellationToken) {
        let mut covered: Option<u64> = None;
        loop {
            let woken = self.authority_changed.notified();
            let losses = self.losses.load(Ordering::Acquire);
            let due = covered != Some(losses) && self.state.complete().is_ok() && self.leading();
            if !due {
                tokio::select! {
                    () = woken => continue,
                    () = stop.cancelled() => return,
                }
            }
            if covered.is_some() {
                info!("the primary is listed in full again: full pass to catch up");
            }
            if let Err(error) = self.full_pass().await {
                warn!(%error, "job database error in a full pass");
            }
            covered = Some(losses);
            self.first_pass_done.store(true, Ordering::Release);
            // Namespaces the namespace watcher saw before this point and the pass did not
            // cover (empty ones listed after its snapshot); from now on it queues them itself.
            for replica in &self.replicas {
                for namespace in self.state.namespaces() {
                    if !replica.knows_namespace(&namespace) {
                        replica
                            .queue
                            .add(Work::Namespace(namespace), Instant::now());
                    }
                }
            }
        }
    }

    /// A full pass every resync interval.
    pub(super) async fn resync_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.options.resync);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = stop.cancelled() => return,
            }
            if !self.first_pass_done.load(Ordering::Acquire) || !self.leading() {
                continue;
            }
            info!("resync: full pass");
            if let Err(error) = self.full_pass().await {
                warn!(%error, "job database error in a resync");
            }
        }
    }

    /// Plans every replica that answers against the primary's state and applies, each replica
    /// in a task of its own: planning is work for a core, and one replica's need not wait for
    /// another's.
    pub(super) async fn full_pass(self: &Arc<Self>) -> Result<(), store::Error> {
        let timer = self.metrics.pass_seconds.start_timer();
        let started = Instant::now();
        let desired = Arc::new(self.state.snapshot());
        let mut passes = tokio::task::JoinSet::new();
        for replica in self.replicas.iter().filter(|r| r.health.is_up()) {
            let (watch, replica, desired) = (self.clone(), replica.clone(), desired.clone());
            passes.spawn(async move { watch.sync_whole(&replica, &desired, started).await });
        }
        while let Some(result) = passes.join_next().await {
            result.expect("a full pass does not panic")?;
        }
        timer.observe_duration();
        Ok(())
    }

    /// A replica answers again: what queued up for it is covered by a full pass of it, after
    /// which its workers resume.
    pub(super) async fn catch_up(&self, replica: &Replica) -> Result<(), store::Error> {
        if !self.leading() {
            // The full pass that starts a leadership covers this replica.
            replica.queue.drain();
            replica.health.up();
            return Ok(());
        }
        replica.health.catching_up();
        let started = Instant::now();
        let drained = replica.queue.drain();
        let desired = self.state.snapshot();
        if self.sync_whole(replica, &desired, started).await? {
            replica.health.up();
        } else {
            let now = Instant::now();
            for work in drained {
                replica.queue.add(work, now);
            }
        }
        Ok(())
    }

    /// A full pass of one replica against `desired`. Returns whether the replica could be
    /// read; one that cannot is marked down, and its probe catches it up later.
    async fn sync_whole(
        &self,
        replica: &Replica,
        desired: &Snapshot,
        started: Instant,
    ) -> Result<bool, store::Error> {
        let pass = self.pass();
        let scope = &pass.scope;
        let listed = match self.first_listing(replica, desired).await {
            Some(listed) => Ok(listed),
            None => {
                replica
                    .cluster
                    .snapshot(&replica.name, scope, true, Some(desired))
                    .await
            }
        };
        let (live, names) = match listed {
            Ok(listed) => listed,
            Err(ListError::Cluster(error)) => {
                replica.health.down(&format!("{error:#}"));
                return Ok(false);
            }
            Err(ListError::Snapshot(error)) => {
                warn!(replica = %replica.name, %error, "cannot read the replica's objects");
                return Ok(false);
            }
        };
        replica.learn_namespaces(names);
        // The pass creates what the replica lacks; failures only cost a GET later.
        replica
            .present
            .note_listed(live.objects.keys().chain(desired.objects.keys()).cloned());
        let managed = safety::managed(desired, &live);
        replica.set_managed(managed);

        let recorded = pass.recorded(desired);
        // The store may move on while the replica is read: objects whose state changed since
        // `desired` was taken are queued already, and their own pass applies the newer state.
        let current = |reference: &ObjectRef| {
            self.state.change_key(reference) == desired.objects.get(reference).map(|e| e.change_key)
        };
        let (plan, report) = pass::run(
            &replica.cluster,
            desired,
            &live,
            &pass,
            Focus::Current(&current),
            self.safety(replica, Some(managed)),
            self.journal(&recorded),
        )
        .await?;
        replica.learn_namespaces(plan.missing_namespaces.iter().cloned());
        replica.tracker.passed(&plan, &report, None, started);
        self.schedule_delayed(replica, &plan);
        // Writes held back by the leader fence say nothing of the replica.
        if report.interrupted > 0 && self.leading() {
            replica
                .health
                .down("writes got no answer during a full pass");
        }
        let figures = replica.tracker.figures();
        self.metrics.record_pass(&report, figures.drifted);
        Ok(report.interrupted == 0)
    }

    /// The replica as its watchers listed it at start and saw it since, with its namespaces,
    /// for the first full pass ([`super::listing`]). `None` when that listing is taken already or cannot
    /// complete (a watcher failed, the replica went down): then the replica is listed.
    async fn first_listing(
        &self,
        replica: &Replica,
        desired: &Snapshot,
    ) -> Option<(Snapshot, Vec<String>)> {
        if !replica.listing.wanted() {
            return None;
        }
        let scope = &self.pass().scope;
        let client = replica.cluster.client();
        let parts: Vec<Part> = scope
            .listed_kinds()
            .flat_map(|kind| (0..sources::apis(&client, kind, scope).len()).map(move |i| (kind, i)))
            .collect();
        let waiting = Instant::now();
        while !replica.listing.complete(&parts) {
            // A watcher starts its listing as soon as it runs: one that has not after a while
            // is not there to list.
            let unstarted = waiting.elapsed() > LISTING_START && !replica.listing.started(&parts);
            if unstarted || !replica.health.is_up() || self.watcher_failing(&replica.name) {
                replica.listing.give_up();
                return None;
            }
            replica.listing.progressed(LISTING_CHECK).await;
        }
        let mut live = replica.listing.take(&parts)?;
        let names = replica.cluster.namespace_names().await.ok()?;
        for namespace in &names {
            live.add_namespace(namespace, scope);
        }
        live.share_with(desired);
        info!(replica = %replica.name, objects = live.objects.len(), "first pass: the replica as its watchers listed it");
        Some((live, names))
    }

    /// Queues each delayed prune of `plan` for when it is due.
    pub(super) fn schedule_delayed(&self, replica: &Replica, plan: &crate::diff::Plan) {
        for change in &plan.changes {
            let Some(Deferral::Delayed { due }) = change.deferral else {
                continue;
            };
            let wait = due.duration_since(jiff::Timestamp::now()).unsigned_abs();
            let work = Work::Object(change.reference());
            let queue_of = replica.name.clone();
            let replicas = self.replicas.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Some(replica) = replicas.iter().find(|r| r.name == queue_of) {
                    replica.queue.add(work, Instant::now());
                }
            });
        }
    }
}
