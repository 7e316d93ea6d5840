//! A [`Snapshot`]: every synced object of one source, normalized and keyed.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::kinds::{self, Kind};
use crate::normalize::{
    self, CHANGE_KEY_ANNOTATION, Canonical, ChangeKey, PRUNE_HELD_ANNOTATION, SOURCE_ANNOTATION,
};
use crate::scope::{Scope, Skip};

/// Identifies one object: kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: &'static Kind,
    /// Its namespace; empty for a cluster-scoped kind (CustomResourceDefinitions).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Ord for ObjectRef {
    fn cmp(&self, other: &Self) -> Ordering {
        // The group breaks ties between two groups' resources of one plural (`ingresses`).
        (
            &self.namespace,
            self.kind.plural,
            &self.name,
            self.kind.group,
        )
            .cmp(&(
                &other.namespace,
                other.kind.plural,
                &other.name,
                other.kind.group,
            ))
    }
}

impl PartialOrd for ObjectRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.namespaced {
            write!(f, "{}/{}/{}", self.namespace, self.kind.id(), self.name)
        } else {
            write!(f, "{}/{}", self.kind.id(), self.name)
        }
    }
}

/// One object as read from an endpoint, before normalization.
#[derive(Debug, Clone)]
pub struct RawObject {
    /// The object as the server or file had it.
    pub value: Value,
    /// Where it came from, for messages: a file path, or a cluster name.
    pub origin: String,
    /// What a snapshot manifest recorded about it, when read back from an archive.
    pub archived: Option<Archived>,
}

/// What an archive's manifest says about one of its objects.
#[derive(Debug, Clone)]
pub struct Archived {
    /// Whether Secret values were redacted in the file.
    pub redacted: bool,
}

/// The bookkeeping annotations k8s-sync left on an object it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The source it was applied from.
    pub source: String,
    /// The change key that was applied.
    pub change_key: ChangeKey,
    /// Its prune is held (over `--max-prune`) until released: [`PRUNE_HELD_ANNOTATION`].
    pub prune_held: bool,
}

/// The uid and resourceVersion an object had when listed, for delete preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

/// A normalized object with its change key.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The normalized object, in canonical form: [`Entry::object`] parses it.
    pub canonical: Canonical,
    /// Its change key.
    pub change_key: ChangeKey,
    /// What k8s-sync applied to it, if it manages this object.
    pub applied: Option<Applied>,
    /// Secret values were redacted in the archive this was read from: they cannot be compared
    /// or applied, only their keys, and `change_key` is of the redacted object.
    pub redacted: bool,
    /// Where it came from.
    pub origin: String,
    /// Its uid and resourceVersion, when it came from a server.
    pub identity: Option<Identity>,
    /// Its controller, when that is of a synced kind (`Certificate.cert-manager.io/web`): the
    /// owner makes the object on each cluster, so it is never copied, and a copy made before is
    /// released.
    pub owned_by: Option<String>,
}

impl Entry {
    /// The normalized object as a tree.
    pub fn object(&self) -> Value {
        self.canonical.to_value()
    }

    /// Takes the canonical bytes of `other`, the same object, when it is in the same state
    /// (an equal change key, neither redacted), so that the two hold them once.
    pub fn share(&mut self, other: &Entry) {
        if other.change_key == self.change_key && !other.redacted && !self.redacted {
            self.canonical = other.canonical.clone();
        }
    }

    /// The object as replicas are to have it: see [`Snapshot::for_replicas`].
    pub fn shape_for_replicas(&mut self, kind: &Kind, scope: &Scope) {
        if !kind.suspended_on_replicas || scope.run_cronjobs {
            return;
        }
        let mut object = self.object();
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("suspend".into(), Value::Bool(true));
            self.canonical = Canonical::of(&object);
            self.change_key = self.canonical.change_key();
        }
    }
}

