//! Drift: comparing a desired snapshot (the source) to a live one (a replica) into a [`Plan`].
//!
//! An object is in sync when desired ⊆ live: every map key of the desired object is present in
//! the live one with an equal value, recursively; lists are compared element by element and must
//! have the same length. Keys only the replica has (server defaults, replica-local labels) are
//! not drift. For objects k8s-sync applied, a change of the desired change key against the one
//! recorded on the object is drift too, so a field removed on the source gets removed.

pub mod render;

use serde::Serialize;
use serde_json::Value;

use crate::kinds::Kind;
use crate::normalize::ChangeKey;
use crate::secret::{self, SecretKeys};
use crate::snapshot::{Entry, ObjectRef, Snapshot};

/// What a pass does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing: the replica has it.
    InSync,
    /// The replica lacks it.
    Create,
    /// The replica's copy differs (or k8s-sync's recorded change key is stale).
    Update,
    /// The change touches a field the server will not change in place.
    NeedsRecreate,
    /// k8s-sync created it, and it is gone from the source.
    Prune,
    /// The replica has its own differing copy and adoption is off, or another source's copy.
    Conflict,
    /// Gone from the source, kept on the replica: it holds data (a PVC) and `--prune-pvcs` is
    /// off, or it is never pruned (a CustomResourceDefinition).
    Keep,
    /// A copy k8s-sync made whose object is now owned by a synced kind's controller (on the
    /// primary or the replica): k8s-sync's markers come off and the object stays, the owner's.
    Release,
}

impl Action {
    /// Whether the action means the replica is out of step.
    pub fn is_drift(self) -> bool {
        !matches!(self, Action::InSync | Action::Keep)
    }
}

/// A check that found an object drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The primary's object is not a subset of the replica's.
    Subset,
    /// The change key k8s-sync recorded on the replica's copy is not the primary's.
    ChangeKey,
    /// The replica's server, asked with a dry-run apply, would change the object.
    Server,
}

/// Why a planned change waits instead of running in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "deferral", rename_all = "snake_case")]
pub enum Deferral {
    /// A prune over `--max-prune` on this replica: held until an operator releases it or
    /// `apply --force-prune`.
    Held,
    /// A prune within `--prune-delay` of the deletion on the primary.
    Delayed {
        /// When it may run.
        due: jiff::Timestamp,
    },
}

/// Why an object needs an update, for people reading the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The source changed since k8s-sync last applied it.
    SourceChanged,
    /// Someone edited the replica's copy.
    EditedOnReplica,
    /// The replica's copy is not k8s-sync's; it will be taken over.
    Adopt,
    /// The replica's copy is not k8s-sync's and `--no-adopt` is on.
    Unmanaged,
    /// The replica's copy was written by k8s-sync from another source: never adopted, never
    /// pruned.
    OtherSource,
}

/// The planned action for one object.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What to do.
    pub action: Action,
    /// Why, for updates and conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The object's kind.
    #[serde(serialize_with = "serialize_kind")]
    pub kind: &'static Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The change key of the source's object.
    pub desired_key: Option<ChangeKey>,
    /// The change key of the replica's object (normalized as it is).
    pub live_key: Option<ChangeKey>,
    /// The change key k8s-sync last applied to the replica's object.
    pub applied_key: Option<ChangeKey>,
    /// Paths where desired is not a subset of live, e.g. `spec.template.spec.containers[0].image`.
    pub changed_paths: Vec<String>,
    /// Paths among `changed_paths` the server will not change in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub immutable_paths: Vec<String>,
    /// Which checks found the drift; with `server` among them, `changed_paths` are the paths
    /// that still differ after the server's verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found_by: Vec<Check>,
    /// For Secrets: which keys differ. Never values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_keys: Option<SecretKeys>,
    /// Set when the change waits (a held or delayed prune).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub deferral: Option<Deferral>,
}

fn serialize_kind<S: serde::Serializer>(kind: &&'static Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.id())
}

impl Change {
    /// The object this change is about.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// Options that shape a plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Take over replica objects k8s-sync did not create when they differ.
    pub adopt: bool,
    /// Delete objects k8s-sync created that are gone from the source.
    pub prune: bool,
    /// Also prune kinds that hold data (PVCs), which are otherwise kept.
    pub prune_pvcs: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            adopt: true,
            prune: true,
            prune_pvcs: false,
        }
    }
}

/// Counts of a plan's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects already in step.
    pub in_sync: usize,
    /// Objects to create.
    pub create: usize,
    /// Objects to update (adoptions included).
    pub update: usize,
    /// Objects that need deleting and re-creating.
    pub needs_recreate: usize,
    /// Objects to delete now.
    pub prune: usize,
    /// Objects left alone because the replica has its own copy.
    pub conflict: usize,
    /// Prunes held over `--max-prune`.
    pub held: usize,
    /// Prunes waiting for `--prune-delay`.
    pub delayed: usize,
    /// PVCs gone from the source and kept (no `--prune-pvcs`), and CRDs.
    pub kept: usize,
    /// Copies now owned by a synced kind's controller, to release.
    pub release: usize,
    /// Changes of kinds whose primary state is not authoritative yet: nothing is done to them.
    pub waiting: usize,
}

