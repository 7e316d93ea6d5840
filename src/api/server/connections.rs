//! The connections a listener holds, at most `--max-connections`: when full, the oldest
//! connection that is still sending its request (or sits idle between requests) makes room
//! for the new one. A client that is slow on purpose thus holds a slot only until newer
//! clients need it, and a well-behaved request is answered whatever many slow ones hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// Every open connection of a listener.
pub(super) struct Connections {
    cap: usize,
    open: Mutex<Open>,
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct Open {
    next: u64,
    by_id: HashMap<u64, Entry>,
}

struct Entry {
    /// Since when it has been sending a request or idle; `None` while a request is served.
    waiting_since: Option<Instant>,
    /// Told to close, to make room; its place is freed once it has.
    evicting: bool,
    evict: CancellationToken,
}

impl Entry {
    fn evictable(&self) -> Option<Instant> {
        self.waiting_since.filter(|_| !self.evicting)
    }
}

/// What [`Connections::admit`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Room was free.
    Admitted,
    /// The oldest waiting connection was closed to make room.
    Evicted,
}

impl Connections {
    /// Room for `cap` connections (at least one).
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Connections {
            cap: cap.max(1),
            open: Mutex::default(),
            freed: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `ready` holds of the open connections, checked again whenever one closes
    /// or starts waiting.
    async fn until(&self, ready: impl Fn(&Open) -> bool) {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(&self.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until a new connection could be admitted: room is free, or some connection is
    /// waiting and may be evicted. Every place busy serving a request means waiting for one.
    pub(super) async fn room(&self) {
        let cap = self.cap;
        self.until(|open| {
            open.by_id.len() < cap || open.by_id.values().any(|e| e.evictable().is_some())
        })
        .await;
    }

    /// Admits a connection. When full, the connection that has waited longest is told to
    /// close, and this returns once it has: no more than the cap are ever open (the one just
    /// accepted aside).
    pub(super) async fn admit(self: &Arc<Self>) -> (Slot, Admission) {
        let evicted = {
            let mut open = self.lock();
            if open.by_id.len() < self.cap {
                None
            } else {
                let oldest = open
                    .by_id
                    .iter()
                    .filter_map(|(id, e)| e.evictable().map(|since| (since, *id)))
                    .min()
                    .map(|(_, id)| id);
                if let Some(id) = oldest {
                    let entry = open.by_id.get_mut(&id).expect("just found");
                    entry.evicting = true;
                    entry.evict.cancel();
                }
                oldest
            }
        };
        if let Some(id) = evicted {
            self.until(|open| !open.by_id.contains_key(&id)).await;
        }
        let mut open = self.lock();
        let id = open.next;
        open.next += 1;
        let evict = CancellationToken::new();
        open.by_id.insert(
            id,
            Entry {
                waiting_since: Some(Instant::now()),
                evicting: false,
                evict: evict.clone(),
            },
        );
        let slot = Slot {
            id,
            evict,
            connections: self.clone(),
        };
        let admission = if evicted.is_some() {
            Admission::Evicted
        } else {
            Admission::Admitted
        };
        (slot, admission)
    }

    fn set_waiting(&self, id: u64, waiting: bool) {
        if let Some(entry) = self.lock().by_id.get_mut(&id) {
            entry.waiting_since = waiting.then(Instant::now);
        }
        if waiting {
            self.freed.notify_waiters();
        }
    }
}

/// One connection's place; dropping it frees the place.
pub(super) struct Slot {
    id: u64,
    evict: CancellationToken,
    connections: Arc<Connections>,
}

impl Slot {
    /// Resolves when the connection is evicted to make room.
    pub(super) async fn evicted(&self) {
        self.evict.cancelled().await;
    }

    /// A request is being served: not to be evicted until [`Serving`] drops.
    pub(super) fn serving(self: &Arc<Self>) -> Serving {
        self.connections.set_waiting(self.id, false);
        Serving(self.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().by_id.remove(&self.id);
        self.connections.freed.notify_waiters();
    }
}

/// A request in service on a connection; when it drops, the connection waits again.
pub(super) struct Serving(Arc<Slot>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.connections.set_waiting(self.0.id, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_listener_evicts_the_connection_waiting_longest_never_one_being_served() {
        let connections = Connections::new(2);
        let (first, admitted) = connections.admit().await;
        assert_eq!(admitted, Admission::Admitted);
        let first = Arc::new(first);
        let (second, _) = connections.admit().await;
        let serving = first.serving();
        // The evicted connection's task closes it when told to; here, a task drops it.
        let evicted = tokio::spawn(async move {
            second.evicted().await;
            drop(second);
        });
        let (third, admission) = connections.admit().await;
        assert_eq!(admission, Admission::Evicted);
        evicted.await.unwrap();
        assert!(!first.evict.is_cancelled(), "never the one being served");
        assert_eq!(connections.lock().by_id.len(), 2);
        // Served, then idle: it waits from the end of its request, after the third came.
        drop(serving);
        let closing = tokio::spawn(async move {
            third.evicted().await;
            drop(third);
        });
        let (_fourth, admission) = connections.admit().await;
        assert_eq!(admission, Admission::Evicted);
        closing.await.unwrap();
        assert!(
            !first.evict.is_cancelled(),
            "it came back to waiting after the third"
        );
        assert_eq!(connections.lock().by_id.len(), 2);
    }

    #[tokio::test]
    async fn with_every_place_serving_there_is_room_only_once_one_frees() {
        let connections = Connections::new(1);
        let (slot, _) = connections.admit().await;
        let slot = Arc::new(slot);
        let serving = slot.serving();
        let room = connections.room();
        tokio::pin!(room);
        assert!(futures::poll!(room.as_mut()).is_pending());
        drop(serving);
        room.await;
    }
}
