//! Executing a [`Plan`] against a replica cluster: namespaces first, then objects in the kind
//! table's order (data before workloads), prunes last; a bounded number of requests in flight;
//! every write retried with backoff and recorded as a job. Changes the plan defers (held or
//! delayed prunes) are recorded as such and not sent.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::diff::{Action, Change, Deferral, Plan};
use crate::endpoint::Cluster;
use crate::endpoint::cluster::Error as ClusterError;
use crate::kinds::{Kind, Stage};
use crate::metrics::Metrics;
use crate::normalize::{CHANGE_KEY_ANNOTATION, MANAGED_LABEL, SOURCE_ANNOTATION};
use crate::report::Report;
use crate::retry::RetryPolicy;
use crate::secret;
use crate::snapshot::{Entry, ObjectRef, Snapshot};
use crate::store::{self, NewJob, Operation, Store};
use change::{JobError, execute};

mod change;

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Requests in flight per replica.
    pub workers: usize,
    /// Send server-side dry-run requests: validate everything, change nothing, record nothing.
    pub dry_run: bool,
    /// Delete and re-create workloads whose immutable fields changed.
    pub recreate: bool,
    /// How writes are retried.
    pub retry: RetryPolicy,
    /// A change whose replica stops answering is pending again (to run when the replica is
    /// back) instead of failed: watch mode, which notices the replica's return.
    pub pending_when_unreachable: bool,
}

/// Requests in flight per replica unless told otherwise. The local servers wrote fastest at 32
/// in flight (BENCHMARKS.md, "Scale"), but with 32 workers per replica watch mode came back
/// from a replica's outage past the outage test's deadline, for reasons not yet found.
pub const DEFAULT_WORKERS: u16 = 8;

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            workers: DEFAULT_WORKERS.into(),
            dry_run: false,
            recreate: false,
            retry: RetryPolicy::default(),
            pending_when_unreachable: false,
        }
    }
}

/// Progress of an apply, for bars and log lines.
pub trait Progress: Sync {
    /// The replica has `total` changes to make.
    fn started(&self, replica: &str, total: usize);
    /// One change ended.
    fn finished(
        &self,
        replica: &str,
        change: &Change,
        result: &Result<Done, String>,
        elapsed: Duration,
    );
    /// Every change of the replica ended.
    fn completed(&self, report: &Report);
}

/// Progress that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn started(&self, _: &str, _: usize) {}
    fn finished(&self, _: &str, _: &Change, _: &Result<Done, String>, _: Duration) {}
    fn completed(&self, _: &Report) {}
}

/// Where the outcome of every change is recorded: the job database, the metrics, the progress
/// display; and what each job records of the pass that made it.
#[derive(Clone, Copy)]
pub struct Journal<'a> {
    /// The job database.
    pub store: &'a Store,
    /// The process's metrics.
    pub metrics: &'a Metrics,
    /// Bars or log lines.
    pub progress: &'a dyn Progress,
    /// The pass's options as JSON, recorded in each job so that a retry runs with them.
    pub pass_options: Option<&'a str>,
}

/// How a change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Server-side applied (created or updated).
    Applied,
    /// Deleted and applied again.
    Recreated,
    /// Deleted (or found gone).
    Deleted,
    /// k8s-sync's markers taken off; the object left to its owner.
    Released,
    /// Dry run only: not sent, because the object's namespace does not exist on the replica
    /// yet, and the server validates nothing in a namespace it lacks.
    Unvalidated,
}

/// The object k8s-sync sends: the normalized source object with its bookkeeping annotations and
/// the managed label.
pub fn apply_body(entry: &Entry, source: &str) -> Value {
    let mut object = entry.object();
    let metadata = object["metadata"]
        .as_object_mut()
        .expect("normalized objects have metadata");
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations[SOURCE_ANNOTATION] = source.into();
    annotations[CHANGE_KEY_ANNOTATION] = entry.change_key.as_str().into();
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    labels[MANAGED_LABEL] = "true".into();
    object
}

/// Puts the mark of a held prune on the replica's object when its prune is held, and takes
/// it off when the object is no longer to be pruned (it is back on the primary): the mark is
/// what makes every copy of k8s-sync hold the prune again. A mark that cannot be written is
/// logged; the hold is recorded all the same.
async fn mark_hold(cluster: &Cluster, change: &Change, live: &Snapshot) {
    let marked = live
        .objects
        .get(&change.reference())
        .and_then(|e| e.applied.as_ref())
        .is_some_and(|a| a.prune_held);
    let held = change.action == Action::Prune && change.deferral == Some(Deferral::Held);
    let mark = held && !marked;
    let unmark = marked && change.action != Action::Prune;
    if !(mark || unmark) {
        return;
    }
    if let Err(error) = cluster
        .mark_prune_held(change.kind, &change.namespace, &change.name, mark)
        .await
    {
        tracing::warn!(replica = %cluster.name(), "{}", crate::error_chain(&error));
    }
}

