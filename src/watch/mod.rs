//! Watch mode: a full pass on start and every resync interval, and in between, watch events of
//! the primary (and of the replicas' managed objects) turned into per-object passes by workers.
//!
//! ```text
//! primary watchers ──normalize, key──▶ primary cache ──changed?──▶ WorkQueue ──▶ workers
//! replica watchers (managed label) ───drifted?──────────────────▶     │           │
//!                                                                      └── the same plan and apply path as `apply`
//! ```

mod presence;
pub mod queue;
mod sources;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::{self, Progress, Report, Sinks};
use crate::diff::Plan;
use crate::endpoint::Cluster;
use crate::metrics::Metrics;
use crate::pass::PassOptions;
use crate::retry::RetryPolicy;
use crate::snapshot::{Entry, ObjectRef, RawObject, Snapshot};
use crate::store::{NewJob, Operation, Store};
use presence::Presence;

pub use queue::WorkQueue;

/// How watch mode runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// What a pass looks at and how it applies.
    pub pass: PassOptions,
    /// Time between full passes.
    pub resync: Duration,
    /// How long in-flight writes may take to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// How often a failed change is retried automatically before it stays failed.
    pub auto_retries: u32,
    /// How long after an object's first event its work waits, so a burst of updates to it is
    /// written once, at its latest state.
    pub coalesce: Duration,
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Bring one object in step on every replica.
    Object(ObjectRef),
    /// Make sure a namespace exists on every replica.
    Namespace(String),
}

/// The state of one watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "lowercase")]
pub enum WatcherState {
    /// Listing for the first time.
    Starting,
    /// Receiving events.
    Running,
    /// Lost its stream; retrying with backoff.
    Recovering(String),
}

/// What watch mode shows the API: readiness and each watcher's state.
#[derive(Debug, Default)]
pub struct WatchStatus {
    first_pass_done: AtomicBool,
    watchers: Mutex<BTreeMap<String, WatcherState>>,
}

impl WatchStatus {
    /// Ready once the first full pass is done and every watcher runs.
    pub fn ready(&self) -> bool {
        self.first_pass_done.load(Ordering::Acquire)
            && self
                .lock()
                .values()
                .all(|state| *state == WatcherState::Running)
    }

    /// Every watcher (`cluster/kind`) and its state.
    pub fn watchers(&self) -> BTreeMap<String, WatcherState> {
        self.lock().clone()
    }

