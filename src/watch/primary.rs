//! The primary's state in watch mode: one store fed by the list+watch of every synced
//! collection, in order, on kube-runtime's watcher protocol.
//!
//! A collection (one kind, cluster-wide or in one namespace) is *complete* once its listing
//! ended (`InitDone`) and until its stream fails. A relist (`Init`, `InitApply`…, `InitDone`)
//! is buffered and swapped in at once, so readers never see half a listing, and before the
//! first `InitDone` absence proves nothing. A kind is *authoritative* — may drive writes on the
//! replicas — while the primary answers, its identity is known and every collection of the kind
//! is complete. Entries are normalized and keyed as they arrive; a resync plans against this
//! store instead of listing beside it, so the desired state never goes backwards.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use crate::kinds::Kind;
use crate::normalize::ChangeKey;
use crate::snapshot::{Entry, ObjectRef, Snapshot};

/// One watched collection: a kind, cluster-wide (`None`) or in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Collection {
    /// The kind.
    pub kind: &'static Kind,
    /// The namespace, for a watch of one namespace.
    pub namespace: Option<String>,
}

impl Collection {
    fn holds(&self, reference: &ObjectRef) -> bool {
        reference.kind == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == reference.namespace)
    }
}

#[derive(Debug, Default)]
struct CollectionState {
    /// Listed in full, and the stream has not failed since.
    complete: bool,
    /// A relist in progress.
    buffer: Option<HashMap<ObjectRef, Entry>>,
    /// Why the stream last failed.
    error: Option<String>,
    /// Why no listing of it is authoritative any more, whatever comes (its CRD is being
    /// deleted on the primary, which deletes every object of it).
    held: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<ObjectRef, Entry>,
    namespaces: BTreeSet<String>,
    /// The namespaces were listed in full once, so a full pass creates every one a replica
    /// lacks.
    namespaces_listed: bool,
    collections: HashMap<Collection, CollectionState>,
    identity: Option<String>,
    unreachable: Option<String>,
    /// Why the synced kinds are not known yet (`--kinds all` before the primary answered
    /// discovery): until they are, no state is authoritative.
    kinds_unknown: Option<String>,
}

/// The primary's state; one writer per collection (its watcher), many readers.
#[derive(Debug, Default)]
pub struct PrimaryState {
    inner: RwLock<Inner>,
    /// Aliases of the source name (the primary endpoint's name).
    aliases: Vec<String>,
    /// A name given with `--source-name`, which replaces the identity.
    named: Option<String>,
}

/// What a watch event changed in the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing (a status-only update normalizes to the same key).
    None,
    /// The object is new or changed.
    Applied,
    /// The object is gone.
    Deleted,
}

