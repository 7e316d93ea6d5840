//! Never destroy the copy: which changes of a [`Plan`] may run in this pass.
//!
//! A replica is someone's disaster recovery, so every pass, whatever mode runs it, goes
//! through [`gate`] between planning and applying:
//! - changes of a kind whose primary state is not authoritative (not listed in full by this
//!   process, or the primary unreachable) are left out: nothing is written for that kind;
//! - a prune already held stays held until an operator releases it (or `--force-prune`),
//!   whether this process recorded the hold or another copy did (the replica's object carries
//!   [`PRUNE_HELD_ANNOTATION`](crate::normalize::PRUNE_HELD_ANNOTATION));
//! - a prune within `--prune-delay` of its deletion on the primary waits (`delayed`);
//! - a pass that would prune more than `--max-prune` on one replica (over the sliding window,
//!   in watch mode) prunes none of them: they are held;
//! - held or delayed prunes whose objects are back on the primary, or gone from the replica,
//!   are cancelled.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::diff::{Action, Deferral, Plan};
use crate::kinds::Kind;
use crate::snapshot::{ObjectRef, Snapshot};
use crate::store::{DeferredPrune, Status};

/// The least number of prunes a percentage of `--max-prune` allows, so that a small replica
/// can still follow a few deletions.
pub const MIN_PRUNE_LIMIT: usize = 10;

/// `--max-prune`: how many prunes one replica takes in one pass (in watch mode, in one
/// window): a count, or a percentage of the objects the source manages there (at least
/// [`MIN_PRUNE_LIMIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrune {
    /// At most this many.
    Count(usize),
    /// At most this percentage of the replica's managed objects, and never fewer than
    /// [`MIN_PRUNE_LIMIT`].
    Percent(u32),
}

impl Default for MaxPrune {
    fn default() -> Self {
        MaxPrune::Percent(10)
    }
}

impl MaxPrune {
    /// The limit on a replica where the source manages `managed` objects.
    pub fn limit(self, managed: usize) -> usize {
        match self {
            MaxPrune::Count(n) => n,
            MaxPrune::Percent(p) => (managed * p as usize).div_ceil(100).max(MIN_PRUNE_LIMIT),
        }
    }
}

impl fmt::Display for MaxPrune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxPrune::Count(n) => write!(f, "{n}"),
            MaxPrune::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `--max-prune` was neither a count nor a percentage.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a count (10) or a percentage from 0% to 100% (10%)")]
pub struct InvalidMaxPrune(String);

impl FromStr for MaxPrune {
    type Err = InvalidMaxPrune;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidMaxPrune(text.to_string());
        match text.trim().strip_suffix('%') {
            Some(percent) => {
                let p: u32 = percent.trim().parse().map_err(|_| invalid())?;
                if p > 100 {
                    return Err(invalid());
                }
                Ok(MaxPrune::Percent(p))
            }
            None => Ok(MaxPrune::Count(text.trim().parse().map_err(|_| invalid())?)),
        }
    }
}

/// The prune rules of a pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneRules {
    /// `--max-prune`.
    pub max: MaxPrune,
    /// `--force-prune`: prune past the limit, held prunes included.
    pub force: bool,
    /// `--prune-delay`: how long an object must stay deleted on the primary before its copies
    /// are pruned.
    pub delay: Duration,
}

/// The prunes a replica took recently, so that a limit holds over a sliding window in watch
/// mode, where deletions arrive one at a time. A budget without a window holds for one pass.
#[derive(Debug, Default)]
pub struct PruneBudget {
    window: Option<Duration>,
    taken: Mutex<VecDeque<Instant>>,
}

impl PruneBudget {
    /// A budget over a sliding `window`.
    pub fn over(window: Duration) -> Self {
        PruneBudget {
            window: Some(window),
            taken: Mutex::default(),
        }
    }

    /// Takes `count` prunes when, with those taken within the window, they stay within
    /// `limit` (or always, when forced). Returns whether they were taken.
    fn take(&self, count: usize, limit: usize, force: bool) -> bool {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match self.window {
            Some(window) => {
                while taken
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    taken.pop_front();
                }
            }
            None => taken.clear(),
        }
        if !force && taken.len() + count > limit {
            return false;
        }
        taken.extend(std::iter::repeat_n(now, count));
        true
    }

    /// Prunes taken within the window now.
    pub fn recent(&self) -> usize {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        match self.window {
            Some(window) => taken.iter().filter(|t| t.elapsed() < window).count(),
            None => 0,
        }
    }
}