/// Whether any object of `live` carries the mark of a held prune: when none does, only the
/// prunes held now need looking at.
fn any_marked(live: &Snapshot) -> bool {
    live.objects
        .values()
        .any(|e| e.applied.as_ref().is_some_and(|a| a.prune_held))
}

/// Applies `plan` (made from `desired` and `live`) to `cluster`, recording jobs unless this is
/// a dry run.
pub async fn apply(
    cluster: &Cluster,
    plan: &Plan,
    desired: &Snapshot,
    live: &Snapshot,
    journal: Journal<'_>,
    options: &ApplyOptions,
) -> Result<Report, store::Error> {
    let Journal {
        store, progress, ..
    } = journal;
    let started = Instant::now();
    let writes_before = cluster
        .requests()
        .writes
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut report = Report {
        replica: plan.replica.clone(),
        held: plan.summary.held,
        delayed: plan.summary.delayed,
        kept: plan.summary.kept,
        waiting: plan.summary.waiting,
        warnings: plan.warnings.clone(),
        ..Report::default()
    };
    let work: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.deferral.is_none())
        .filter(|c| !matches!(c.action, Action::InSync | Action::Conflict | Action::Keep))
        .collect();
    progress.started(&plan.replica, work.len());

    let marks = !options.dry_run && any_marked(live);
    let mut in_step = Vec::new();
    for change in &plan.changes {
        if !options.dry_run && (marks || change.deferral == Some(Deferral::Held)) {
            mark_hold(cluster, change, live).await;
        }
        match (change.action, change.deferral) {
            (Action::InSync, _) => {
                report.unchanged += 1;
                if let (Some(key), false) = (&change.desired_key, options.dry_run) {
                    in_step.push((
                        change.kind.id(),
                        change.namespace.as_str(),
                        change.name.as_str(),
                        key.as_str(),
                    ));
                }
            }
            (Action::Conflict, _) => report.conflicts += 1,
            (_, Some(deferral)) if !options.dry_run => {
                let reference = change.reference();
                let key = pruned_key(live.objects.get(&reference));
                let job = new_job(
                    &plan.replica,
                    &reference,
                    Operation::Delete,
                    key,
                    "prune",
                    journal.pass_options,
                );
                match deferral {
                    Deferral::Held => store.hold(&job)?,
                    Deferral::Delayed { due } => store.delay(&job, due)?,
                };
            }
            _ => {}
        }
    }

    if !in_step.is_empty() {
        store.settle_all(&plan.replica, in_step)?;
    }

    let mut created_namespaces = Vec::new();
    for namespace in &plan.missing_namespaces {
        let (result, _) = options
            .retry
            .run(ClusterError::transience, || {
                cluster.ensure_namespace(namespace, options.dry_run)
            })
            .await;
        // A namespace that cannot be made fails its objects on their own, with the server's
        // message, so nothing more is needed here.
        if result.is_ok() {
            report.namespaces_created += 1;
            created_namespaces.push(namespace.as_str());
        }
    }

    let mut stages: Vec<(u8, Vec<&Change>)> = Vec::new();
    for change in work {
        // Prunes go last, workloads before the data they mount.
        let stage = match change.action {
            Action::Prune => 100 - change.kind.stage as u8,
            _ => change.kind.stage as u8,
        };
        match stages.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, changes)) => changes.push(change),
            None => stages.push((stage, vec![change])),
        }
    }
    stages.sort_by_key(|(stage, _)| *stage);

    // A dry run creates no namespace, and a server validates nothing in a namespace it lacks.
    let unvalidated = |change: &Change| {
        options.dry_run && created_namespaces.contains(&change.namespace.as_str())
    };
    // Kinds the replica lacks; those whose CRD this pass applies are served once it is (in a
    // dry run, which applies no CRD, their objects are counted as not validated).
    let mut unserved: Vec<&Kind> = live.unserved.clone();
    let mut defined_in_dry_run: Vec<&Kind> = Vec::new();
    for (stage, changes) in stages {
        let definitions = stage == Stage::Definitions as u8;
        // The futures are made before the stream, not inside a `map` closure: a closure
        // returning a borrowing future makes the whole pass non-`Send` for spawned tasks.
        let mut jobs = Vec::with_capacity(changes.len());
        for change in changes {
            let job = Job {
                change,
                desired,
                live,
                unvalidated: unvalidated(change)
                    || defined_in_dry_run
                        .iter()
                        .any(|k| std::ptr::eq(*k, change.kind)),
                unserved: unserved.iter().any(|k| std::ptr::eq(*k, change.kind)),
            };
            jobs.push(run_job(cluster, job, journal, options));
        }
        let results: Vec<_> = futures::stream::iter(jobs)
            .buffer_unordered(options.workers.max(1))
            .collect()
            .await;
        let mut served = Vec::new();
        for (change, result) in results {
            let outcome = result?;
            if definitions && matches!(outcome, Outcome::Done(_)) {
                served.push(change.name.clone());
            }
            match (outcome, change.action) {
                (Outcome::Failed, _) => {
                    report.failed += 1;
                    report.unfinished.push(change.reference());
                }
                (Outcome::Interrupted, _) => {
                    report.interrupted += 1;
                    report.unfinished.push(change.reference());
                }
                (Outcome::Done(Done::Recreated), _) => report.recreated += 1,
                (Outcome::Done(Done::Deleted), _) => report.pruned += 1,
                (Outcome::Done(Done::Released), _) => report.released += 1,
                (Outcome::Done(Done::Unvalidated), _) => {
                    report.created += 1;
                    report.unvalidated += 1;
                }
                (Outcome::Done(Done::Applied), Action::Create) => report.created += 1,
                (Outcome::Done(Done::Applied), _) => report.updated += 1,
            }
        }
        if definitions {
            // The custom resources of a CRD just applied can be written once the server
            // serves them (it establishes the CRD within a second or so).
            for name in served.drain(..) {
                let Some(position) = unserved.iter().position(|k| k.resource() == name) else {
                    continue;
                };
                if options.dry_run {
                    defined_in_dry_run.push(unserved.remove(position));
                } else if cluster.wait_served(unserved[position]).await {
                    unserved.remove(position);
                }
            }
        }
    }
    report.writes = cluster
        .requests()
        .writes
        .load(std::sync::atomic::Ordering::Relaxed)
        - writes_before;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    progress.completed(&report);
    Ok(report)
}

