//! Per-object work in watch mode: each replica's workers take its queue and run the one
//! plan-and-apply path for one object at a time. A replica known to be down gets no request:
//! its work waits in its queue (neither burning automatic retries nor failing) until its
//! probe sees it answer and a full pass of it catches up.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{Refusal, Replica, Watch, Work};
use crate::pass::{self, Focus, RecordedOptions};
use crate::report::Report;
use crate::retry::RetryPolicy;
use crate::snapshot::{ObjectRef, RawObject, Snapshot};

/// How one unit of work ended.
pub(super) enum Outcome {
    /// In step, or as far as the rules allow (held, delayed, conflict).
    Done,
    /// A change failed: retried automatically, a bounded number of times.
    Failed,
    /// The replica did not answer: the work waits for it.
    Unreachable,
    /// The primary's state of the kind is not authoritative: the full pass that follows its
    /// return covers the work.
    Waiting,
}

impl Watch {
    /// A worker of one replica: takes its work until the queue closes.
    pub(super) async fn work(self: Arc<Self>, replica: Arc<Replica>) {
        loop {
            tokio::select! {
                () = replica.health.until_up() => {}
                () = replica.queue.until_closed() => return,
            }
            let Some((work, seen)) = replica.queue.take().await else {
                return;
            };
            let outcome = match &work {
                Work::Namespace(namespace) => self.ensure_namespace(&replica, namespace).await,
                Work::Object(reference) => {
                    match self
                        .sync_object(&replica, reference, seen, None, false)
                        .await
                    {
                        Ok((_, outcome)) => outcome,
                        Err(error) => {
                            warn!(%error, "job database error");
                            Outcome::Failed
                        }
                    }
                }
            };
            replica.queue.done(&work);
            match outcome {
                Outcome::Done | Outcome::Waiting => replica.forget_retries(&work),
                // Not an attempt: it runs when the replica is back.
                Outcome::Unreachable => {
                    replica.queue.add(work, seen);
                }
                Outcome::Failed => self.retry_later(&replica, work, seen),
            }
        }
    }

    /// Queues failed work again after a backoff, a bounded number of times.
    fn retry_later(&self, replica: &Arc<Replica>, work: Work, seen: Instant) {
        let attempt = replica.count_retry(&work);
        if attempt > self.options.auto_retries {
            warn!(
                replica = %replica.name,
                ?work,
                "giving up after automatic retries; the job stays failed for /retry"
            );
            replica.forget_retries(&work);
            return;
        }
        let delay = RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            ..RetryPolicy::default()
        }
        .delay(attempt, None);
        let replica = replica.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            replica.queue.add(work, seen);
        });
    }

    async fn ensure_namespace(&self, replica: &Replica, namespace: &str) -> Outcome {
        if replica.knows_namespace(namespace) {
            return Outcome::Done;
        }
        if !self.leading() {
            return Outcome::Waiting;
        }
        match replica
            .cluster
            .ensure_namespace(namespace, self.pass().apply.dry_run)
            .await
        {
            Ok(()) => {
                replica.learn_namespaces([namespace.to_string()]);
                Outcome::Done
            }
            Err(error) if error.is_unreachable() => {
                replica.health.down(&format!("{error:#}"));
                Outcome::Unreachable
            }
            Err(error) => {
                warn!(replica = %replica.name, %namespace, %error, "cannot create namespace");
                Outcome::Failed
            }
        }
    }

    /// Brings one object in step on one replica: reads it there (unless it is known to be
    /// missing), then the one path, focused on it. With `recorded`, a retry runs with the
    /// options of the pass that made its job; with `force`, held prunes are released.
    pub(super) async fn sync_object(
        &self,
        replica: &Replica,
        reference: &ObjectRef,
        seen: Instant,
        recorded: Option<&RecordedOptions>,
        force: bool,
    ) -> Result<(Report, Outcome), Refusal> {
        // Not leading, like not authoritative: the full pass that starts a leadership covers
        // the work.
        let refusal = self
            .leadership
            .refusal()
            .map_or_else(|| self.state.authority(reference.kind), Err);
        if let Err(reason) = refusal {
            replica.tracker.queued(reference, seen);
            let report = Report {
                replica: replica.name.clone(),
                waiting: 1,
                error: Some(reason),
                ..Report::default()
            };
            return Ok((report, Outcome::Waiting));
        }
        let mut options = (*self.pass()).clone();
        let mut desired = self.state.snapshot_of(reference);
        if let Some(recorded) = recorded {
            options = options.with_recorded(recorded);
            recorded.name(&mut desired);
        }
        options.prune.force |= force;
        let wanted = desired.objects.contains_key(reference);
        // Without adoption, a copy the listing missed must be seen before anything is written.
        let known_missing = wanted && options.plan.adopt && replica.present.lacks(reference);
        let current = if known_missing {
            None
        } else {
            match replica
                .cluster
                .get(reference.kind, &reference.namespace, &reference.name)
                .await
            {
                Ok(current) => current,
                Err(error) => {
                    let unreachable = error.is_unreachable();
                    let report = Report {
                        replica: replica.name.clone(),
                        error: Some(format!("{error:#}")),
                        ..Report::default()
                    };
                    if unreachable {
                        replica.health.down(&format!("{error:#}"));
                        return Ok((report, Outcome::Unreachable));
                    }
                    warn!(replica = %replica.name, object = %reference, %error, "cannot read");
                    return Ok((report, Outcome::Failed));
                }
            }
        };
        let found = current.is_some();
        let raw = current.map(|value| RawObject {
            value,
            origin: replica.name.clone(),
            archived: None,
        });
        let scope = &options.scope;
        let mut live = match Snapshot::build(&replica.name, raw, scope) {
            Ok(live) => live,
            Err(error) => {
                warn!(replica = %replica.name, object = %reference, %error, "cannot read");
                return Ok((Report::default(), Outcome::Failed));
            }
        };
        if !reference.kind.namespaced || replica.knows_namespace(&reference.namespace) {
            live.namespaces.insert(reference.namespace.clone());
        }
        let focus = BTreeSet::from([reference.clone()]);
        let recorded_json = options.recorded(&desired);
        let (plan, report) = pass::run(
            &replica.cluster,
            &desired,
            &live,
            &options,
            Focus::Objects(&focus),
            self.safety(replica, Some(replica.managed())),
            self.journal(&recorded_json),
        )
        .await?;
        replica.learn_namespaces(plan.missing_namespaces.iter().cloned());
        if wanted {
            // Written, or failed and then worth a GET before the next attempt.
            replica.present.note_present(reference);
        } else if !found || report.pruned > 0 {
            replica.present.note_absent(reference);
        }
        replica
            .tracker
            .passed(&plan, &report, Some(reference), seen);
        self.schedule_delayed(replica, &plan);
        if report.applied() > 0 && report.failed == 0 {
            self.metrics
                .propagation_seconds
                .with_label_values(&[&replica.name])
                .observe(seen.elapsed().as_secs_f64());
        }
        let outcome = if report.interrupted > 0 && !self.leading() {
            Outcome::Waiting
        } else if report.interrupted > 0 {
            replica.health.down("a write got no answer");
            Outcome::Unreachable
        } else if report.failed > 0 {
            Outcome::Failed
        } else {
            Outcome::Done
        };
        Ok((report, outcome))
    }
}
