//! Which objects a replica may hold, so that work on an object it lacks needs no GET.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::snapshot::ObjectRef;

/// The objects that may exist on one replica: everything its full listings showed, and every
/// object seen (by the watch on its objects) or written since. Unknown until a full
/// pass has listed the replica.
///
/// Only "missing" is acted on, so every doubt counts as present: an absent object wrongly
/// counted as present costs one GET, while a present one counted as missing would be written
/// over unseen. Objects deleted by others stay counted until a watch event shows them gone.
#[derive(Debug, Default)]
pub(super) struct Presence(Mutex<Option<HashSet<ObjectRef>>>);

impl Presence {
    /// Whether the object is known to be missing.
    pub(super) fn lacks(&self, reference: &ObjectRef) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|present| !present.contains(reference))
    }

    /// Adds what a full listing showed; from then on, objects never seen count as missing.
    pub(super) fn note_listed(&self, references: impl IntoIterator<Item = ObjectRef>) {
        self.lock().get_or_insert_default().extend(references);
    }

    /// The object exists, or may: it was seen, written, or a write of it failed.
    pub(super) fn note_present(&self, reference: &ObjectRef) {
        if let Some(present) = self.lock().as_mut() {
            present.insert(reference.clone());
        }
    }

    /// The object is gone: a watch event showed its deletion, or k8s-sync pruned it.
    pub(super) fn note_absent(&self, reference: &ObjectRef) {
        if let Some(present) = self.lock().as_mut() {
            present.remove(reference);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashSet<ObjectRef>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds;

    fn reference(name: &str) -> ObjectRef {
        ObjectRef {
            kind: kinds::by_plural("configmaps").unwrap(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn nothing_is_missing_before_a_listing() {
        let presence = Presence::default();
        presence.note_absent(&reference("a"));
        assert!(!presence.lacks(&reference("a")));
        // Seen before any listing: still nothing known about the rest.
        presence.note_present(&reference("b"));
        assert!(!presence.lacks(&reference("c")));
    }

    #[test]
    fn after_a_listing_only_unseen_objects_are_missing() {
        let presence = Presence::default();
        presence.note_listed([reference("listed")]);
        assert!(!presence.lacks(&reference("listed")));
        assert!(presence.lacks(&reference("new")));
        presence.note_present(&reference("new"));
        assert!(!presence.lacks(&reference("new")));
    }

    #[test]
    fn deletions_make_objects_missing_and_listings_add_without_removing() {
        let presence = Presence::default();
        presence.note_listed([reference("a"), reference("b")]);
        presence.note_absent(&reference("a"));
        assert!(presence.lacks(&reference("a")));
        // A later listing that misses `b` (say, it was deleted unseen) keeps it counted.
        presence.note_listed([reference("c")]);
        assert!(!presence.lacks(&reference("b")));
        assert!(!presence.lacks(&reference("c")));
    }
}