/// Records every object of `desired` as a failed job on a replica that could not be read, so
/// the failure is visible per object and a later pass settles or re-runs each.
pub fn fail_unreachable(
    replica: &str,
    desired: &Snapshot,
    error: &str,
    journal: Journal<'_>,
) -> Result<Report, store::Error> {
    let Journal {
        store, progress, ..
    } = journal;
    for (reference, entry) in &desired.objects {
        let id = store.begin(&new_job(
            replica,
            reference,
            Operation::Apply,
            entry.change_key.as_str(),
            "sync",
            journal.pass_options,
        ))?;
        store.finish(id, Err(error), 0, Duration::ZERO)?;
    }
    let report = Report {
        replica: replica.to_string(),
        failed: desired.objects.len(),
        error: Some(error.to_string()),
        ..Report::default()
    };
    progress.completed(&report);
    Ok(report)
}

/// The change key a prune deletes: the one k8s-sync applied, else the object's own.
fn pruned_key(have: Option<&Entry>) -> &str {
    have.map_or("", |have| {
        have.applied
            .as_ref()
            .map_or(have.change_key.as_str(), |a| a.change_key.as_str())
    })
}

/// The job row of one change.
pub fn new_job<'a>(
    replica: &'a str,
    reference: &'a ObjectRef,
    operation: Operation,
    change_key: &'a str,
    action: &'a str,
    options: Option<&'a str>,
) -> NewJob<'a> {
    NewJob {
        replica,
        kind: reference.kind.id(),
        namespace: &reference.namespace,
        name: &reference.name,
        operation,
        change_key,
        action,
        options,
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::NeedsRecreate => "recreate",
        Action::Prune => "prune",
        Action::InSync => "none",
        Action::Conflict => "conflict",
        Action::Keep => "keep",
        Action::Release => "release",
    }
}

/// One change to run, with what it is planned from.
struct Job<'c> {
    change: &'c Change,
    desired: &'c Snapshot,
    live: &'c Snapshot,
    unvalidated: bool,
    /// The replica does not serve the change's kind.
    unserved: bool,
}