impl PrimaryState {
    /// A store for `collections`, whose source is named `named` (or, without it, by the
    /// cluster's identity) with `aliases`.
    pub fn new(collections: Vec<Collection>, named: Option<String>, aliases: Vec<String>) -> Self {
        let inner = Inner {
            collections: collections
                .into_iter()
                .map(|c| (c, CollectionState::default()))
                .collect(),
            ..Inner::default()
        };
        PrimaryState {
            inner: RwLock::new(inner),
            aliases,
            named,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records why the synced kinds are not known yet, or (`None`) that they are.
    pub fn set_kinds_unknown(&self, reason: Option<String>) {
        self.write().kinds_unknown = reason;
    }

    /// Watches `collections` too (kinds found since the start), none of them complete yet.
    pub fn add_collections(&self, collections: impl IntoIterator<Item = Collection>) {
        let mut inner = self.write();
        for collection in collections {
            inner.collections.entry(collection).or_default();
        }
    }

    /// Marks every collection of `kind` incomplete, for `reason`: its listing no longer tells
    /// what the primary means to keep (its CRD is being deleted there).
    pub fn lose_kind(&self, kind: &Kind, reason: &str) {
        let mut inner = self.write();
        for (_, state) in inner.collections.iter_mut().filter(|(c, _)| c.kind == kind) {
            state.complete = false;
            state.buffer = None;
            state.error = Some(reason.to_string());
        }
    }

    /// Why some kind is held, if one is.
    pub fn held(&self) -> Option<String> {
        let inner = self.read();
        inner.collections.iter().find_map(|(c, s)| {
            s.held
                .as_ref()
                .map(|h| format!("{}: {h}", c.kind.short_name()))
        })
    }

    /// Whether `kind` is held ([`PrimaryState::hold_kind`]).
    pub fn is_held(&self, kind: &Kind) -> bool {
        self.read()
            .collections
            .iter()
            .any(|(c, s)| c.kind == kind && s.held.is_some())
    }

    /// Holds `kind` for good: no listing of it is authoritative again, for `reason` (its CRD is
    /// being deleted on the primary).
    pub fn hold_kind(&self, kind: &Kind, reason: &str) {
        self.lose_kind(kind, reason);
        let mut inner = self.write();
        for (_, state) in inner.collections.iter_mut().filter(|(c, _)| c.kind == kind) {
            state.held = Some(reason.to_string());
        }
    }

    /// Stops holding `kind`: its collections and objects go (a kind the primary no longer
    /// serves, left out of the scope from now on).
    pub fn remove_kind(&self, kind: &Kind) {
        let mut inner = self.write();
        inner.collections.retain(|c, _| c.kind != kind);
        inner.objects.retain(|r, _| r.kind != kind);
    }

    /// Records the primary's identity, once it answered the question.
    pub fn set_identity(&self, identity: String) {
        self.write().identity = Some(identity);
    }

    /// The source name objects are written with, once known.
    pub fn source(&self) -> Option<String> {
        self.named.clone().or_else(|| self.read().identity.clone())
    }

    /// Records whether the primary answers (`None`) or not (why). Losing it makes every
    /// collection incomplete: after an outage, only a new listing is authoritative.
    pub fn set_unreachable(&self, reason: Option<String>) {
        let mut inner = self.write();
        if reason.is_some() {
            for state in inner.collections.values_mut() {
                state.complete = false;
                state.buffer = None;
            }
        }
        inner.unreachable = reason;
    }

    /// Why the primary is unreachable, if it is.
    pub fn unreachable(&self) -> Option<String> {
        self.read().unreachable.clone()
    }

    /// A relist of `collection` begins.
    pub fn init(&self, collection: &Collection) {
        if let Some(state) = self.write().collections.get_mut(collection) {
            state.buffer = Some(HashMap::new());
        }
    }

    /// One object of a relist.
    pub fn init_apply(&self, collection: &Collection, reference: ObjectRef, entry: Entry) {
        if let Some(buffer) = self
            .write()
            .collections
            .get_mut(collection)
            .and_then(|s| s.buffer.as_mut())
        {
            buffer.insert(reference, entry);
        }
    }

    /// The relist of `collection` ended: its objects are replaced at once. Returns the objects
    /// that changed or went away with it.
    pub fn init_done(&self, collection: &Collection) -> Vec<ObjectRef> {
        let mut inner = self.write();
        let Some(listed) = inner
            .collections
            .get_mut(collection)
            .and_then(|s| s.buffer.take())
        else {
            return Vec::new();
        };
        let mut changed: Vec<ObjectRef> = inner
            .objects
            .keys()
            .filter(|r| collection.holds(r) && !listed.contains_key(*r))
            .cloned()
            .collect();
        for reference in &changed {
            inner.objects.remove(reference);
        }
        for (reference, entry) in listed {
            let same = inner
                .objects
                .get(&reference)
                .is_some_and(|old| old.change_key == entry.change_key);
            if !same {
                changed.push(reference.clone());
            }
            if reference.kind.namespaced {
                inner.namespaces.insert(reference.namespace.clone());
            }
            inner.objects.insert(reference, entry);
        }
        if let Some(state) = inner.collections.get_mut(collection) {
            state.complete = true;
            state.error = None;
        }
        changed
    }

    /// An object was added or changed on the primary.
    pub fn apply(&self, reference: ObjectRef, entry: Entry) -> Change {
        let mut inner = self.write();
        let watched = inner.collections.keys().any(|c| c.holds(&reference));
        // An event of a kind no longer synced, late from a watcher being stopped, is dropped.
        if !watched
            || inner
                .objects
                .get(&reference)
                .is_some_and(|old| old.change_key == entry.change_key)
        {
            return Change::None;
        }
        if reference.kind.namespaced {
            inner.namespaces.insert(reference.namespace.clone());
        }
        inner.objects.insert(reference, entry);
        Change::Applied
    }

    /// An object was deleted on the primary.
    pub fn delete(&self, reference: &ObjectRef) -> Change {
        match self.write().objects.remove(reference) {
            Some(_) => Change::Deleted,
            None => Change::None,
        }
    }

    /// The stream of `collection` failed: its state is no longer known to be complete.
    pub fn lost(&self, collection: &Collection, error: &str) {
        if let Some(state) = self.write().collections.get_mut(collection) {
            state.complete = false;
            state.buffer = None;
            state.error = Some(error.to_string());
        }
    }

    /// The namespaces the primary has (that its watchers saw).
    pub fn namespaces(&self) -> Vec<String> {
        self.read().namespaces.iter().cloned().collect()
    }

    /// A namespace the primary has.
    pub fn add_namespace(&self, namespace: &str) {
        self.write().namespaces.insert(namespace.to_string());
    }

    /// The primary's namespaces were listed in full.
    pub fn namespaces_listed(&self) {
        self.write().namespaces_listed = true;
    }

    /// Whether the state of `kind` may drive writes; `Err` says why not.
    pub fn authority(&self, kind: &Kind) -> Result<(), String> {
        let inner = self.read();
        if let Some(reason) = &inner.unreachable {
            return Err(format!("the primary is unreachable ({reason})"));
        }
        if let Some(reason) = &inner.kinds_unknown {
            return Err(format!("the synced kinds are not known yet ({reason})"));
        }
        if self.named.is_none() && inner.identity.is_none() {
            return Err("the primary's identity is not known yet".into());
        }
        // A kind with no collection is not synced (not found yet, or no longer served): its
        // state of no object proves nothing.
        if !inner.collections.keys().any(|c| c.kind == kind) {
            return Err(format!("{} are not synced now", kind.short_name()));
        }
        if let Some(held) = inner
            .collections
            .iter()
            .find_map(|(c, s)| s.held.as_ref().filter(|_| c.kind == kind))
        {
            return Err(format!("{}: {held}", kind.short_name()));
        }
        let incomplete = inner
            .collections
            .iter()
            .find(|(c, s)| c.kind == kind && !s.complete);
        match incomplete {
            None => Ok(()),
            Some((_, state)) => Err(match &state.error {
                Some(error) => format!(
                    "{} are not listed in full from the primary since its watch failed ({error})",
                    kind.short_name()
                ),
                None => format!(
                    "{} are not listed in full from the primary yet",
                    kind.short_name()
                ),
            }),
        }
    }

    /// Whether every kind is authoritative and the namespaces were listed. A held kind
    /// ([`PrimaryState::hold_kind`]) does not count: its changes wait in every pass, and full
    /// passes go on for the others.
    pub fn complete(&self) -> Result<(), String> {
        let (kinds, namespaces_listed): (BTreeSet<&'static Kind>, bool) = {
            let inner = self.read();
            if let Some(reason) = &inner.kinds_unknown {
                return Err(format!("the synced kinds are not known yet ({reason})"));
            }
            (
                inner
                    .collections
                    .iter()
                    .filter(|(_, s)| s.held.is_none())
                    .map(|(c, _)| c.kind)
                    .collect(),
                inner.namespaces_listed,
            )
        };
        kinds.into_iter().try_for_each(|k| self.authority(k))?;
        if !namespaces_listed {
            return Err("the primary's namespaces are not listed yet".into());
        }
        Ok(())
    }

    /// One object's desired state, if the primary has it.
    pub fn get(&self, reference: &ObjectRef) -> Option<Entry> {
        self.read().objects.get(reference).cloned()
    }

    /// Makes `entry`, a replica's copy of an object, share the canonical bytes of the
    /// primary's when it is in step with it (the same change key).
    pub fn share(&self, reference: &ObjectRef, entry: &mut Entry) {
        if let Some(same) = self.read().objects.get(reference) {
            entry.share(same);
        }
    }

    /// The change key of one object, if the primary has it.
    pub fn change_key(&self, reference: &ObjectRef) -> Option<ChangeKey> {
        self.read().objects.get(reference).map(|e| e.change_key)
    }

    /// Whether the primary has the object.
    pub fn contains(&self, reference: &ObjectRef) -> bool {
        self.read().objects.contains_key(reference)
    }

    /// The whole state as a snapshot, for a full pass (empty while the source is unnamed).
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.empty_snapshot();
        let inner = self.read();
        snapshot.namespaces = inner.namespaces.clone();
        snapshot.objects = inner
            .objects
            .iter()
            .map(|(r, e)| (r.clone(), e.clone()))
            .collect();
        snapshot
    }

    /// A snapshot of one object (or of none, when the primary lacks it), for a per-object pass.
    pub fn snapshot_of(&self, reference: &ObjectRef) -> Snapshot {
        let mut snapshot = self.empty_snapshot();
        if let Some(entry) = self.get(reference) {
            if reference.kind.namespaced {
                snapshot.namespaces.insert(reference.namespace.clone());
            }
            snapshot.objects.insert(reference.clone(), entry);
        }
        snapshot
    }

    /// A snapshot of no object, named as the source.
    pub fn empty_snapshot(&self) -> Snapshot {
        Snapshot {
            source: self.source().unwrap_or_default(),
            aliases: self.aliases.clone(),
            ..Snapshot::default()
        }
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::safety::Authority for PrimaryState {
    fn authority(&self, kind: &Kind) -> Result<(), String> {
        PrimaryState::authority(self, kind)
    }
}

#[cfg(test)]
mod tests;
