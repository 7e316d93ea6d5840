//! Watch mode: the primary's state kept by list+watch, full passes against it (at start, after
//! every outage, every resync interval), and in between per-object passes by each replica's
//! own workers, all through the one plan-and-apply path ([`crate::pass`]).
//!
//! ```text
//! primary watchers ──Init/InitApply/InitDone, Apply, Delete──▶ PrimaryState (authoritative?)
//!        │ changed objects                                          │
//!        ▼                                                          ▼
//! per replica: WorkQueue ──▶ workers ──▶ pass::run ◀── full passes (start, catch-up, resync)
//!        ▲
//! replica watchers (their first listing feeds the first full pass), probes (primary and replicas)
//! ```

mod health;
mod kinds;
mod listing;
mod object;
mod presence;
mod primary;
mod probes;
pub mod queue;
mod replica;
mod replica_watchers;
mod resync;
mod sources;
mod status;
mod tracker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::{self, Journal, Progress};
use crate::endpoint::Cluster;
use crate::endpoint::served::Selection;
use crate::lease::Leadership;
use crate::metrics::Metrics;
use crate::pass::{PassOptions, RecordedOptions, Safety, job_object};
use crate::report::Report;
use crate::snapshot::ObjectRef;
use crate::store::{self, Job, JobFilter, NewJob, Operation, Status, Store};
use health::Health;

pub use primary::{Collection, PrimaryState};
pub use queue::WorkQueue;
pub use replica::Replica;

/// How long before a replica's token expires watch mode starts warning of it.
const EXPIRY_WARNING: jiff::SignedDuration = jiff::SignedDuration::from_hours(48);

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
    /// How often each cluster is asked whether it answers, and how long it may take.
    pub probe_interval: Duration,
    /// The window over which `--max-prune` counts a replica's prunes.
    pub prune_window: Duration,
    /// What `--kinds` and `--sync-crds` ask for: when that needs the primary's discovery, the
    /// synced kinds follow what it serves (a CRD created later is picked up).
    pub selection: Selection,
}

/// One unit of work for one replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Bring one object in step.
    Object(ObjectRef),
    /// Make sure a namespace exists.
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
    /// A replica's watcher of a resource the replica does not serve (a custom resource whose
    /// CRD it lacks): it holds none of k8s-sync's objects of it, so readiness does not wait for
    /// it; retried with backoff, and running once the CRD is there.
    Unserved,
}

/// An operation of the API that watch mode cannot do now.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The job or replica is not this process's.
    #[error("{0}")]
    NotHere(String),
    /// The primary's state may not drive writes now.
    #[error("{0}")]
    NotAuthoritative(String),
    /// Another copy leads: only it writes.
    #[error("{0}")]
    NotLeader(String),
    /// The job database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Watch mode, ready to run.
pub struct Watch {
    /// The primary endpoint's name, for logs and the API.
    primary_name: String,
    primary: Cluster,
    primary_health: Health,
    state: PrimaryState,
    replicas: Vec<Arc<Replica>>,
    options: WatchOptions,
    /// The pass options now: `options.pass` with the kinds found since the start.
    pass: std::sync::RwLock<Arc<PassOptions>>,
    /// What stops each synced kind's watchers, on the primary and the replicas.
    kind_stops: Mutex<Vec<(&'static crate::kinds::Kind, CancellationToken)>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    watchers: Mutex<BTreeMap<String, WatcherState>>,
    first_pass_done: AtomicBool,
    /// Bumped whenever a collection's completeness is lost, so that a full pass follows its
    /// return however quickly that comes.
    losses: AtomicU64,
    /// Woken when completeness or the identity changes.
    authority_changed: tokio::sync::Notify,
    /// Bumped when the primary answers again after an outage: every primary watcher lists
    /// again, since what happened meanwhile is unknown.
    relist: tokio::sync::watch::Sender<u64>,
    /// Whether this copy may write: only the leader syncs and records jobs.
    leadership: Arc<Leadership>,
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

    fn completed(&self, _: &Report) {}
}

impl Watch {
    /// Watch mode from `primary` (the endpoint named `primary_name`, whose objects are named
    /// `source_name` in annotations when given, else by the cluster's identity with the
    /// endpoint's name as an alias) to `replicas`.
    pub fn new(
        primary_name: &str,
        source_name: Option<String>,
        primary: Cluster,
        replicas: Vec<Arc<Replica>>,
        options: WatchOptions,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let aliases = match source_name {
            Some(_) => Vec::new(),
            None => vec![primary_name.to_string()],
        };
        let state = PrimaryState::new(
            sources::collections(&options.pass.scope),
            source_name,
            aliases,
        );
        if options.selection.kinds.needs_discovery() && options.pass.scope.kinds.is_empty() {
            state.set_kinds_unknown(Some("the primary has not answered discovery yet".into()));
        }
        Watch {
            pass: std::sync::RwLock::new(Arc::new(options.pass.clone())),
            kind_stops: Mutex::default(),
            primary_name: primary_name.to_string(),
            primary,
            primary_health: Health::new(primary_name),
            state,
            replicas,
            options,
            store,
            metrics,
            watchers: Mutex::default(),
            first_pass_done: AtomicBool::new(false),
            losses: AtomicU64::new(0),
            authority_changed: tokio::sync::Notify::new(),
            relist: tokio::sync::watch::Sender::new(0),
            leadership: Leadership::sole(),
        }
    }