/// How one change ended.
enum Outcome {
    Done(Done),
    Failed,
    Interrupted,
}

async fn run_job<'c>(
    cluster: &Cluster,
    job: Job<'c>,
    journal: Journal<'_>,
    options: &ApplyOptions,
) -> (&'c Change, Result<Outcome, store::Error>) {
    let Journal {
        store,
        progress,
        metrics,
        pass_options,
    } = journal;
    let Job {
        change,
        desired,
        live,
        unvalidated,
        unserved,
    } = job;
    let reference = change.reference();
    let want = desired.objects.get(&reference);
    let have = live.objects.get(&reference);
    let (operation, key) = match (change.action, want) {
        (Action::Prune, _) => (Operation::Delete, pruned_key(have)),
        (Action::Release, _) => (Operation::Apply, pruned_key(have)),
        (_, Some(want)) => (Operation::Apply, want.change_key.as_str()),
        _ => unreachable!("plans only hold changes to objects one side has"),
    };
    let id = if options.dry_run {
        None
    } else {
        let row = new_job(
            cluster.name(),
            &reference,
            operation,
            key,
            action_name(change.action),
            pass_options,
        );
        match store
            .begin(&row)
            .and_then(|id| store.start(id).map(|()| id))
        {
            Ok(id) => Some(id),
            Err(e) => return (change, Err(e)),
        }
    };
    let started = Instant::now();
    let (result, attempts) = if unserved && change.action != Action::Prune {
        (Err(change::JobError::unserved(change.kind)), 0)
    } else if unvalidated {
        (Ok(Done::Unvalidated), 0)
    } else {
        execute(cluster, change, want, have, &desired.source, options).await
    };
    let elapsed = started.elapsed();
    // A write held back by the leader fence was never sent: it waits for a leader.
    let cut_off = matches!(&result, Err(JobError::Cluster(e))
        if e.is_fenced() || (options.pending_when_unreachable && e.is_unreachable()));
    let result = result.map_err(|e| {
        let message = format!("{e:#}");
        match want {
            Some(want) if change.kind.is("", "Secret") => secret::scrub(&message, &want.object()),
            _ => message,
        }
    });
    if let Some(id) = id {
        let recorded = match (&result, cut_off) {
            (Err(error), true) => store.interrupt(id, error, attempts),
            (outcome, false) => {
                let outcome = outcome.as_ref().map(drop).map_err(String::as_str);
                store.finish(id, outcome, attempts, elapsed)
            }
            (Ok(_), true) => unreachable!("only errors cut a change off"),
        };
        if let Err(e) = recorded {
            return (change, Err(e));
        }
    }
    let outcome = match (&result, cut_off) {
        (Ok(done), _) => Outcome::Done(*done),
        (Err(_), true) => Outcome::Interrupted,
        (Err(_), false) => Outcome::Failed,
    };
    let label = match outcome {
        Outcome::Done(_) => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Interrupted => "interrupted",
    };
    let labels = [
        cluster.name(),
        change.kind.id(),
        action_name(change.action),
        label,
    ];
    metrics.jobs.with_label_values(&labels).inc();
    metrics
        .apply_seconds
        .with_label_values(&[cluster.name()])
        .observe(elapsed.as_secs_f64());
    progress.finished(cluster.name(), change, &result, elapsed);
    (change, Ok(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use crate::snapshot::RawObject;
    use serde_json::json;

    #[test]
    fn the_apply_body_carries_bookkeeping() {
        let raw = RawObject {
            value: json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "shop", "uid": "1"}, "data": {"k": "v"}}),
            origin: "t".into(),
            archived: None,
        };
        let snapshot = Snapshot::build("primary", [raw], &Scope::default()).unwrap();
        let entry = snapshot.objects.values().next().unwrap();
        let body = apply_body(entry, "primary");
        assert_eq!(
            body["metadata"]["annotations"][SOURCE_ANNOTATION],
            "primary"
        );
        assert_eq!(
            body["metadata"]["annotations"][CHANGE_KEY_ANNOTATION],
            entry.change_key.as_str()
        );
        assert_eq!(body["metadata"]["labels"][MANAGED_LABEL], "true");
        assert!(body["metadata"].get("uid").is_none());
        // Normalizing what was applied gives back the source's object and key.
        let mut round_trip = body.clone();
        crate::normalize::normalize(
            &mut round_trip,
            crate::kinds::by_plural("configmaps").unwrap(),
        );
        assert_eq!(round_trip, entry.object());
    }
}