/// Every synced object of one source.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The name objects applied from this source carry in their source annotation.
    pub source: String,
    /// Other names this source's objects may carry, written before its name changed (the
    /// kubeconfig file stem that named a cluster before its own identity did).
    pub aliases: Vec<String>,
    /// The objects, by reference.
    pub objects: BTreeMap<ObjectRef, Entry>,
    /// Namespaces seen in scope, including empty ones a cluster listed.
    pub namespaces: std::collections::BTreeSet<String>,
    /// How many objects were left out, and why.
    pub skipped: BTreeMap<String, usize>,
    /// Kinds the cluster does not serve (a replica without a custom resource's CRD).
    pub unserved: Vec<&'static Kind>,
    /// Kinds whose state here is not complete, and why (an object of the kind at a version
    /// k8s-sync does not read it at; its CRD being deleted on the source): a source's state of
    /// them drives no prune.
    pub incomplete: Vec<(&'static Kind, String)>,
}

/// An object that cannot be part of a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or malformed identity fields.
    #[error("{origin}: {kind} has no valid metadata.name")]
    MissingName {
        /// Where the object came from.
        origin: String,
        /// Its kind.
        kind: String,
    },
    /// A name or namespace that is not a valid Kubernetes name (and could escape paths).
    #[error("{origin}: {what} {value:?} is not a valid Kubernetes name")]
    InvalidName {
        /// Where the object came from.
        origin: String,
        /// `name` or `namespace`.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The same object twice in one source.
    #[error("{reference} appears twice: in {first} and in {second}")]
    Duplicate {
        /// The object.
        reference: String,
        /// Where it was seen first.
        first: String,
        /// Where it was seen again.
        second: String,
    },
}

impl Snapshot {
    /// Builds a snapshot of `source` from raw objects: filters by scope, reads k8s-sync's
    /// bookkeeping annotations, normalizes and keys each object.
    pub fn build(
        source: impl Into<String>,
        raw: impl IntoIterator<Item = RawObject>,
        scope: &Scope,
    ) -> Result<Self, Error> {
        let mut snapshot = Snapshot::new(source);
        for object in raw {
            snapshot.insert(object, scope, None)?;
        }
        Ok(snapshot)
    }

    /// An empty snapshot of `source`, to [`insert`](Snapshot::insert) objects into as they are
    /// read (a listing's pages as they arrive, so that no listing is held whole).
    pub fn new(source: impl Into<String>) -> Self {
        Snapshot {
            source: source.into(),
            ..Snapshot::default()
        }
    }

    /// This source's objects as replicas are to have them: a kind's copies suspended where the
    /// table says so ([`Kind::suspended_on_replicas`]: CronJobs) unless the scope lets them
    /// run. The change key is of the object as applied, so a pass right after applying finds it
    /// in step.
    pub fn for_replicas(mut self, scope: &Scope) -> Self {
        for (reference, entry) in self.objects.iter_mut() {
            entry.shape_for_replicas(reference.kind, scope);
        }
        self
    }

    /// Whether an object k8s-sync applied came from this source (under its name or an alias).
    pub fn owns(&self, applied: &Applied) -> bool {
        applied.source == self.source || self.aliases.contains(&applied.source)
    }

    /// Records a namespace the source has, whether or not it holds synced objects.
    pub fn add_namespace(&mut self, namespace: &str, scope: &Scope) {
        match scope.admits_namespace(namespace) {
            Ok(()) => {
                self.namespaces.insert(namespace.to_string());
            }
            Err(skip) => self.count_skip(skip, "Namespace"),
        }
    }

    /// Adds one object as [`Snapshot::build`] does: [`prepare`] then [`Snapshot::add`].
    pub fn insert(
        &mut self,
        raw: RawObject,
        scope: &Scope,
        shared: Option<&Snapshot>,
    ) -> Result<(), Error> {
        self.add(prepare(raw, scope)?, shared)
    }

