//! A replica as watch mode keeps it: its own queue and workers, health, what it is known to
//! hold, its prune budget and what is out of step there. One replica down or slow never holds
//! up the others.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Work;
use super::health::Health;
use super::listing::InitialListing;
use super::presence::Presence;
use super::queue::WorkQueue;
use super::tracker::Tracker;
use crate::endpoint::Cluster;
use crate::safety::PruneBudget;

/// One replica of a watch.
pub struct Replica {
    /// Its name.
    pub name: String,
    /// Its client.
    pub cluster: Cluster,
    /// Its work, deduplicated; only its own workers take from it.
    pub(super) queue: WorkQueue<Work>,
    /// Whether it answers.
    pub(super) health: Health,
    /// Objects that may exist there; work on an object known to be missing skips the GET.
    pub(super) present: Presence,
    /// Prunes taken within the window.
    pub(super) budget: PruneBudget,
    /// What is out of step there.
    pub(super) tracker: Tracker,
    /// What its watchers listed at start, until the first full pass takes it.
    pub(super) listing: InitialListing,
    /// Namespaces known to exist there, so object work needs no namespace request.
    namespaces: Mutex<HashSet<String>>,
    /// Objects the source manages there, as of the last full pass.
    managed: AtomicUsize,
    /// Automatic retries made so far, per unit of work.
    retries: Mutex<HashMap<Work, u32>>,
    /// Bumped when its kubeconfig's credentials were re-read: its watchers start again.
    pub(super) credentials: tokio::sync::watch::Sender<u64>,
}

impl Replica {
    /// A replica to watch and write to, counting prunes over `prune_window`, its queue
    /// holding each item back for `coalesce` after its first event.
    pub fn new(name: &str, cluster: Cluster, prune_window: Duration, coalesce: Duration) -> Self {
        Replica {
            name: name.to_string(),
            cluster,
            queue: WorkQueue::with_delay(coalesce),
            health: Health::new(name),
            present: Presence::default(),
            budget: PruneBudget::over(prune_window),
            tracker: Tracker::default(),
            listing: InitialListing::default(),
            namespaces: Mutex::default(),
            managed: AtomicUsize::new(0),
            retries: Mutex::default(),
            credentials: tokio::sync::watch::Sender::new(0),
        }
    }

    pub(super) fn knows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(namespace)
    }

    pub(super) fn learn_namespaces(&self, namespaces: impl IntoIterator<Item = String>) {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(namespaces);
    }

    pub(super) fn managed(&self) -> usize {
        self.managed.load(Ordering::Relaxed)
    }

    pub(super) fn set_managed(&self, count: usize) {
        self.managed.store(count, Ordering::Relaxed);
    }

    /// Counts one more automatic retry of `work`, returning how many were made.
    pub(super) fn count_retry(&self, work: &Work) -> u32 {
        let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        let attempt = retries.entry(work.clone()).or_default();
        *attempt += 1;
        *attempt
    }

    /// Forgets the retries of `work` (it succeeded, or they ran out).
    pub(super) fn forget_retries(&self, work: &Work) {
        self.retries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(work);
    }
}