    /// The pass options now, with the synced kinds as last resolved.
    pub fn pass(&self) -> Arc<PassOptions> {
        self.pass.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes only while `leadership` says this copy leads; the replicas' clusters must carry
    /// its fence too.
    pub fn with_leadership(mut self, leadership: Arc<Leadership>) -> Self {
        self.leadership = leadership;
        self
    }

    /// Whether this copy may write now.
    pub fn leading(&self) -> bool {
        self.leadership.leading()
    }

    fn journal<'a>(&'a self, recorded: &'a str) -> Journal<'a> {
        Journal {
            store: &self.store,
            metrics: &self.metrics,
            progress: &LogProgress,
            pass_options: Some(recorded),
        }
    }

    fn safety<'a>(&'a self, replica: &'a Replica, managed: Option<usize>) -> Safety<'a> {
        Safety {
            authority: &self.state,
            budget: &replica.budget,
            managed,
        }
    }

    /// Runs until `shutdown` is cancelled: watchers, probes, full passes, workers. Then stops
    /// taking events, lets in-flight work finish within the shutdown timeout, and records what
    /// was left as pending jobs for the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), store::Error> {
        let settled = self.store.settle_abandoned()?;
        if settled > 0 {
            info!(
                jobs = settled,
                "jobs left running by a process that is gone are pending again"
            );
        }
        self.install_refresher();
        let stop_sources = shutdown.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        // The election outlives the sources: the Lease is given up only once the writes in
        // flight have ended.
        let stop_election = CancellationToken::new();
        let election = tokio::spawn(
            self.leadership
                .clone()
                .run(self.primary.client(), stop_election.clone()),
        );
        tasks.spawn(self.clone().follow_leadership());
        tasks.spawn(self.clone().warn_of_expiring_credentials());
        sources::spawn(&self, &mut tasks, &stop_sources);
        if self.options.selection.kinds.needs_discovery() {
            tasks.spawn(kinds::follow(self.clone(), stop_sources.clone()));
        }
        tasks.spawn(self.clone().coordinate(stop_sources.clone()));
        tasks.spawn(self.clone().resync_loop(stop_sources.clone()));
        let mut workers = Vec::new();
        for replica in &self.replicas {
            for _ in 0..self.pass().apply.workers.max(1) {
                workers.push(tokio::spawn(self.clone().work(replica.clone())));
            }
        }
        let watch = self.clone();
        tasks.spawn(async move {
            while watch.readiness().is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            info!("ready: first pass done, every watcher running");
        });

        shutdown.cancelled().await;
        info!("shutting down: no new events; finishing writes in flight");
        stop_sources.cancel();
        tasks.abort_all();
        for replica in &self.replicas {
            let left = replica.queue.close();
            // A copy that does not lead records nothing: the leader has the same work.
            if self.leading() {
                self.record_pending(replica, &left)?;
            }
        }
        let finished = tokio::time::timeout(
            self.options.shutdown_timeout,
            futures::future::join_all(workers),
        )
        .await;
        if finished.is_err() {
            warn!(timeout = ?self.options.shutdown_timeout, "writes still in flight were cut off; their jobs are pending for the next start");
        }
        stop_election.cancel();
        let _ = election.await;
        Ok(())
    }

    /// A warning at start and every hour for each replica whose token expires within
    /// [`EXPIRY_WARNING`], or has.
    async fn warn_of_expiring_credentials(self: Arc<Self>) {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            for replica in &self.replicas {
                let (Some(expiry), Some(left)) =
                    (replica.cluster.token_expiry(), replica.cluster.token_left())
                else {
                    continue;
                };
                if left.is_negative() {
                    warn!(replica = %replica.name, %expiry, "the replica's token has expired: mint a new one with `k8s-sync replica-credentials`");
                } else if left < EXPIRY_WARNING {
                    warn!(replica = %replica.name, %expiry, "the replica's token expires soon: mint a new one with `k8s-sync replica-credentials`");
                }
            }
        }
    }

    /// Leadership lost counts as a loss of the primary's state, so that leadership won
    /// starts with a full pass: what changed while another copy led (or none did) is caught
    /// up.
    async fn follow_leadership(self: Arc<Self>) {
        let mut changes = self.leadership.subscribe();
        while changes.changed().await.is_ok() {
            if !*changes.borrow_and_update() {
                self.losses.fetch_add(1, Ordering::AcqRel);
            }
            self.authority_changed.notify_waiters();
        }
    }

