//! Watchers of each replica's objects of the synced kinds: what they list at start goes to the
//! first full pass ([`super::listing`]), what they see after queues the objects that drifted
//! from the primary's; and the re-reading of each replica's credentials, which restarts its
//! watchers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::listing::Part;
use super::sources::{apis, pump, reference_of, to_raw, watch_config};
use super::{Replica, Watch, Work};
use crate::diff;
use crate::endpoint::ServedObject;
use crate::kinds::Kind;
use crate::snapshot::{self, Entry, ObjectRef, Prepared, Snapshot};

/// How often each replica's kubeconfig is checked for new credentials.
const CREDENTIALS_POLL: Duration = Duration::from_secs(2);

/// Re-reads a replica's kubeconfig when its content changes (a rotated token written over it,
/// a Secret volume updated): its requests use the new credentials at once, its watchers
/// restart with them.
pub(super) async fn reread_credentials(replica: Arc<Replica>, stop: CancellationToken) {
    let mut every = tokio::time::interval(CREDENTIALS_POLL);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        match replica.cluster.reread_credentials().await {
            Ok(false) => {}
            Ok(true) => {
                info!(replica = %replica.name, "kubeconfig changed: credentials re-read");
                replica
                    .credentials
                    .send_modify(|generation| *generation += 1);
            }
            Err(error) => {
                warn!(replica = %replica.name, %error, "kubeconfig changed but cannot be read; the credentials in use stay");
            }
        }
    }
}

/// Watches a replica's objects of one kind (the `index`-th of its collections), afresh with
/// each new set of credentials. Every object, not only k8s-sync's copies: its listing is what
/// the first full pass plans from, and a copy made by hand is seen as it is made.
pub(super) async fn replica_watcher(
    watch: Arc<Watch>,
    replica: Arc<Replica>,
    kind: &'static Kind,
    index: usize,
    name: String,
    stop: CancellationToken,
) {
    let mut credentials = replica.credentials.subscribe();
    loop {
        credentials.borrow_and_update();
        let apis = apis(&replica.cluster.client(), kind, &watch.pass().scope);
        let Some((_, api)) = apis.into_iter().nth(index) else {
            return;
        };
        tokio::select! {
            () = watch_replica(&watch, &replica, (kind, index), api, &name, &stop) => return,
            changed = credentials.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn watch_replica(
    watch: &Arc<Watch>,
    replica: &Arc<Replica>,
    part: Part,
    api: Api<ServedObject>,
    name: &str,
    stop: &CancellationToken,
) {
    let kind = part.0;
    let events = watcher(api, watch_config()).default_backoff();
    pump(watch, name, events, stop, |event| match event {
        watcher::Event::Apply(object) => {
            if let Some(reference) = reference_of(kind, &object) {
                replica.present.note_present(&reference);
            }
            if replica.listing.wanted() {
                let raw = to_raw(kind, object.clone(), &replica.name);
                replica
                    .listing
                    .update(part, snapshot::prepare(raw, &watch.pass().scope));
            }
            watch.on_replica_object(replica, kind, object);
        }
        watcher::Event::InitApply(object) => {
            if let Some(reference) = reference_of(kind, &object) {
                replica.present.note_present(&reference);
            }
            if replica.listing.wanted() {
                let raw = to_raw(kind, object, &replica.name);
                let mut prepared = snapshot::prepare(raw, &watch.pass().scope);
                if let Ok(Prepared::Object(reference, entry)) = &mut prepared {
                    watch.state.share(reference, entry);
                }
                replica.listing.add(part, prepared);
            }
        }
        watcher::Event::Delete(object) => {
            let Some(reference) = reference_of(kind, &object) else {
                return;
            };
            replica.present.note_absent(&reference);
            replica.listing.remove(part, &reference);
            // A copy deleted by hand: bring it back if the primary still has it (the
            // per-object pass waits while the primary's state is not authoritative).
            if watch.state.contains(&reference) || watch.state.authority(kind).is_err() {
                let now = Instant::now();
                replica.tracker.queued(&reference, now);
                replica.queue.add(Work::Object(reference), now);
            }
        }
        watcher::Event::Init => replica.listing.start(part, &replica.name),
        watcher::Event::InitDone => {
            // Only a leader passes: a copy that does not lead keeps no listing.
            match watch.leading() {
                true => replica.listing.finish(part),
                false => replica.listing.give_up(),
            }
        }
    })
    .await;
}

impl Watch {
    /// Whether the replica's server said before that `have` is what it makes of `want`: a
    /// remembered verdict for this desired key and this resourceVersion.
    fn server_said_in_step(
        &self,
        replica: &str,
        reference: &ObjectRef,
        want: &Entry,
        have: &Entry,
    ) -> bool {
        let Some(identity) = &have.identity else {
            return false;
        };
        matches!(
            self.store.verdict(
                replica,
                reference.kind.id(),
                &reference.namespace,
                &reference.name,
                want.change_key.as_str(),
                &identity.resource_version,
            ),
            Ok(Some(verdict)) if verdict.paths.is_empty()
        )
    }

    /// An event of a replica's object: queue the object when it drifted from the primary's.
    /// The events of k8s-sync's own writes find it in step and cost nothing; those of objects
    /// k8s-sync neither manages nor would copy are no concern of it.
    fn on_replica_object(&self, replica: &Replica, kind: &'static Kind, object: ServedObject) {
        let raw = to_raw(kind, object, &replica.name);
        let Ok(live) = Snapshot::build(&replica.name, [raw], &self.pass().scope) else {
            return;
        };
        let Some((reference, have)) = live.objects.into_iter().next() else {
            return;
        };
        if have.applied.is_none() && !self.state.contains(&reference) {
            return;
        }
        let in_step = self.state.get(&reference).is_some_and(|want| {
            let want = &want;
            let keyed = have
                .applied
                .as_ref()
                .is_some_and(|a| a.change_key == want.change_key);
            let mut paths = Vec::new();
            if want.change_key != have.change_key {
                diff::subset_differences(
                    &want.object(),
                    &have.object(),
                    &mut String::new(),
                    &mut paths,
                );
            }
            keyed
                && (paths.is_empty()
                    || self.server_said_in_step(&replica.name, &reference, want, &have))
        });
        if !in_step {
            let now = Instant::now();
            replica.tracker.queued(&reference, now);
            replica.queue.add(Work::Object(reference), now);
        }
    }
}