    /// Adds a prepared object. One that `shared` holds with the same change key (a replica's
    /// copy in step with the primary's) shares its canonical bytes instead of holding them
    /// twice.
    pub fn add(&mut self, prepared: Prepared, shared: Option<&Snapshot>) -> Result<(), Error> {
        let (reference, mut entry) = match prepared {
            Prepared::Skipped { label, held } => {
                if let Some(held) = held {
                    self.note_incomplete(held);
                }
                *self.skipped.entry(label).or_default() += 1;
                return Ok(());
            }
            Prepared::Object(reference, entry) => (reference, *entry),
        };
        if let Some(first) = self.objects.get(&reference) {
            return Err(Error::Duplicate {
                reference: reference.to_string(),
                first: first.origin.clone(),
                second: entry.origin,
            });
        }
        if let Some(same) = shared.and_then(|s| s.objects.get(&reference)) {
            entry.share(same);
        }
        if reference.kind.namespaced {
            self.namespaces.insert(reference.namespace.clone());
        }
        self.objects.insert(reference, entry);
        Ok(())
    }

    /// Adds the objects, namespaces and counts of `other`, a snapshot of other collections of
    /// the same source (its objects are not among these).
    pub fn merge(&mut self, mut other: Snapshot) {
        self.objects.append(&mut other.objects);
        self.namespaces.append(&mut other.namespaces);
        for (label, count) in other.skipped {
            *self.skipped.entry(label).or_default() += count;
        }
        for held in other.incomplete {
            self.note_incomplete(held);
        }
        self.unserved.extend(other.unserved);
    }

    /// Makes each object that `shared` holds with the same change key share its canonical
    /// bytes, as [`Snapshot::add`] does for objects added with a source at hand.
    pub fn share_with(&mut self, shared: &Snapshot) {
        for (reference, entry) in &mut self.objects {
            if let Some(same) = shared.objects.get(reference) {
                entry.share(same);
            }
        }
    }