/// Says whether the primary's state of a kind may drive writes.
pub trait Authority: Sync {
    /// `Ok` when the state of `kind` is authoritative; `Err` says why not.
    fn authority(&self, kind: &Kind) -> Result<(), String>;
}

impl<F: Fn(&Kind) -> Result<(), String> + Sync> Authority for F {
    fn authority(&self, kind: &Kind) -> Result<(), String> {
        self(kind)
    }
}

/// An authority under which every kind is authoritative: a primary listed in full just now
/// (a one-shot pass, a directory).
pub fn listed_in_full(_: &Kind) -> Result<(), String> {
    Ok(())
}

/// What a pass knows when it decides.
pub struct Context<'a> {
    /// The primary's state the plan was made from.
    pub desired: &'a Snapshot,
    /// The replica's state the plan was made from.
    pub live: &'a Snapshot,
    /// Now, for due times.
    pub now: jiff::Timestamp,
    /// Objects the source manages on the replica (the base of a percentage limit).
    pub managed: usize,
    /// The held and delayed prunes recorded for the objects this pass is about.
    pub deferred: &'a HashMap<ObjectRef, DeferredPrune>,
    /// Which kinds are authoritative.
    pub authority: &'a dyn Authority,
    /// The replica's prune budget.
    pub budget: &'a PruneBudget,
}

/// Decides which changes of `plan` run now (see the module's documentation). Returns the held
/// or delayed prunes to cancel: their objects are no longer to be pruned (the primary has them
/// again, or the replica no longer has them).
pub fn gate(plan: &mut Plan, rules: &PruneRules, context: &Context<'_>) -> Vec<ObjectRef> {
    let mut waiting: Vec<(String, String)> = Vec::new();
    let mut left_out = 0;
    plan.changes
        .retain(|change| match context.authority.authority(change.kind) {
            Ok(()) => true,
            Err(reason) => {
                if !waiting.iter().any(|(k, _)| *k == change.kind.short_name()) {
                    waiting.push((change.kind.short_name(), reason));
                }
                left_out += usize::from(change.action.is_drift());
                false
            }
        });
    // The namespaces to create stay: creating one destroys nothing.
    plan.summary.waiting += left_out;
    plan.waiting.extend(waiting);

    let cancelled: Vec<ObjectRef> = context
        .deferred
        .keys()
        .filter(|r| context.authority.authority(r.kind).is_ok())
        .filter(|r| {
            context.desired.objects.contains_key(*r) || !context.live.objects.contains_key(*r)
        })
        .cloned()
        .collect();

    let mut due_now = Vec::new();
    for (index, change) in plan.changes.iter_mut().enumerate() {
        if change.action != Action::Prune {
            continue;
        }
        let reference = change.reference();
        let record = context.deferred.get(&reference);
        let marked = context
            .live
            .objects
            .get(&reference)
            .and_then(|e| e.applied.as_ref())
            .is_some_and(|a| a.prune_held);
        let held = marked || record.is_some_and(|r| r.status == Status::Held);
        if held && !rules.force {
            change.deferral = Some(Deferral::Held);
            continue;
        }
        // A held prune was due when it was held: forced, it runs now, whatever the delay.
        if !held && !rules.delay.is_zero() {
            let recorded = record
                .filter(|r| r.status == Status::Delayed)
                .and_then(|r| r.due_at);
            let due = recorded.unwrap_or_else(|| {
                context
                    .now
                    .checked_add(rules.delay)
                    .unwrap_or(jiff::Timestamp::MAX)
            });
            if due > context.now {
                change.deferral = Some(Deferral::Delayed { due });
                continue;
            }
        }
        due_now.push(index);
    }
    let limit = rules.max.limit(context.managed);
    if !due_now.is_empty() && !context.budget.take(due_now.len(), limit, rules.force) {
        for index in due_now {
            plan.changes[index].deferral = Some(Deferral::Held);
        }
    }
    plan.recount();
    cancelled
}

/// The objects of `live` that `desired`'s source manages.
pub fn managed(desired: &Snapshot, live: &Snapshot) -> usize {
    live.objects
        .values()
        .filter(|e| e.applied.as_ref().is_some_and(|a| desired.owns(a)))
        .count()
}

#[cfg(test)]
mod tests;