impl Summary {
    /// Objects out of step.
    pub fn drift(&self) -> usize {
        self.create
            + self.update
            + self.needs_recreate
            + self.prune
            + self.conflict
            + self.held
            + self.delayed
            + self.waiting
            + self.release
    }

    /// Counts the changes of a plan.
    fn of(changes: &[Change]) -> Self {
        let mut summary = Summary::default();
        for change in changes {
            *match (change.action, change.deferral) {
                (_, Some(Deferral::Held)) => &mut summary.held,
                (_, Some(Deferral::Delayed { .. })) => &mut summary.delayed,
                (Action::InSync, None) => &mut summary.in_sync,
                (Action::Create, None) => &mut summary.create,
                (Action::Update, None) => &mut summary.update,
                (Action::NeedsRecreate, None) => &mut summary.needs_recreate,
                (Action::Prune, None) => &mut summary.prune,
                (Action::Conflict, None) => &mut summary.conflict,
                (Action::Keep, None) => &mut summary.kept,
                (Action::Release, None) => &mut summary.release,
            } += 1;
        }
        summary
    }
}

/// Everything a pass would do to one replica.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The replica's name.
    pub replica: String,
    /// Counts per action.
    pub summary: Summary,
    /// Namespaces the replica lacks, to create before any object.
    pub missing_namespaces: Vec<String>,
    /// Every object compared, in sync ones included, in reference order.
    pub changes: Vec<Change>,
    /// Kinds left out of this pass because the primary's state of them is not authoritative
    /// (not listed in full yet, or the primary unreachable), with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<(String, String)>,
    /// Cluster-scoped objects that synced ones refer to and the replica lacks, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Plan {
    /// Compares `desired` (the source) with `live` (the replica named `replica`).
    pub fn new(replica: &str, desired: &Snapshot, live: &Snapshot, options: PlanOptions) -> Self {
        let mut changes = Vec::new();
        let ours = |have: &Entry| have.applied.as_ref().is_some_and(|a| desired.owns(a));
        for (reference, want) in &desired.objects {
            let have = live.objects.get(reference);
            // The owner's controller makes the object on each cluster: it is never copied, and
            // a copy made before is released.
            if want.owned_by.is_some() || have.is_some_and(|h| h.owned_by.is_some()) {
                if let Some(have) = have.filter(|h| ours(h)) {
                    changes.push(new_change(
                        Action::Release,
                        None,
                        reference,
                        None,
                        Some(have),
                    ));
                }
                continue;
            }
            let change = match have {
                None => new_change(Action::Create, None, reference, Some(want), None),
                Some(have) => compare(reference, want, have, desired, options),
            };
            changes.push(change);
        }
        for (reference, have) in &live.objects {
            if !ours(have) || desired.objects.contains_key(reference) {
                continue;
            }
            let action = if have.owned_by.is_some() {
                Action::Release
            } else if !options.prune {
                continue;
            } else if reference.kind.never_pruned
                || (reference.kind.holds_data && !options.prune_pvcs)
            {
                Action::Keep
            } else {
                Action::Prune
            };
            changes.push(new_change(action, None, reference, None, Some(have)));
        }
        changes.sort_by_key(Change::reference);
        let missing_namespaces = desired
            .namespaces
            .difference(&live.namespaces)
            .filter(|ns| !ns.is_empty())
            .cloned()
            .collect();
        Plan {
            replica: replica.to_string(),
            summary: Summary::of(&changes),
            missing_namespaces,
            changes,
            waiting: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Counts the changes again, after some were deferred or left out.
    pub fn recount(&mut self) {
        let waiting = self.summary.waiting;
        self.summary = Summary::of(&self.changes);
        self.summary.waiting = waiting;
    }

    /// Cuts the plan's changes down to the objects `keep` accepts. The namespaces to create
    /// stay: a namespace the replica lacks is created even when it holds nothing to sync.
    pub fn retain(&mut self, keep: impl Fn(&ObjectRef) -> bool) {
        self.changes.retain(|c| keep(&c.reference()));
        self.recount();
    }

    /// The changes that are drift.
    pub fn drifted(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action.is_drift())
    }
}

