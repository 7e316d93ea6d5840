//! The one plan-and-apply path. Every mode reads a replica's state its own way (`apply` and
//! `jobs retry` list it, watch mode lists it for a full pass or reads one object after an
//! event), then runs the same steps here: plan against the primary's state, decide what may
//! run now by the safety rules ([`safety::gate`]), apply, record. So a rule added to a step
//! holds in every mode.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::apply::{self, ApplyOptions, Journal};
use crate::diff::{Plan, PlanOptions};
use crate::endpoint::{Cluster, Connected, Endpoint};
use crate::kinds;
use crate::report::Report;
use crate::safety::{self, Authority, Context, PruneBudget, PruneRules};
use crate::scope::Scope;
use crate::snapshot::{ObjectRef, Snapshot};
use crate::store::{self, DeferredPrune, Job, Store};
use crate::verdict::{self, Confirmation};

/// Everything that shapes a pass.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// What to look at.
    pub scope: Scope,
    /// Adoption and pruning.
    pub plan: PlanOptions,
    /// Workers, dry run, recreate, retries.
    pub apply: ApplyOptions,
    /// The prune limit, delay and force.
    pub prune: PruneRules,
}

/// What a job records of the pass that made it, so that retrying it later runs as that pass
/// did: adoption, pruning, the namespaces it could reach, and the source it wrote as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedOptions {
    /// Adoption was on.
    pub adopt: bool,
    /// Pruning was on.
    pub prune: bool,
    /// PVCs were pruned too.
    #[serde(default)]
    pub prune_pvcs: bool,
    /// `kube-*` namespaces were in scope.
    #[serde(default)]
    pub allow_sensitive_namespaces: bool,
    /// The source name written into the source annotation.
    pub source: String,
    /// The source's other names.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl PassOptions {
    /// The options as a job records them, for a pass from `desired`.
    pub fn recorded(&self, desired: &Snapshot) -> String {
        let recorded = RecordedOptions {
            adopt: self.plan.adopt,
            prune: self.plan.prune,
            prune_pvcs: self.plan.prune_pvcs,
            allow_sensitive_namespaces: self.scope.allow_sensitive_namespaces,
            source: desired.source.clone(),
            aliases: desired.aliases.clone(),
        };
        serde_json::to_string(&recorded).expect("options serialize")
    }

    /// These options with a job's recorded ones laid over them.
    pub fn with_recorded(mut self, recorded: &RecordedOptions) -> Self {
        self.plan.adopt = recorded.adopt;
        self.plan.prune = recorded.prune;
        self.plan.prune_pvcs = recorded.prune_pvcs;
        self.scope.allow_sensitive_namespaces |= recorded.allow_sensitive_namespaces;
        self
    }
}

impl RecordedOptions {
    /// The options a job recorded, if it recorded them (jobs made before options were recorded
    /// did not).
    pub fn of(job: &Job) -> Option<Self> {
        serde_json::from_str(job.options.as_deref()?).ok()
    }

    /// Names `desired` as the source the job wrote as.
    pub fn name(&self, desired: &mut Snapshot) {
        desired.source = self.source.clone();
        desired.aliases = self.aliases.clone();
    }
}

/// The object a job is about, when its kind is one k8s-sync syncs.
pub fn job_object(job: &Job) -> Option<ObjectRef> {
    Some(ObjectRef {
        kind: kinds::by_id(&job.kind)?,
        namespace: job.namespace.clone(),
        name: job.name.clone(),
    })
}

/// What guards the destructive steps of one replica's pass.
#[derive(Clone, Copy)]
pub struct Safety<'a> {
    /// Which kinds the primary's state may drive writes for.
    pub authority: &'a dyn Authority,
    /// The replica's prune budget (a sliding window in watch mode).
    pub budget: &'a PruneBudget,
    /// The objects the source manages on the replica, when the pass's own view of the replica
    /// is partial (one object); counted from the live state otherwise.
    pub managed: Option<usize>,
}