    /// Records work that never ran as pending jobs, for the next start.
    fn record_pending(&self, replica: &Replica, left: &[Work]) -> Result<(), store::Error> {
        let recorded = self.pass().recorded(&self.state.empty_snapshot());
        for work in left {
            let Work::Object(reference) = work else {
                continue;
            };
            // A deletion has no desired object: the next start's full pass prunes it.
            let Some(entry) = self.state.get(reference) else {
                continue;
            };
            self.store.begin(&NewJob {
                replica: &replica.name,
                kind: reference.kind.id(),
                namespace: &reference.namespace,
                name: &reference.name,
                operation: Operation::Apply,
                change_key: entry.change_key.as_str(),
                action: "sync",
                options: Some(&recorded),
            })?;
        }
        if !left.is_empty() {
            info!(replica = %replica.name, items = left.len(), "queued work recorded as pending");
        }
        Ok(())
    }

    /// Keeps the gauges that change with time alone (lags) true at every scrape.
    fn install_refresher(self: &Arc<Self>) {
        let watch = Arc::downgrade(self);
        self.metrics.refresh_with(Box::new(move |metrics| {
            let Some(watch) = watch.upgrade() else {
                return;
            };
            metrics
                .primary_reachable
                .set(i64::from(watch.state.complete().is_ok()));
            metrics.leader.set(i64::from(watch.leading()));
            for replica in &watch.replicas {
                let figures = replica.tracker.figures();
                let name = [replica.name.as_str()];
                let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
                metrics
                    .drifted
                    .with_label_values(&name)
                    .set(count(figures.drifted));
                metrics
                    .prunes_held
                    .with_label_values(&name)
                    .set(count(figures.held));
                metrics
                    .prunes_delayed
                    .with_label_values(&name)
                    .set(count(figures.delayed));
                metrics
                    .replication_lag
                    .with_label_values(&name)
                    .set(figures.lag.as_secs_f64());
                if let Some(left) = replica.cluster.token_left() {
                    metrics
                        .credentials_expiry
                        .with_label_values(&name)
                        .set(left.as_secs_f64());
                }
                metrics
                    .reachable
                    .with_label_values(&name)
                    .set(i64::from(replica.health.problem().is_none()));
                metrics
                    .queue_depth
                    .set(watch.replicas.iter().map(|r| r.queue.len() as i64).sum());
            }
        }));
    }

    /// The names of the replicas.
    pub fn replica_names(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.name.clone()).collect()
    }

    fn replica(&self, name: &str) -> Result<&Arc<Replica>, Refusal> {
        self.replicas
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| {
                Refusal::NotHere(format!(
                    "replica {name:?} is not among this process's replicas"
                ))
            })
    }

    /// Re-runs a job's change now against the primary's state (`/retry`), with the options
    /// of the pass that made it.
    pub async fn retry(&self, job: &Job) -> Result<Report, Refusal> {
        if let Some(reason) = self.leadership.refusal() {
            return Err(Refusal::NotLeader(reason));
        }
        let replica = self.replica(&job.replica)?;
        let reference = job_object(job).ok_or_else(|| {
            Refusal::NotHere(format!("job {}: unknown kind {}", job.id, job.kind))
        })?;
        self.state
            .authority(reference.kind)
            .map_err(Refusal::NotAuthoritative)?;
        let recorded = RecordedOptions::of(job);
        let (report, _) = self
            .sync_object(
                replica,
                &reference,
                Instant::now(),
                recorded.as_ref(),
                false,
            )
            .await?;
        Ok(report)
    }

    /// Releases the prunes held on `replica` now (`POST /api/prunes/release`): each object
    /// still gone from the primary is pruned past the limit. The release is recorded.
    pub async fn release(&self, replica: &str, by: &str) -> Result<Report, Refusal> {
        if let Some(reason) = self.leadership.refusal() {
            return Err(Refusal::NotLeader(reason));
        }
        let replica = self.replica(replica)?;
        let held = self.store.jobs(&JobFilter {
            status: Some(Status::Held),
            replica: Some(replica.name.clone()),
            limit: None,
        })?;
        let objects: BTreeSet<ObjectRef> = held.iter().filter_map(job_object).collect();
        let mut total = Report {
            replica: replica.name.clone(),
            ..Report::default()
        };
        if objects.is_empty() {
            return Ok(total);
        }
        for reference in &objects {
            self.state
                .authority(reference.kind)
                .map_err(Refusal::NotAuthoritative)?;
        }
        self.store
            .record_release(&replica.name, by, objects.len())?;
        info!(replica = %replica.name, %by, prunes = objects.len(), "held prunes released");
        for reference in &objects {
            let (report, _) = self
                .sync_object(replica, reference, Instant::now(), None, true)
                .await?;
            total.pruned += report.pruned;
            total.failed += report.failed;
            total.unchanged += report.unchanged;
            total.writes += report.writes;
        }
        Ok(total)
    }

    /// A change of the primary: every replica's queue gets the object.
    fn changed_on_primary(&self, reference: &ObjectRef) {
        let now = Instant::now();
        for replica in &self.replicas {
            replica.tracker.queued(reference, now);
            replica.queue.add(Work::Object(reference.clone()), now);
        }
    }
}