fn compare(
    reference: &ObjectRef,
    want: &Entry,
    have: &Entry,
    desired: &Snapshot,
    options: PlanOptions,
) -> Change {
    if have.applied.as_ref().is_some_and(|a| !desired.owns(a)) {
        // Two primaries writing one object would undo each other: neither takes it over.
        return new_change(
            Action::Conflict,
            Some(Reason::OtherSource),
            reference,
            Some(want),
            Some(have),
        );
    }
    let mut changed_paths = Vec::new();
    // Equal keys are equal canonical forms: a subset of each other, with nothing to parse.
    if want.change_key != have.change_key || want.redacted || have.redacted {
        let mut wanted = want.object();
        let mut held = have.object();
        // Values are unknown on a redacted side (a snapshot archive): only the keys of its
        // Secrets can be compared.
        if want.redacted {
            copy_secret_values(&mut wanted, &held);
        } else if have.redacted {
            copy_secret_values(&mut held, &wanted);
        }
        subset_differences(&wanted, &held, &mut String::new(), &mut changed_paths);
    }
    // A redacted source's key is of placeholders, never of what was applied: only the
    // comparison of fields (and Secret key names) can tell.
    let ours = have.applied.as_ref().map(|a| {
        if want.redacted {
            &want.change_key
        } else {
            &a.change_key
        }
    });
    let same_key = ours == Some(&want.change_key);
    let (action, reason) = match (ours, changed_paths.is_empty()) {
        (Some(_), true) if same_key => (Action::InSync, None),
        (Some(_), true) => (Action::Update, Some(Reason::SourceChanged)),
        (Some(_), false) if same_key => (Action::Update, Some(Reason::EditedOnReplica)),
        (Some(_), false) => (Action::Update, Some(Reason::SourceChanged)),
        (None, true) => (Action::InSync, None),
        (None, false) if options.adopt => (Action::Update, Some(Reason::Adopt)),
        (None, false) => (Action::Conflict, Some(Reason::Unmanaged)),
    };
    let mut change = new_change(action, reason, reference, Some(want), Some(have));
    if action != Action::InSync {
        if !changed_paths.is_empty() {
            change.found_by.push(Check::Subset);
        }
        if ours.is_some() && !same_key {
            change.found_by.push(Check::ChangeKey);
        }
    }
    change.immutable_paths = changed_paths
        .iter()
        .filter(|p| reference.kind.is_immutable_path(p))
        .cloned()
        .collect();
    if action == Action::Update && !change.immutable_paths.is_empty() {
        change.action = Action::NeedsRecreate;
    }
    change.changed_paths = changed_paths;
    change
}

fn new_change(
    action: Action,
    reason: Option<Reason>,
    reference: &ObjectRef,
    want: Option<&Entry>,
    have: Option<&Entry>,
) -> Change {
    let is_secret = reference.kind.is("", "Secret");
    let secret_keys = (is_secret && action.is_drift()).then(|| {
        let mut desired = want.map(Entry::object);
        let mut live = have.map(Entry::object);
        let mut keys = secret::mask_pair(desired.as_mut(), live.as_mut());
        if want.is_some_and(|w| w.redacted) || have.is_some_and(|h| h.redacted) {
            // Redacted values were never compared.
            keys.changed.clear();
        }
        keys
    });
    Change {
        action,
        reason,
        kind: reference.kind,
        namespace: reference.namespace.clone(),
        name: reference.name.clone(),
        desired_key: want.map(|e| e.change_key),
        live_key: have.map(|e| e.change_key),
        applied_key: have.and_then(|e| e.applied.as_ref().map(|a| a.change_key)),
        changed_paths: Vec::new(),
        immutable_paths: Vec::new(),
        found_by: Vec::new(),
        secret_keys,
        deferral: None,
    }
}

fn copy_secret_values(desired: &mut Value, live: &Value) {
    let (Some(Value::Object(want)), Some(Value::Object(have))) =
        (desired.get_mut("data"), live.get("data"))
    else {
        return;
    };
    for (key, value) in want.iter_mut() {
        if let Some(live_value) = have.get(key) {
            *value = live_value.clone();
        }
    }
}

/// Collects the paths where `desired` is not a subset of `live`.
///
/// An empty desired map or list is satisfied by an absent live field: servers drop empty
/// values, and `{}` means the same as nothing.
pub fn subset_differences(desired: &Value, live: &Value, path: &mut String, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let len = path.len();
                push_key(path, key);
                match have.get(key) {
                    Some(live_value) => subset_differences(value, live_value, path, out),
                    None if is_empty(value) => {}
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                subset_differences(w, h, path, out);
                path.truncate(len);
            }
        }
        _ if desired == live => {}
        _ => out.push(path.clone()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Appends `key` to a dotted path, quoting keys that hold dots or slashes
/// (`metadata.labels["app.kubernetes.io/name"]`).
fn push_key(path: &mut String, key: &str) {
    if key.contains(['.', '/', '[', '"']) {
        path.push_str(&format!("[{key:?}]"));
    } else {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
}

/// `live` cut down to the fields `desired` has, so a diff of the two shows drift, not the
/// server's defaults.
pub fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(have), Value::Object(want)) => Value::Object(
            have.iter()
                .filter_map(|(k, v)| want.get(k).map(|w| (k.clone(), project(v, w))))
                .collect(),
        ),
        (Value::Array(have), Value::Array(want)) if have.len() == want.len() => {
            Value::Array(have.iter().zip(want).map(|(h, w)| project(h, w)).collect())
        }
        _ => live.clone(),
    }
}

#[cfg(test)]
mod tests;
