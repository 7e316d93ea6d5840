//! Whether a cluster answers, as watch mode last saw it: each change of state is logged once
//! (not once per failed request or watcher retry) and kept with its reason and time.

use std::sync::Mutex;

use tracing::{info, warn};

/// A cluster's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Answering.
    Up,
    /// Not answering, for `reason`.
    Down {
        /// The error that showed it.
        reason: String,
    },
    /// Answering again; a full pass of it is catching up before work on it resumes.
    CatchingUp,
}

/// The health of one cluster, shared by everything that talks to it.
#[derive(Debug)]
pub struct Health {
    cluster: String,
    state: Mutex<State>,
    version: Mutex<Option<String>>,
    changed: tokio::sync::Notify,
}

impl Health {
    /// A cluster not known to be down.
    pub fn new(cluster: &str) -> Self {
        Health {
            cluster: cluster.to_string(),
            state: Mutex::new(State::Up),
            version: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The server version it last answered with.
    pub fn version(&self) -> Option<String> {
        self.version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the server version it answered with.
    pub fn answered(&self, version: String) {
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
    }

    /// Whether work may be sent to it.
    pub fn is_up(&self) -> bool {
        *self.lock() == State::Up
    }

    /// Why it is not up, when it is not.
    pub fn problem(&self) -> Option<String> {
        match &*self.lock() {
            State::Up => None,
            State::Down { reason, .. } => {
                Some(format!("{} is unreachable: {reason}", self.cluster))
            }
            State::CatchingUp => Some(format!("{} is catching up", self.cluster)),
        }
    }

    /// Records that it did not answer. Returns whether that is news.
    pub fn down(&self, reason: &str) -> bool {
        let mut state = self.lock();
        if matches!(*state, State::Down { .. }) {
            return false;
        }
        warn!(cluster = %self.cluster, %reason, "cluster unreachable; its work waits until it is back");
        *state = State::Down {
            reason: reason.to_string(),
        };
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// Records that it answers again and is being caught up.
    pub fn catching_up(&self) {
        let mut state = self.lock();
        if matches!(*state, State::Down { .. }) {
            info!(cluster = %self.cluster, "cluster answers again; catching up with a full pass");
            *state = State::CatchingUp;
        }
    }

    /// Records that it answers and work may go to it.
    pub fn up(&self) {
        let mut state = self.lock();
        if *state == State::Up {
            return;
        }
        info!(cluster = %self.cluster, "cluster in step again");
        *state = State::Up;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Waits until it is up.
    pub async fn until_up(&self) {
        loop {
            let changed = self.changed.notified();
            if self.is_up() {
                return;
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_of_state_is_news_once() {
        let health = Health::new("dr");
        assert!(health.is_up());
        assert!(health.down("connection refused"));
        assert!(!health.down("connection refused"), "still down: no news");
        assert_eq!(
            health.problem().as_deref(),
            Some("dr is unreachable: connection refused")
        );
        health.catching_up();
        assert!(!health.is_up(), "no work while a full pass catches up");
        let waiter = {
            let health = std::sync::Arc::new(health);
            let waiting = health.clone();
            let task = tokio::spawn(async move { waiting.until_up().await });
            tokio::task::yield_now().await;
            health.up();
            task
        };
        waiter.await.unwrap();
    }
}
