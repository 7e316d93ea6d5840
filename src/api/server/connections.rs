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
    evict: CancellationToken,
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

    /// Waits until a new connection could be admitted: room is free, or some connection is
    /// waiting and may be evicted. Every slot busy serving a request means waiting for one.
    pub(super) async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            {
                let open = self.lock();
                if open.by_id.len() < self.cap
                    || open.by_id.values().any(|e| e.waiting_since.is_some())
                {
                    return;
                }
            }
            freed.await;
        }
    }

    /// Admits a connection, evicting the one that has waited longest when full (see
    /// [`Connections::room`]; with no room and none to evict it is admitted over the cap, which
    /// the accept loop never lets happen).
    pub(super) fn admit(self: &Arc<Self>) -> (Slot, Admission) {
        let mut open = self.lock();
        let mut admission = Admission::Admitted;
        if open.by_id.len() >= self.cap {
            let oldest = open
                .by_id
                .iter()
                .filter_map(|(id, e)| e.waiting_since.map(|since| (since, *id)))
                .min();
            if let Some((_, id)) = oldest {
                let entry = open.by_id.remove(&id).expect("just found");
                entry.evict.cancel();
                admission = Admission::Evicted;
            }
        }
        let id = open.next;
        open.next += 1;
        let evict = CancellationToken::new();
        open.by_id.insert(
            id,
            Entry {
                waiting_since: Some(Instant::now()),
                evict: evict.clone(),
            },
        );
        let slot = Slot {
            id,
            evict,
            connections: self.clone(),
        };
        (slot, admission)
    }

    fn set_waiting(&self, id: u64, waiting: bool) {
        if let Some(entry) = self.lock().by_id.get_mut(&id) {
            entry.waiting_since = waiting.then(Instant::now);
        }
        if waiting {
            self.freed.notify_one();
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
        self.connections.freed.notify_one();
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

    #[test]
    fn a_full_listener_evicts_the_connection_waiting_longest_never_one_being_served() {
        let connections = Connections::new(2);
        let (first, admitted) = connections.admit();
        assert_eq!(admitted, Admission::Admitted);
        let first = Arc::new(first);
        let (second, _) = connections.admit();
        let serving = first.serving();
        let (third, admission) = connections.admit();
        assert_eq!(admission, Admission::Evicted);
        assert!(second.evict.is_cancelled(), "the waiting one made room");
        assert!(!first.evict.is_cancelled(), "never the one being served");
        assert_eq!(connections.lock().by_id.len(), 2);
        // Served, then idle: it waits from the end of its request, after the third came.
        drop(serving);
        let (_fourth, admission) = connections.admit();
        assert_eq!(admission, Admission::Evicted);
        assert!(third.evict.is_cancelled(), "waiting longer than the first");
        assert!(!first.evict.is_cancelled());
    }

    #[tokio::test]
    async fn with_every_slot_serving_there_is_room_only_once_one_frees() {
        let connections = Connections::new(1);
        let (slot, _) = connections.admit();
        let slot = Arc::new(slot);
        let serving = slot.serving();
        let room = connections.room();
        tokio::pin!(room);
        assert!(futures::poll!(room.as_mut()).is_pending());
        drop(serving);
        room.await;
    }
}