    fn set(&self, watcher: &str, state: WatcherState) {
        self.lock().insert(watcher.to_string(), state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, WatcherState>> {
        self.watchers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A replica as watch mode keeps it.
pub struct Replica {
    /// Its name.
    pub name: String,
    /// Its client.
    pub cluster: Cluster,
    /// Namespaces known to exist there, so object work needs no namespace request.
    namespaces: Mutex<HashSet<String>>,
    /// Set while it cannot be reached; a probe then brings it back with a full pass.
    unreachable: AtomicBool,
    /// Objects that may exist there; work on an object known to be missing skips the GET.
    present: Presence,
}

impl Replica {
    /// A replica to watch and write to.
    pub fn new(name: &str, cluster: Cluster) -> Self {
        Replica {
            name: name.to_string(),
            cluster,
            namespaces: Mutex::default(),
            unreachable: AtomicBool::new(false),
            present: Presence::default(),
        }
    }

    fn knows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(namespace)
    }

    fn learn_namespaces(&self, namespaces: impl IntoIterator<Item = String>) {
        self.namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(namespaces);
    }
}

/// Watch mode, ready to run.
pub struct Watch {
    source: String,
    primary: Cluster,
    replicas: Vec<Arc<Replica>>,
    options: WatchOptions,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    status: Arc<WatchStatus>,
    queue: WorkQueue<Work>,
    /// The primary's objects, normalized and keyed, as the latest event or list showed them.
    cache: RwLock<HashMap<ObjectRef, Entry>>,
    /// Automatic retries made so far, per unit of work.
    retries: Mutex<HashMap<Work, u32>>,
}

/// Progress of watch mode: log lines.
struct LogProgress;

impl Progress for LogProgress {
    fn started(&self, _: &str, _: usize) {}

    fn finished(
        &self,
        replica: &str,
        change: &crate::diff::Change,
        result: &Result<apply::Done, String>,
        elapsed: Duration,
    ) {
        let reference = change.reference();
        match result {
            Ok(done) => {
                info!(%replica, object = %reference, ?done, ms = elapsed.as_millis() as u64, "applied")
            }
            Err(error) => warn!(%replica, object = %reference, %error, "failed"),
        }
    }

    fn completed(&self, report: &Report) {
        if let Some(error) = &report.error {
            warn!(replica = %report.replica, %error, "replica unavailable");
        }
    }
}

impl Watch {
    /// Watch mode from the primary (whose objects are named `source` in annotations) to
    /// `replicas`.
    pub fn new(
        source: &str,
        primary: Cluster,
        replicas: Vec<Arc<Replica>>,
        options: WatchOptions,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Updates arriving within `coalesce` of an object's first event gather on one item.
        let queue = WorkQueue::with_delay(options.coalesce);
        Watch {
            source: source.to_string(),
            primary,
            replicas,
            options,
            store,
            metrics,
            status: Arc::default(),
            queue,
            cache: RwLock::default(),
            retries: Mutex::default(),
        }
    }

    /// Readiness and watcher states, for the API.
    pub fn status(&self) -> Arc<WatchStatus> {
        self.status.clone()
    }

    fn sinks(&self) -> Sinks<'_> {
        Sinks {
            store: &self.store,
            metrics: &self.metrics,
            progress: &LogProgress,
        }
    }

    /// Runs until `shutdown` is cancelled: full pass, watchers, workers, resyncs. Then stops
    /// taking events, lets in-flight work finish within the shutdown timeout, and records what
    /// was left as pending jobs for the next start.
    pub async fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<(), crate::store::Error> {
        let reset = self.store.reset_running()?;
        if reset > 0 {
            info!(
                jobs = reset,
                "jobs interrupted by the last shutdown are pending again"
            );
        }
        let stop_sources = shutdown.child_token();
        tokio::select! {
            result = self.full_pass() => result?,
            () = shutdown.cancelled() => return Ok(()),
        }
        self.status.first_pass_done.store(true, Ordering::Release);

        let mut tasks = tokio::task::JoinSet::new();
        sources::spawn(&self, &mut tasks, &stop_sources);
        let workers: Vec<_> = (0..self.options.pass.apply.workers.max(1))
            .map(|_| tokio::spawn(self.clone().work()))
            .collect();
        let resync = tokio::spawn(self.clone().resync_loop(stop_sources.clone()));
        let status = self.status.clone();
        tasks.spawn(async move {
            while !status.ready() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            info!("ready: first pass done, every watcher running");
        });

        shutdown.cancelled().await;
        info!("shutting down: no new events; finishing writes in flight");
        stop_sources.cancel();
        resync.abort();
        tasks.abort_all();
        let left = self.queue.close();
        self.record_pending(&left)?;
        let finished = tokio::time::timeout(
            self.options.shutdown_timeout,
            futures::future::join_all(workers),
        )
        .await;
        if finished.is_err() {
            warn!(timeout = ?self.options.shutdown_timeout, "writes still in flight were cut off; their jobs are pending for the next start");
        }
        Ok(())
    }

    /// Lists the primary, refreshes the cache, and syncs every replica.
    async fn full_pass(&self) -> Result<(), crate::store::Error> {
        let timer = self.metrics.pass_seconds.start_timer();
        let listing = match self.primary.list(&self.options.pass.scope).await {
            Ok(listing) => listing,
            Err(error) => {
                warn!(%error, "cannot list the primary; the next resync tries again");
                return Ok(());
            }
        };
        let desired = match Snapshot::build(&self.source, listing.objects, &self.options.pass.scope)
        {
            Ok(desired) => desired,
            Err(error) => {
                warn!(%error, "cannot build the primary's snapshot");
                return Ok(());
            }
        };
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) =
            desired.objects.clone().into_iter().collect();
        let passes = self
            .replicas
            .iter()
            .map(|replica| self.sync_whole(replica, &desired));
        for result in futures::future::join_all(passes).await {
            result?;
        }
        timer.observe_duration();
        Ok(())
    }

    /// A full pass of one replica against `desired`.
    async fn sync_whole(
        &self,
        replica: &Replica,
        desired: &Snapshot,
    ) -> Result<Report, crate::store::Error> {
        let scope = &self.options.pass.scope;
        let live = match replica.cluster.list(scope).await {
            Ok(listing) => {
                let names = listing.namespaces.clone();
                let mut live = match Snapshot::build(&replica.name, listing.objects, scope) {
                    Ok(live) => live,
                    Err(error) => {
                        return apply::fail_unreachable(
                            &replica.name,
                            desired,
                            &error.to_string(),
                            self.sinks(),
                        );
                    }
                };
                for namespace in &names {
                    live.add_namespace(namespace, scope);
                }
                replica.learn_namespaces(names);
                // The pass creates what the replica lacks; failures only cost a GET later.
                replica
                    .present
                    .note_listed(live.objects.keys().chain(desired.objects.keys()).cloned());
                live
            }
            Err(error) => {
                replica.unreachable.store(true, Ordering::Release);
                return apply::fail_unreachable(
                    &replica.name,
                    desired,
                    &format!("{error:#}"),
                    self.sinks(),
                );
            }
        };
        replica.unreachable.store(false, Ordering::Release);
        let (_, report) = self.plan_and_apply(replica, desired, &live).await?;
        Ok(report)
    }

    /// Plans `desired` against `live` on `replica` and applies the plan; the namespaces it
    /// created are known to exist there from then on.
    async fn plan_and_apply(
        &self,
        replica: &Replica,
        desired: &Snapshot,
        live: &Snapshot,
    ) -> Result<(Plan, Report), crate::store::Error> {
        let plan = Plan::new(&replica.name, desired, live, self.options.pass.plan);
        let report = apply::apply(
            &replica.cluster,
            &plan,
            desired,
            live,
            self.sinks(),
            &self.options.pass.apply,
        )
        .await?;
        replica.learn_namespaces(plan.missing_namespaces.iter().cloned());
        Ok((plan, report))
    }

    async fn resync_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.options.resync);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = stop.cancelled() => return,
            }
            info!("resync: full pass");
            if let Err(error) = self.full_pass().await {
                warn!(%error, "resync failed");
            }
        }
    }

    /// A worker: takes work until the queue closes.
    async fn work(self: Arc<Self>) {
        while let Some((work, seen)) = self.queue.take().await {
            self.metrics.queue_depth.set(self.queue.len() as i64);
            let ok = match &work {
                Work::Namespace(namespace) => self.ensure_namespace(namespace).await,
                Work::Object(reference) => self.sync_object(reference, seen).await,
            };
            self.queue.done(&work);
            if ok {
                self.retries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&work);
            } else {
                self.retry_later(work);
            }
        }
    }

    /// Queues failed work again after a backoff, a bounded number of times.
    fn retry_later(self: &Arc<Self>, work: Work) {
        let attempt = {
            let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
            let attempt = retries.entry(work.clone()).or_default();
            *attempt += 1;
            *attempt
        };
        if attempt > self.options.auto_retries {
            warn!(
                ?work,
                "giving up after automatic retries; the job stays failed for /retry"
            );
            self.retries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&work);
            return;
        }
        let delay = RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            ..RetryPolicy::default()
        }
        .delay(attempt, None);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.queue.add(work, Instant::now());
        });
    }

    async fn ensure_namespace(&self, namespace: &str) -> bool {
        let mut ok = true;
        for replica in &self.replicas {
            if replica.knows_namespace(namespace) {
                continue;
            }
            match replica
                .cluster
                .ensure_namespace(namespace, self.options.pass.apply.dry_run)
                .await
            {
                Ok(()) => replica.learn_namespaces([namespace.to_string()]),
                Err(error) => {
                    warn!(replica = %replica.name, %namespace, %error, "cannot create namespace");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Brings one object in step on every replica. Returns false when some replica failed.
    async fn sync_object(self: &Arc<Self>, reference: &ObjectRef, seen: Instant) -> bool {
        let entry = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(reference)
            .cloned();
        let mut desired = Snapshot {
            source: self.source.clone(),
            ..Snapshot::default()
        };
        if let Some(entry) = entry {
            desired.namespaces.insert(reference.namespace.clone());
            desired.objects.insert(reference.clone(), entry);
        }
        let passes = self
            .replicas
            .iter()
            .map(|replica| self.sync_object_on(replica, reference, &desired, seen));
        futures::future::join_all(passes)
            .await
            .into_iter()
            .all(|ok| ok)
    }

    async fn sync_object_on(
        &self,
        replica: &Replica,
        reference: &ObjectRef,
        desired: &Snapshot,
        seen: Instant,
    ) -> bool {
        let scope = &self.options.pass.scope;
        let fail = |error: String| {
            replica.unreachable.store(true, Ordering::Release);
            if let Err(e) = apply::fail_unreachable(&replica.name, desired, &error, self.sinks()) {
                warn!(%e, "cannot record a failed job");
            }
            false
        };
        let wanted = desired.objects.contains_key(reference);
        // Without adoption, a copy the listing missed must be seen before anything is written.
        let known_missing =
            wanted && self.options.pass.plan.adopt && replica.present.lacks(reference);
        let current = if known_missing {
            None
        } else {
            match replica
                .cluster
                .get(reference.kind, &reference.namespace, &reference.name)
                .await
            {
                Ok(current) => current,
                Err(error) => return fail(format!("{error:#}")),
            }
        };
        let found = current.is_some();
        let raw = current.map(|value| RawObject {
            value,
            origin: replica.name.clone(),
            archived: None,
        });
        let mut live = match Snapshot::build(&replica.name, raw, scope) {
            Ok(live) => live,
            Err(error) => return fail(error.to_string()),
        };
        if replica.knows_namespace(&reference.namespace) {
            live.namespaces.insert(reference.namespace.clone());
        }
        match self.plan_and_apply(replica, desired, &live).await {
            Ok((plan, report)) => {
                if wanted {
                    // Written, or failed and then worth a GET before the next attempt.
                    replica.present.note_present(reference);
                } else if !found || report.failed == 0 && plan.summary.prune > 0 {
                    replica.present.note_absent(reference);
                }
                if plan.summary.drift() > 0 && report.failed == 0 {
                    self.metrics
                        .propagation_seconds
                        .with_label_values(&[&replica.name])
                        .observe(seen.elapsed().as_secs_f64());
                }
                report.failed == 0
            }
            Err(error) => {
                warn!(%error, "job database error");
                false
            }
        }
    }

    /// Records work that never ran as pending jobs, one per replica, for the next start.
    fn record_pending(&self, left: &[Work]) -> Result<(), crate::store::Error> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        for work in left {
            let Work::Object(reference) = work else {
                continue;
            };
            // A deletion has no desired object: the next start's full pass prunes it.
            let Some(entry) = cache.get(reference) else {
                continue;
            };
            for replica in &self.replicas {
                self.store.begin(&NewJob {
                    replica: &replica.name,
                    kind: reference.kind.kind,
                    namespace: &reference.namespace,
                    name: &reference.name,
                    operation: Operation::Apply,
                    change_key: entry.change_key.as_str(),
                    action: "sync",
                })?;
            }
        }
        if !left.is_empty() {
            info!(items = left.len(), "queued work recorded as pending");
        }
        Ok(())
    }
}
