//! What is out of step on one replica now, so that its gauges say what is true: drifted
//! objects, held and delayed prunes, and the age of the oldest change not yet applied.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::diff::{Action, Deferral, Plan};
use crate::report::Report;
use crate::snapshot::ObjectRef;

/// Why an object is out of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// A change waits to be applied (queued, waiting for the primary or for the replica).
    Pending,
    /// Its change failed.
    Failed,
    /// The replica has its own copy, left alone.
    Conflict,
    /// A prune held over `--max-prune`.
    Held,
    /// A prune waiting for `--prune-delay`.
    Delayed,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    since: Instant,
    standing: Standing,
}

/// The objects out of step on one replica.
#[derive(Debug, Default)]
pub(super) struct Tracker(Mutex<HashMap<ObjectRef, Tracked>>);

/// The numbers the gauges show.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Figures {
    pub drifted: usize,
    pub held: usize,
    pub delayed: usize,
    pub lag: Duration,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef, Tracked>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change of `reference` seen at `seen` waits to be applied.
    pub(super) fn queued(&self, reference: &ObjectRef, seen: Instant) {
        let mut entries = self.lock();
        match entries.get_mut(reference) {
            Some(t) if matches!(t.standing, Standing::Pending | Standing::Failed) => {
                t.since = t.since.min(seen);
                t.standing = Standing::Pending;
            }
            _ => {
                entries.insert(
                    reference.clone(),
                    Tracked {
                        since: seen,
                        standing: Standing::Pending,
                    },
                );
            }
        }
    }

    /// Records how a pass about `focus` (every object, for a full pass that started at
    /// `started`) left the replica.
    pub(super) fn passed(
        &self,
        plan: &Plan,
        report: &Report,
        focus: Option<&ObjectRef>,
        started: Instant,
    ) {
        let mut entries = self.lock();
        // What the pass covers starts afresh, keeping how long each object has been out of step.
        let mut previous = HashMap::new();
        match focus {
            Some(reference) => {
                if let Some(t) = entries.remove(reference) {
                    previous.insert(reference.clone(), t.since);
                }
            }
            // Changes queued while the pass ran are not covered by it.
            None => entries.retain(|reference, t| {
                let keep = t.standing == Standing::Pending && t.since >= started;
                if !keep {
                    previous.insert(reference.clone(), t.since);
                }
                keep
            }),
        }
        let now = Instant::now();
        let mut set = |reference: ObjectRef, standing| {
            let since = entries
                .get(&reference)
                .map(|t| t.since)
                .or_else(|| previous.get(&reference).copied())
                .unwrap_or(now);
            entries.insert(reference, Tracked { since, standing });
        };
        for change in &plan.changes {
            let standing = match (change.action, change.deferral) {
                (_, Some(Deferral::Held)) => Standing::Held,
                (_, Some(Deferral::Delayed { .. })) => Standing::Delayed,
                (Action::Conflict, None) => Standing::Conflict,
                _ => continue,
            };
            set(change.reference(), standing);
        }
        for reference in &report.unfinished {
            set(reference.clone(), Standing::Failed);
        }
        if plan.summary.waiting > 0
            && let Some(reference) = focus
        {
            set(reference.clone(), Standing::Pending);
        }
    }

    /// The numbers now.
    pub(super) fn figures(&self) -> Figures {
        let entries = self.lock();
        let mut figures = Figures {
            drifted: entries.len(),
            ..Figures::default()
        };
        for tracked in entries.values() {
            match tracked.standing {
                Standing::Held => figures.held += 1,
                Standing::Delayed => figures.delayed += 1,
                Standing::Pending | Standing::Failed => {
                    figures.lag = figures.lag.max(tracked.since.elapsed());
                }
                Standing::Conflict => {}
            }
        }
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{Change, Summary};
    use crate::kinds::by_plural;

    fn reference(name: &str) -> ObjectRef {
        ObjectRef {
            kind: by_plural("configmaps").unwrap(),
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    fn plan(changes: Vec<(&str, Action, Option<Deferral>)>) -> Plan {
        let changes: Vec<Change> = changes
            .into_iter()
            .map(|(name, action, deferral)| Change {
                action,
                reason: None,
                kind: by_plural("configmaps").unwrap(),
                namespace: "shop".into(),
                name: name.into(),
                desired_key: None,
                live_key: None,
                applied_key: None,
                changed_paths: vec![],
                immutable_paths: vec![],
                found_by: vec![],
                secret_keys: None,
                deferral,
            })
            .collect();
        Plan {
            replica: "r".into(),
            summary: Summary::default(),
            missing_namespaces: vec![],
            changes,
            waiting: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn object_passes_do_not_overwrite_what_others_left_out_of_step() {
        let tracker = Tracker::default();
        let start = Instant::now();
        let full = plan(vec![
            ("conflict", Action::Conflict, None),
            ("held", Action::Prune, Some(Deferral::Held)),
            ("ok", Action::InSync, None),
        ]);
        tracker.passed(&full, &Report::default(), None, start);
        assert_eq!(tracker.figures().drifted, 2);
        // A later pass of another object, in step, leaves the two as they are.
        tracker.queued(&reference("other"), Instant::now());
        assert_eq!(tracker.figures().drifted, 3);
        let object = plan(vec![("other", Action::Update, None)]);
        tracker.passed(
            &object,
            &Report::default(),
            Some(&reference("other")),
            start,
        );
        let figures = tracker.figures();
        assert_eq!((figures.drifted, figures.held, figures.delayed), (2, 1, 0));
        assert_eq!(
            figures.lag,
            Duration::ZERO,
            "held prunes and conflicts are no lag"
        );
    }

    #[test]
    fn the_lag_is_the_age_of_the_oldest_change_not_applied() {
        let tracker = Tracker::default();
        let old = Instant::now() - Duration::from_secs(30);
        tracker.queued(&reference("a"), old);
        tracker.queued(&reference("b"), Instant::now());
        assert!(tracker.figures().lag >= Duration::from_secs(30));
        let failed = Report {
            unfinished: vec![reference("a")],
            ..Report::default()
        };
        let object = plan(vec![("a", Action::Update, None)]);
        tracker.passed(&object, &failed, Some(&reference("a")), Instant::now());
        assert!(
            tracker.figures().lag >= Duration::from_secs(30),
            "a failed change keeps its age"
        );
        let object = plan(vec![("a", Action::Update, None)]);
        tracker.passed(
            &object,
            &Report::default(),
            Some(&reference("a")),
            Instant::now(),
        );
        assert!(tracker.figures().lag < Duration::from_secs(30));
        assert_eq!(tracker.figures().drifted, 1);
    }
}