/// What a pass is about.
#[derive(Clone, Copy)]
pub enum Focus<'a> {
    /// Everything in scope.
    All,
    /// Some objects (a retry, a release, one object after an event).
    Objects(&'a BTreeSet<ObjectRef>),
    /// Everything in scope whose desired state is still current, as `current` says: a full
    /// pass against a state that may move on while the replica is read. The objects left out
    /// have newer work of their own.
    Current(&'a (dyn Fn(&ObjectRef) -> bool + Sync)),
}

impl Focus<'_> {
    fn admits(&self, reference: &ObjectRef) -> bool {
        match self {
            Focus::All => true,
            Focus::Objects(objects) => objects.contains(reference),
            Focus::Current(current) => current(reference),
        }
    }

    fn is_whole(&self) -> bool {
        !matches!(self, Focus::Objects(_))
    }
}

/// Where a pass's plan is checked and recorded: the replica's server (asked for its verdict on
/// suspected drift; none for a directory), and the job database (held and delayed prunes,
/// remembered verdicts; `diff` may have none, or may only read it).
#[derive(Clone, Copy)]
pub struct Checked<'a> {
    /// The replica's server.
    pub cluster: Option<&'a Cluster>,
    /// The job database.
    pub store: Option<&'a Store>,
    /// Whether new verdicts are recorded in `store`.
    pub remember: bool,
}

/// A plan, and what making it found out.
pub struct Planned {
    /// What to do.
    pub plan: Plan,
    /// Held or delayed prunes no longer to run.
    pub cancelled: Vec<ObjectRef>,
    /// What asking the replica's server for its verdict cost and found.
    pub confirmation: Confirmation,
}

/// Plans `desired` against `live` on the replica named `replica`, cut down to `focus`; asks the
/// replica's server about suspected drift; and decides what may run now.
pub async fn plan(
    replica: &str,
    desired: &Snapshot,
    live: &Snapshot,
    options: &PassOptions,
    focus: Focus<'_>,
    safety: Safety<'_>,
    checked: Checked<'_>,
) -> Result<Planned, store::Error> {
    let mut plan = Plan::new(replica, desired, live, options.plan);
    match focus {
        Focus::All => {}
        Focus::Objects(objects) => {
            plan.retain(|r| objects.contains(r));
            // A pass about a few objects creates only their namespaces.
            plan.missing_namespaces
                .retain(|ns| objects.iter().any(|o| o.namespace == *ns));
        }
        Focus::Current(current) => plan.retain(current),
    }
    if let (Some(cluster), true) = (checked.cluster, focus.is_whole()) {
        plan.warnings = crate::references::missing(cluster, desired).await;
    }
    let confirmation = match checked.cluster {
        Some(cluster) => {
            let workers = options.apply.workers;
            let store = checked.store;
            verdict::confirm(
                &mut plan,
                cluster,
                desired,
                live,
                store,
                checked.remember,
                workers,
            )
            .await?
        }
        None => Confirmation::default(),
    };
    let deferred = match checked.store {
        Some(store) => deferred_prunes(store, replica, &options.scope, focus)?,
        None => HashMap::new(),
    };
    // A kind the source's own state says is incomplete is not authoritative, whatever else does.
    let authority =
        |kind: &crate::kinds::Kind| match desired.incomplete.iter().find(|(k, _)| *k == kind) {
            Some((_, reason)) => Err(reason.clone()),
            None => safety.authority.authority(kind),
        };
    let context = Context {
        desired,
        live,
        now: jiff::Timestamp::now(),
        managed: safety
            .managed
            .unwrap_or_else(|| safety::managed(desired, live)),
        deferred: &deferred,
        authority: &authority,
        budget: safety.budget,
    };
    let cancelled = safety::gate(&mut plan, &options.prune, &context);
    Ok(Planned {
        plan,
        cancelled,
        confirmation,
    })
}