    /// Records a kind whose state here is not complete, once, with the first reason given.
    fn note_incomplete(&mut self, (kind, reason): (&'static Kind, String)) {
        if !self.incomplete.iter().any(|(k, _)| *k == kind) {
            self.incomplete.push((kind, reason));
        }
    }

    fn count_skip(&mut self, skip: Skip, kind: &str) {
        *self.skipped.entry(skip_label(skip, kind)).or_default() += 1;
    }

    /// The root hash: sha256 over every object's reference and change key, in order.
    /// Two snapshots with the same objects have the same root hash.
    pub fn root_hash(&self) -> ChangeKey {
        let mut text = String::new();
        for (reference, entry) in &self.objects {
            text.push_str(&format!("{reference}\t{}\n", entry.change_key));
        }
        ChangeKey::of_bytes(text.as_bytes())
    }
}

/// One object read from a source, normalized and keyed, not yet part of a snapshot: the
/// costly part of reading it, which needs no snapshot and so runs wherever its page was
/// parsed.
#[derive(Debug)]
pub enum Prepared {
    /// Left out: why (a skip label), and a kind whose state it makes incomplete.
    Skipped {
        /// How it is counted in [`Snapshot::skipped`].
        label: String,
        /// A kind of the scope this object is at another version of.
        held: Option<(&'static Kind, String)>,
    },
    /// An object of the scope.
    Object(ObjectRef, Box<Entry>),
}

/// Filters an object by scope, reads k8s-sync's bookkeeping annotations, normalizes it and
/// keys it. Fails on an object no snapshot can hold (no name, an invalid one).
pub fn prepare(raw: RawObject, scope: &Scope) -> Result<Prepared, Error> {
    let RawObject {
        mut value,
        origin,
        archived,
    } = raw;
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind_name = value.get("kind").and_then(Value::as_str).unwrap_or("");
    // One lookup per object: the kind by group, then its version.
    let (group, version) = kinds::split_api_version(api_version);
    let known = kinds::by_group_kind(group, kind_name);
    let Some(kind) = known.filter(|k| k.version == version) else {
        let held = known.filter(|k| scope.kinds.contains(k)).map(|known| {
            let reason = format!(
                "{origin} is a {kind_name} at {api_version}, which k8s-sync reads at {}",
                known.api_version()
            );
            (known, reason)
        });
        let label = if kind_name.is_empty() {
            "object without kind".to_string()
        } else {
            format!("unknown kind {api_version}/{kind_name}")
        };
        return Ok(Prepared::Skipped { label, held });
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::MissingName {
            origin: origin.clone(),
            kind: kind.kind.to_string(),
        })?
        .to_string();
    if kind.path_segment_names {
        check_path_segment(&origin, &name)?;
    } else {
        check_name(&origin, "name", &name, 253)?;
    }
    let namespace = if kind.namespaced {
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        check_name(&origin, "namespace", &namespace, 63)?;
        namespace
    } else {
        String::new()
    };
    if let Err(skip) = scope.admits(kind, &namespace, &value) {
        let label = skip_label(skip, kind.kind);
        return Ok(Prepared::Skipped { label, held: None });
    }
    if kind.namespaced {
        value["metadata"]["namespace"] = Value::String(namespace.clone());
    } else if let Some(metadata) = value["metadata"].as_object_mut() {
        metadata.remove("namespace");
    }
    let applied = read_applied(&value);
    let identity = read_identity(&value);
    let owned_by = synced_controller(&value, scope);
    normalize::normalize(&mut value, kind);
    let canonical = Canonical::of(&value);
    drop(value);
    let entry = Entry {
        change_key: canonical.change_key(),
        canonical,
        applied,
        redacted: archived.is_some_and(|a| a.redacted),
        origin,
        identity,
        owned_by,
    };
    let reference = ObjectRef {
        kind,
        namespace,
        name,
    };
    Ok(Prepared::Object(reference, Box::new(entry)))
}

fn skip_label(skip: Skip, kind: &str) -> String {
    match skip {
        Skip::Kind => format!("{kind}: kind not selected"),
        Skip::Namespace => format!("{kind}: namespace not selected"),
        Skip::SensitiveNamespace => format!("{kind}: kube-* namespace"),
        Skip::ExcludedNamespace => format!("{kind}: excluded namespace"),
        Skip::Excluded(why) => format!("{kind}: {why}"),
    }
}

/// The object's controller (the owner reference marked `controller: true`) as `Kind/name`,
/// when its kind is synced.
fn synced_controller(object: &Value, scope: &Scope) -> Option<String> {
    let owners = object.pointer("/metadata/ownerReferences")?.as_array()?;
    let controller = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
    let field = |name| {
        controller
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    scope
        .owner_kinds()
        .contains_type(field("apiVersion"), field("kind"))
        .then(|| format!("{}/{}", field("kind"), field("name")))
}

fn read_identity(object: &Value) -> Option<Identity> {
    let field = |name| {
        object
            .pointer(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some(Identity {
        uid: field("/metadata/uid")?,
        resource_version: field("/metadata/resourceVersion")?,
    })
}

fn read_applied(object: &Value) -> Option<Applied> {
    let annotations = object.pointer("/metadata/annotations")?;
    let change_key = ChangeKey::parse(annotations.get(CHANGE_KEY_ANNOTATION)?.as_str()?)?;
    let source = annotations
        .get(SOURCE_ANNOTATION)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let prune_held = annotations.get(PRUNE_HELD_ANNOTATION).is_some();
    Some(Applied {
        source,
        change_key,
        prune_held,
    })
}

/// Checks an RFC 1123 subdomain (names) or label (namespaces, `max` 63). Valid names can never
/// be `.`, `..` or contain `/`, which is what keeps archive paths inside their directory.
/// Checks a name the API accepts as any path segment (RBAC's `system:controller:…`): not `.`
/// or `..`, no `/` or `%`, which is what keeps archive paths inside their directory.
fn check_path_segment(origin: &str, value: &str) -> Result<(), Error> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value != "."
        && value != ".."
        && !value.contains(['/', '%', '\\'])
        && !value.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            origin: origin.to_string(),
            what: "name",
            value: value.to_string(),
        })
    }
}

fn check_name(origin: &str, what: &'static str, value: &str, max: usize) -> Result<(), Error> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let valid = value.len() <= max
        && if what == "namespace" {
            label_ok(value)
        } else {
            value.split('.').all(label_ok)
        };
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            origin: origin.to_string(),
            what,
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
