//! What a replica's watchers list as they start, kept for the first full pass.
//!
//! Before they watch, the watchers of a replica list every object of the synced kinds there:
//! the very listing a full pass makes. The first full pass plans from it instead of listing the
//! replica a second time, which at start would be the largest part of what the servers and
//! k8s-sync do. What the watchers see after their listing, until the pass takes it, updates it
//! (as a reflector's store), so that the pass plans from what the replica holds, however long
//! the primary takes to be listed. Every later pass (a resync, a replica catching up) lists
//! the replica itself.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::kinds::Kind;
use crate::snapshot::{self, ObjectRef, Prepared, Snapshot};

/// One watcher of a replica: its kind and the index of its collection (one per namespace of
/// `--sync-namespaces`).
pub(super) type Part = (&'static Kind, usize);

/// The listings of one replica's watchers until the first full pass takes them; afterwards
/// (or once given up) it holds nothing and takes nothing.
#[derive(Debug)]
pub(super) struct InitialListing {
    parts: Mutex<Option<HashMap<Part, Listed>>>,
    progress: Notify,
}

#[derive(Debug)]
struct Listed {
    snapshot: Snapshot,
    done: bool,
}

impl Default for InitialListing {
    /// Listings to collect.
    fn default() -> Self {
        InitialListing {
            parts: Mutex::new(Some(HashMap::new())),
            progress: Notify::new(),
        }
    }
}

impl InitialListing {
    /// A watcher starts a listing (its first, or again after a failure): what it listed before
    /// is dropped.
    pub(super) fn start(&self, part: Part, replica: &str) {
        if let Some(parts) = self.lock().as_mut() {
            parts.insert(
                part,
                Listed {
                    snapshot: Snapshot::new(replica),
                    done: false,
                },
            );
        }
    }

    /// Whether listings are still collected: while not, watchers need not prepare what they
    /// list.
    pub(super) fn wanted(&self) -> bool {
        self.lock().is_some()
    }

    /// An object a watcher listed, prepared. An object no snapshot can hold spoils the part:
    /// the pass lists the replica in full and meets it there.
    pub(super) fn add(&self, part: Part, prepared: Result<Prepared, snapshot::Error>) {
        self.put(part, prepared, false);
    }

    /// A change a watcher saw after its listing: the object replaces what the listing holds
    /// of it, so that the listing stays what the replica holds until the pass takes it.
    pub(super) fn update(&self, part: Part, prepared: Result<Prepared, snapshot::Error>) {
        self.put(part, prepared, true);
    }

    fn put(&self, part: Part, prepared: Result<Prepared, snapshot::Error>, replacing: bool) {
        let mut guard = self.lock();
        let Some(parts) = guard.as_mut() else {
            return;
        };
        let Some(listed) = parts.get_mut(&part) else {
            return;
        };
        if let (true, Ok(Prepared::Object(reference, _))) = (replacing, &prepared) {
            listed.snapshot.objects.remove(reference);
        }
        if prepared
            .and_then(|prepared| listed.snapshot.add(prepared, None))
            .is_err()
        {
            parts.remove(&part);
        }
    }

    /// An object a watcher saw deleted after its listing.
    pub(super) fn remove(&self, part: Part, reference: &ObjectRef) {
        if let Some(listed) = self.lock().as_mut().and_then(|p| p.get_mut(&part)) {
            listed.snapshot.objects.remove(reference);
        }
    }

    /// A watcher's listing is complete.
    pub(super) fn finish(&self, part: Part) {
        if let Some(listed) = self.lock().as_mut().and_then(|p| p.get_mut(&part)) {
            listed.done = true;
        }
        self.progress.notify_waiters();
    }

    /// Whether every one of `parts` is listed in full.
    pub(super) fn complete(&self, parts: &[Part]) -> bool {
        self.lock().as_ref().is_some_and(|listed| {
            parts
                .iter()
                .all(|part| listed.get(part).is_some_and(|l| l.done))
        })
    }

    /// Whether every one of `parts` has started listing (or is done).
    pub(super) fn started(&self, parts: &[Part]) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|listed| parts.iter().all(|part| listed.contains_key(part)))
    }

    /// Waits for a listing to make progress (a part done), or for `timeout`.
    pub(super) async fn progressed(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.progress.notified()).await;
    }

    /// Takes the listings of `parts`, as one snapshot, if each is complete; from then on none
    /// is collected, whatever the outcome.
    pub(super) fn take(&self, parts: &[Part]) -> Option<Snapshot> {
        let mut listed = self.lock().take()?;
        let mut whole: Option<Snapshot> = None;
        for part in parts {
            let Listed { snapshot, done } = listed.remove(part)?;
            if !done {
                return None;
            }
            match &mut whole {
                None => whole = Some(snapshot),
                Some(whole) => whole.merge(snapshot),
            }
        }
        whole
    }

    /// Stops collecting: the first full pass is done without them.
    pub(super) fn give_up(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<Part, Listed>>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use crate::snapshot::RawObject;

    fn configmaps() -> &'static Kind {
        crate::kinds::by_plural("configmaps").unwrap()
    }

    fn prepared(name: &str) -> Result<Prepared, snapshot::Error> {
        prepared_with(name, name)
    }

    fn prepared_with(name: &str, data: &str) -> Result<Prepared, snapshot::Error> {
        let value = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns"}, "data": {"k": data}});
        let raw = RawObject {
            value,
            origin: "replica".into(),
            archived: None,
        };
        snapshot::prepare(raw, &Scope::default())
    }

    #[test]
    fn parts_are_taken_once_every_one_is_listed_in_full() {
        let listing = InitialListing::default();
        let parts = [(configmaps(), 0), (configmaps(), 1)];
        listing.start(parts[0], "replica");
        listing.add(parts[0], prepared("a"));
        listing.finish(parts[0]);
        listing.start(parts[1], "replica");
        listing.add(parts[1], prepared("b"));
        assert!(!listing.complete(&parts));
        assert!(listing.started(&parts));
        listing.finish(parts[1]);
        assert!(listing.complete(&parts));
        let snapshot = listing.take(&parts).expect("both parts listed");
        assert_eq!(snapshot.objects.len(), 2);
        // Taken once: later listings are not collected.
        assert!(!listing.wanted());
        listing.start(parts[0], "replica");
        assert!(listing.take(&parts).is_none());
    }

    #[test]
    fn a_listing_started_again_drops_what_it_listed_before() {
        let listing = InitialListing::default();
        let part = (configmaps(), 0);
        listing.start(part, "replica");
        listing.add(part, prepared("gone"));
        listing.start(part, "replica");
        listing.add(part, prepared("kept"));
        listing.finish(part);
        let snapshot = listing.take(&[part]).unwrap();
        let names: Vec<_> = snapshot.objects.keys().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["kept"]);
    }

    #[test]
    fn an_unfinished_or_missing_part_gives_nothing_and_ends_the_collection() {
        let listing = InitialListing::default();
        let parts = [(configmaps(), 0), (configmaps(), 1)];
        listing.start(parts[0], "replica");
        listing.finish(parts[0]);
        assert!(!listing.started(&parts));
        assert!(listing.take(&parts).is_none(), "part 1 never listed");
        assert!(!listing.wanted());

        let listing = InitialListing::default();
        listing.start(parts[0], "replica");
        assert!(listing.take(&parts[..1]).is_none(), "part 0 not done");
    }

    #[test]
    fn an_object_no_snapshot_can_hold_spoils_its_part() {
        let listing = InitialListing::default();
        let part = (configmaps(), 0);
        listing.start(part, "replica");
        listing.add(part, prepared("a"));
        listing.add(part, prepared("a"));
        listing.finish(part);
        assert!(
            listing.take(&[part]).is_none(),
            "a duplicate spoils the part"
        );
    }

    #[test]
    fn changes_after_a_listing_update_it_until_it_is_taken() {
        let listing = InitialListing::default();
        let part = (configmaps(), 0);
        listing.start(part, "replica");
        listing.add(part, prepared("edited"));
        listing.add(part, prepared("deleted"));
        listing.finish(part);
        let listed_key = |listing: &InitialListing| {
            let guard = listing.lock();
            let listed = &guard.as_ref().unwrap()[&part];
            let (_, entry) = listed
                .snapshot
                .objects
                .iter()
                .find(|(r, _)| r.name == "edited")
                .unwrap();
            entry.change_key
        };
        let before = listed_key(&listing);
        listing.update(part, prepared_with("edited", "by hand"));
        assert_ne!(
            listed_key(&listing),
            before,
            "the edit replaced the listed copy"
        );
        listing.update(part, prepared("new"));
        let deleted = ObjectRef {
            kind: configmaps(),
            namespace: "ns".into(),
            name: "deleted".into(),
        };
        listing.remove(part, &deleted);
        let snapshot = listing.take(&[part]).unwrap();
        let names: Vec<_> = snapshot.objects.keys().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["edited", "new"]);
    }
}
