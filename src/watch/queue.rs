//! The work queue of watch mode: deduplicating, fair, and never handing one item to two
//! workers at once.
//!
//! An item added while it waits is merged with the waiting one (keeping the earliest time it
//! was seen, for propagation latency); an item added while a worker holds it is queued again
//! when that worker is done. An item is handed out only once `delay` has passed since it was
//! first seen, so the updates of a burst gather on it first. So a burst of updates to one object
//! costs a handful of passes, each over the object's latest state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A deduplicating work queue of `T`.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
    delay: Duration,
    closing: tokio_util::sync::CancellationToken,
}

struct State<T> {
    order: VecDeque<T>,
    /// Items waiting, with the earliest time each was added since it was last taken.
    waiting: HashMap<T, Instant>,
    /// Items a worker holds.
    taken: HashSet<T>,
    closed: bool,
}

impl<T: Clone + Eq + Hash> WorkQueue<T> {
    /// An empty queue that hands items out as soon as they are added.
    pub fn new() -> Self {
        Self::with_delay(Duration::ZERO)
    }

    /// An empty queue that hands an item out `delay` after it was first seen.
    pub fn with_delay(delay: Duration) -> Self {
        WorkQueue {
            delay,
            state: Mutex::new(State {
                order: VecDeque::new(),
                waiting: HashMap::new(),
                taken: HashSet::new(),
                closed: false,
            }),
            ready: Notify::new(),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Resolves once the queue is closed.
    pub async fn until_closed(&self) {
        self.closing.cancelled().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item seen at `seen`. Returns false when it merged with one already waiting.
    pub fn add(&self, item: T, seen: Instant) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if let Some(earliest) = state.waiting.get_mut(&item) {
            *earliest = (*earliest).min(seen);
            return false;
        }
        state.waiting.insert(item.clone(), seen);
        if !state.taken.contains(&item) {
            state.order.push_back(item);
            drop(state);
            self.ready.notify_one();
        }
        true
    }

    /// Takes the next item and when it was first seen; `None` once the queue is closed.
    ///
    /// Items come out in the order they were first queued, so when the oldest is not due yet,
    /// none is: the worker sleeps until it is, or until something changes.
    pub async fn take(&self) -> Option<(T, Instant)> {
        loop {
            let notified = self.ready.notified();
            let due_in = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                match state.order.front() {
                    None => None,
                    Some(front) => {
                        let due = state.waiting[front] + self.delay;
                        let now = Instant::now();
                        if due <= now {
                            let item = state.order.pop_front().expect("a front item");
                            let seen = state
                                .waiting
                                .remove(&item)
                                .expect("queued items are waiting");
                            state.taken.insert(item.clone());
                            if !state.order.is_empty() {
                                self.ready.notify_one();
                            }
                            return Some((item, seen));
                        }
                        Some(due - now)
                    }
                }
            };
            match due_in {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Gives an item back after work on it ended; queues it again if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let mut state = self.lock();
        state.taken.remove(item);
        if state.waiting.contains_key(item) && !state.closed {
            state.order.push_back(item.clone());
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Items waiting (not those being worked on).
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every waiting item out (a full pass is about to cover them); items being worked
    /// on stay taken.
    pub fn drain(&self) -> Vec<T> {
        let mut state = self.lock();
        let left: Vec<T> = state.order.drain(..).collect();
        for item in &left {
            state.waiting.remove(item);
        }
        left
    }

    /// Stops handing out items; returns those still waiting, so they can be recorded.
    pub fn close(&self) -> Vec<T> {
        let mut state = self.lock();
        state.closed = true;
        let left: Vec<T> = state.order.drain(..).collect();
        state.waiting.clear();
        drop(state);
        self.closing.cancel();
        self.ready.notify_waiters();
        left
    }
}

impl<T: Clone + Eq + Hash> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn merges_an_item_added_while_it_waits() {
        let queue = WorkQueue::new();
        let t0 = Instant::now();
        assert!(queue.add("a", t0 + Duration::from_millis(5)));
        assert!(!queue.add("a", t0));
        assert!(queue.add("b", t0));
        assert_eq!(queue.len(), 2);
        assert_eq!(
            queue.take().await,
            Some(("a", t0)),
            "keeps the earliest time, and its place"
        );
        assert_eq!(queue.take().await.map(|(i, _)| i), Some("b"));
    }

    #[tokio::test]
    async fn never_hands_a_taken_item_to_a_second_worker() {
        let queue = WorkQueue::new();
        let now = Instant::now();
        queue.add("a", now);
        let (item, _) = queue.take().await.unwrap();
        queue.add("a", now);
        queue.add("a", now);
        assert!(queue.is_empty(), "held by a worker: waits for done");
        queue.done(&item);
        assert_eq!(queue.len(), 1, "added again while held: queued once");
        queue.take().await.unwrap();
        queue.done(&"a");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn holds_items_back_until_their_delay_passed() {
        let queue = WorkQueue::with_delay(Duration::from_millis(40));
        let start = Instant::now();
        queue.add("a", start);
        let (item, seen) = queue.take().await.unwrap();
        assert_eq!((item, seen), ("a", start));
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "{:?}",
            start.elapsed()
        );
        // An item seen long ago is due at once.
        let old = Instant::now() - Duration::from_secs(1);
        queue.add("b", old);
        let before = Instant::now();
        assert_eq!(queue.take().await.map(|(i, _)| i), Some("b"));
        assert!(before.elapsed() < Duration::from_millis(40));
    }

    #[tokio::test]
    async fn draining_takes_what_waits_and_keeps_what_is_taken() {
        let queue = WorkQueue::new();
        let now = Instant::now();
        queue.add("a", now);
        queue.add("b", now);
        let (taken, _) = queue.take().await.unwrap();
        queue.add(taken, now);
        assert_eq!(queue.drain(), vec!["b"]);
        assert!(queue.is_empty());
        queue.done(&taken);
        assert_eq!(
            queue.len(),
            1,
            "added again while held: still queued after done"
        );
    }

    #[tokio::test]
    async fn a_thousand_updates_collapse() {
        let queue = WorkQueue::new();
        let now = Instant::now();
        let added = (0..1000).filter(|_| queue.add("cm", now)).count();
        assert_eq!(added, 1);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn wakes_a_waiting_worker_and_stops_on_close() {
        let queue = std::sync::Arc::new(WorkQueue::new());
        let worker = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.take().await.map(|(i, _)| i) })
        };
        tokio::task::yield_now().await;
        queue.add(7, Instant::now());
        assert_eq!(worker.await.unwrap(), Some(7));

        let idle = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.take().await })
        };
        tokio::task::yield_now().await;
        queue.add(8, Instant::now());
        let _ = idle.await.unwrap();
        queue.add(9, Instant::now());
        assert_eq!(queue.close(), vec![9], "waiting items are handed back");
        assert_eq!(queue.take().await, None);
        assert!(
            !queue.add(10, Instant::now()),
            "a closed queue takes nothing"
        );
    }
}
