//! What watch mode says of itself: readiness (`/readyz`), the status of the primary, the
//! replicas and the watchers (`/api/status`), and each watcher's state.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::{Watch, WatcherState};

impl Watch {
    /// Whether the process is in step: `Err` says why not (`/readyz`).
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self.leadership.refusal() {
            return Err(reason);
        }
        if let Some(reason) = self.state.unreachable() {
            return Err(format!(
                "primary {} is unreachable: {reason}",
                self.primary_name
            ));
        }
        self.state.complete()?;
        if let Some(held) = self.state.held() {
            return Err(format!("{held}; its changes wait"));
        }
        if !self.first_pass_done.load(Ordering::Acquire) {
            return Err("the first full pass is not done".into());
        }
        if let Some(problem) = self.replicas.iter().find_map(|r| r.health.problem()) {
            return Err(format!("replica {problem}"));
        }
        let watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((name, _)) = watchers
            .iter()
            .find(|(_, s)| !matches!(s, WatcherState::Running | WatcherState::Unserved))
        {
            return Err(format!("watcher {name} is not running"));
        }
        Ok(())
    }

    /// What `/api/status` shows of the primary, the replicas and the watchers.
    pub fn status(&self) -> Value {
        let waiting: BTreeMap<String, String> = self
            .pass()
            .scope
            .kinds
            .iter()
            .filter_map(|k| self.state.authority(k).err().map(|e| (k.short_name(), e)))
            .collect();
        let unreachable = self.state.unreachable();
        let primary = json!({
            "name": self.primary_name,
            "kind": "cluster",
            "source": self.state.source(),
            "reachable": unreachable.is_none(),
            "version": self.primary_health.version(),
            "error": unreachable,
            "authoritative": waiting.is_empty(),
            "waiting": waiting,
            "objects": self.state.len(),
            "last_pass": self.store.last_pass().ok().flatten(),
        });
        let replicas: Vec<Value> = self
            .replicas
            .iter()
            .map(|replica| {
                let figures = replica.tracker.figures();
                let last_success = self
                    .metrics
                    .replica_gauge(&self.metrics.last_success, &replica.name)
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .map(|t| t.to_string());
                json!({
                    "name": replica.name,
                    "kind": "cluster",
                    "reachable": replica.health.problem().is_none(),
                    "version": replica.health.version(),
                    "error": replica.health.problem(),
                    "drifted": figures.drifted,
                    "held": figures.held,
                    "delayed": figures.delayed,
                    "lag_seconds": figures.lag.as_secs_f64(),
                    "queued": replica.queue.len(),
                    "last_success": last_success,
                })
            })
            .collect();
        let watchers = self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let leader = json!({
            "leading": self.leading(),
            "identity": self.leadership.identity(),
            "holder": self.leadership.holder(),
            "lease": self.leadership.lease(),
        });
        json!({"primary": primary, "replicas": replicas, "watchers": watchers, "leader": leader})
    }

    /// Drops the watchers of `kind` from the status and the metric (the kind is no longer
    /// synced).
    pub(super) fn forget_watchers_of(&self, kind: &crate::kinds::Kind) {
        let suffix = format!("/{}", kind.short_name());
        let infix = format!("/{}/", kind.short_name());
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|name, _| {
            let of_kind = name.ends_with(&suffix) || name.contains(&infix);
            if of_kind {
                let _ = self.metrics.watchers.remove_label_values(&[name]);
            }
            !of_kind
        });
    }

    /// [`mark`](Self::mark), unless `stop` is cancelled: a watcher stopped with its kind leaves
    /// no state behind (checked under the lock that [`forget_watchers_of`](Self::forget_watchers_of)
    /// takes after cancelling).
    pub(super) fn mark_unless(
        &self,
        stop: &tokio_util::sync::CancellationToken,
        watcher: &str,
        state: WatcherState,
    ) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if stop.is_cancelled() {
            return;
        }
        let running = i64::from(state == WatcherState::Running);
        self.metrics
            .watchers
            .with_label_values(&[watcher])
            .set(running);
        watchers.insert(watcher.to_string(), state);
    }

    /// Whether a watcher of `cluster` lost its stream or found its resource unserved.
    pub(super) fn watcher_failing(&self, cluster: &str) -> bool {
        let prefix = format!("{cluster}/");
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(name, state)| {
                name.starts_with(&prefix)
                    && matches!(state, WatcherState::Recovering(_) | WatcherState::Unserved)
            })
    }

    /// Records a watcher's state in the status and the metric.
    pub(super) fn mark(&self, watcher: &str, state: WatcherState) {
        let running = i64::from(state == WatcherState::Running);
        self.metrics
            .watchers
            .with_label_values(&[watcher])
            .set(running);
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(watcher.to_string(), state);
    }
}