/// The one path: plans, asks the server, decides, cancels what is no longer to be pruned,
/// applies.
pub async fn run(
    cluster: &Cluster,
    desired: &Snapshot,
    live: &Snapshot,
    options: &PassOptions,
    focus: Focus<'_>,
    safety: Safety<'_>,
    journal: Journal<'_>,
) -> Result<(Plan, Report), store::Error> {
    let checked = Checked {
        cluster: Some(cluster),
        store: Some(journal.store),
        remember: !options.apply.dry_run,
    };
    let Planned {
        plan,
        cancelled,
        confirmation,
    } = plan(
        cluster.name(),
        desired,
        live,
        options,
        focus,
        safety,
        checked,
    )
    .await?;
    if !options.apply.dry_run {
        for reference in &cancelled {
            journal.store.cancel_prunes(
                cluster.name(),
                reference.kind.id(),
                &reference.namespace,
                &reference.name,
            )?;
        }
    }
    let mut report = apply::apply(cluster, &plan, desired, live, journal, &options.apply).await?;
    report.verdicts_asked = confirmation.asked;
    Ok((plan, report))
}

/// A one-shot pass of one replica endpoint: connects, lists it, and runs the one path against
/// `desired` (listed in full just now). A replica that cannot be read fails alone: the objects
/// the pass is about are recorded as failed jobs and the report carries the error.
pub async fn sync_replica(
    replica: &Endpoint,
    desired: &Snapshot,
    options: &PassOptions,
    journal: Journal<'_>,
    focus: Focus<'_>,
) -> Result<Report, store::Error> {
    let budget = PruneBudget::default();
    let safety = Safety {
        authority: &safety::listed_in_full,
        budget: &budget,
        managed: None,
    };
    let fail = |error: String| {
        let partial;
        let about = match focus {
            Focus::All => desired,
            _ => {
                partial = Snapshot {
                    objects: desired
                        .objects
                        .iter()
                        .filter(|(r, _)| focus.admits(r))
                        .map(|(r, e)| (r.clone(), e.clone()))
                        .collect(),
                    ..Snapshot::default()
                };
                &partial
            }
        };
        let report = apply::fail_unreachable(&replica.name, about, &error, journal)?;
        if focus.is_whole() {
            journal.metrics.record_pass(&report, about.objects.len());
        }
        Ok(report)
    };
    let connected = match replica.connect().await {
        Ok(connected) => connected,
        Err(e) => return fail(crate::error_chain(&e)),
    };
    let Connected::Cluster(cluster) = &connected else {
        return fail("a directory replica is read-only: apply needs a kubeconfig".into());
    };
    let live = match connected
        .snapshot_against(&replica.name, &options.scope, desired)
        .await
    {
        Ok(live) => live,
        Err(e) => return fail(crate::error_chain(&e)),
    };
    let (plan, report) = run(cluster, desired, &live, options, focus, safety, journal).await?;
    if focus.is_whole() {
        journal.metrics.record_pass(&report, plan.summary.drift());
    }
    Ok(report)
}

/// The held and delayed prunes recorded for a replica, for the objects in `scope` (and in
/// `focus`, when given).
fn deferred_prunes(
    store: &Store,
    replica: &str,
    scope: &Scope,
    focus: Focus<'_>,
) -> Result<HashMap<ObjectRef, DeferredPrune>, store::Error> {
    let records = match focus {
        // A few objects (one after an event): a lookup each, not a scan of the replica's.
        Focus::Objects(focus) if focus.len() <= 16 => {
            let mut records = Vec::new();
            for r in focus {
                let object = (r.kind.id(), r.namespace.as_str(), r.name.as_str());
                records.extend(store.deferred_prunes(replica, Some(object))?);
            }
            records
        }
        _ => store.deferred_prunes(replica, None)?,
    };
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let kind = kinds::by_id(&record.kind)?;
            let reference = ObjectRef {
                kind,
                namespace: record.namespace.clone(),
                name: record.name.clone(),
            };
            let in_scope = scope.kinds.contains(kind)
                && scope.admits_namespace(&reference.namespace).is_ok()
                && focus.admits(&reference);
            in_scope.then_some((reference, record))
        })
        .collect())
}
