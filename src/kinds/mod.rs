//! The synced kinds.
//!
//! What k8s-sync knows of a built-in kind — its apply stage, the fields the server refuses to
//! change, whether it holds data — is a row of the table in [`table`]; the rest of the code asks
//! the [`Kind`] instead of matching on kind names. Every other kind (a custom resource, a
//! built-in kind without a row) is met through API discovery or in manifests and registered
//! here with the defaults of [`Kind::discovered`]: it syncs through the dynamic API with no
//! code of its own.

mod select;
mod table;

use std::fmt;
use std::sync::{LazyLock, RwLock};

pub use select::{DENIED, Denied, KindSelection, SelectError, Served, resolve};
pub use table::{CRD, TABLE};

/// When objects of a kind are applied: everything of one stage before the next (prunes in the
/// reverse order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// CustomResourceDefinitions (namespaces are made before any stage).
    Definitions = 0,
    /// ServiceAccounts, RBAC, configuration and claims: what workloads refer to.
    Foundations = 1,
    /// Services.
    Network = 2,
    /// Deployments, StatefulSets, DaemonSets, CronJobs.
    Workloads = 3,
    /// Everything else: Ingresses, policies, autoscalers, custom resources.
    Rest = 4,
}

/// One kind of object k8s-sync replicates.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// The `kind` field, e.g. `Deployment`.
    pub kind: &'static str,
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Lower-case plural resource name, as in URLs, `--kinds` and snapshot paths.
    pub plural: &'static str,
    /// Whether objects live in namespaces (every synced kind but CustomResourceDefinitions).
    pub namespaced: bool,
    /// When it is applied.
    pub stage: Stage,
    /// Paths (dot-separated, below the object root) the API server rejects changes to.
    /// A change at or below one of them can only be made by deleting and re-creating.
    pub immutable: &'static [&'static str],
    /// Paths under an immutable one that may change all the same.
    pub mutable_exceptions: &'static [&'static str],
    /// Whether `apply --recreate` may delete this kind to re-create it. PVCs hold data.
    pub recreatable: bool,
    /// Whether objects of this kind hold data of their own (a PVC's volume): such an object
    /// gone from the primary is kept on the replicas unless `--prune-pvcs`.
    pub holds_data: bool,
    /// Whether k8s-sync never prunes it: deleting a CustomResourceDefinition deletes every
    /// object of it.
    pub never_pruned: bool,
    /// Whether copies on replicas are suspended (`spec.suspend: true`) unless
    /// `--run-cronjobs`: a warm standby must not run the primary's schedules a second time.
    pub suspended_on_replicas: bool,
    /// Whether names are any path segment (RBAC objects: `system:controller:…`) rather than
    /// DNS subdomains, as the API server checks them.
    pub path_segment_names: bool,
    /// Whether the row comes from [`TABLE`]; discovered kinds have the defaults.
    pub in_table: bool,
    /// What names the kind in jobs, verdicts and messages: see [`Kind::id`].
    id: &'static str,
}

impl Kind {
    /// A kind met through discovery or in a manifest, with no row of its own: applied last,
    /// nothing known to be immutable, pruned like any other, never deleted to be re-created
    /// (deleting a custom resource may do things outside the cluster).
    pub const fn discovered(
        kind: &'static str,
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        namespaced: bool,
    ) -> Kind {
        Kind {
            kind,
            group,
            version,
            plural,
            namespaced,
            stage: Stage::Rest,
            immutable: &[],
            mutable_exceptions: &[],
            recreatable: false,
            holds_data: false,
            never_pruned: false,
            suspended_on_replicas: false,
            path_segment_names: false,
            in_table: false,
            id: kind,
        }
    }

    /// `apiVersion` as written in manifests: `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether it may be a custom resource, served by a CustomResourceDefinition: a kind beyond
    /// the table in a group with a dot (built-in groups beyond the table have none, or end in
    /// `.k8s.io`, whose CRD lookups simply find nothing).
    pub fn is_custom(&self) -> bool {
        !self.in_table && self.group.contains('.')
    }

    /// What names the kind in jobs, verdicts and messages: the `kind` alone for a row of the
    /// table (`Deployment`, as jobs have always recorded it), `Kind.group` for every other
    /// (`Widget.example.com`), which no two groups share.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The resource's full name: `plural` in the core group, `plural.group` beyond it
    /// (`deployments.apps`, `widgets.example.com`), as snapshots name directories.
    pub fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The resource's name in watcher names, `/api/status` and metrics: the plural for a row of
    /// the table (`deployments`), [`Kind::resource`] for every other.
    pub fn short_name(&self) -> String {
        if self.in_table {
            self.plural.to_string()
        } else {
            self.resource()
        }
    }

    /// The API path of this kind's collection, in one namespace or across all (a cluster-scoped
    /// kind has no namespace).
    pub fn url_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            _ => format!("{prefix}/{}", self.plural),
        }
    }

    /// Whether a change at `path` (dot-separated) needs the object re-created.
    pub fn is_immutable_path(&self, path: &str) -> bool {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        self.immutable.iter().any(|p| under(p)) && !self.mutable_exceptions.iter().any(|p| under(p))
    }

    /// Whether the kind is `group`'s `kind`, whatever the version.
    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

/// Every kind known to this process: the table's rows, then each kind registered since. A kind
/// is registered once per group and kind and lives as long as the process (there are a few
/// hundred at most), so every part of a pass can hold `&'static Kind`.
static REGISTRY: LazyLock<RwLock<Vec<&'static Kind>>> =
    LazyLock::new(|| RwLock::new(TABLE.iter().chain([&CRD]).collect()));

fn registry() -> std::sync::RwLockReadGuard<'static, Vec<&'static Kind>> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

/// The kind of `group` and `kind`, registered with what discovery (or a manifest) says of it
/// when it is not known yet. A row of the table keeps its own version: it is the one the table's
/// rules are written for.
pub fn register(served: &Served) -> &'static Kind {
    if let Some(known) = by_group_kind(&served.group, &served.kind) {
        return known;
    }
    let mut all = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = all
        .iter()
        .find(|k| k.is(&served.group, &served.kind))
        .copied()
    {
        return known;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let mut discovered = Kind::discovered(
        leak(&served.kind),
        leak(&served.group),
        leak(&served.version),
        leak(&served.plural),
        served.namespaced,
    );
    if !served.group.is_empty() {
        discovered.id = leak(&format!("{}.{}", served.kind, served.group));
    }
    let kind: &'static Kind = Box::leak(Box::new(discovered));
    all.push(kind);
    kind
}

/// The kind of `group` and `kind`, if known.
pub fn by_group_kind(group: &str, kind: &str) -> Option<&'static Kind> {
    registry().iter().find(|k| k.is(group, kind)).copied()
}

/// Looks a kind up by its `apiVersion` and `kind` fields: a known kind, at the version it is
/// known by.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static Kind> {
    let (group, version) = split_api_version(api_version);
    by_group_kind(group, kind).filter(|k| k.version == version)
}

/// Looks a kind up by what [`Kind::id`] names it (`Deployment`, `Widget.example.com`), as jobs
/// record it.
pub fn by_id(id: &str) -> Option<&'static Kind> {
    registry().iter().find(|k| k.id() == id).copied()
}

/// Looks a kind up by its plural resource name (`deployments`), or its full one
/// (`widgets.example.com`).
pub fn by_plural(plural: &str) -> Option<&'static Kind> {
    registry()
        .iter()
        .find(|k| k.plural == plural || k.resource() == plural)
        .copied()
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The kinds a pass syncs, in apply order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSet(Vec<&'static Kind>);

impl KindSet {
    /// The five kinds k8s-sync syncs unless told otherwise.
    pub fn default_five() -> Self {
        Self::of(TABLE.iter().filter(|k| table::DEFAULT.contains(&k.plural)))
    }

    /// No kind: what `--kinds all` syncs before the primary answered discovery.
    pub fn empty() -> Self {
        KindSet(Vec::new())
    }

    /// The set of the given kinds.
    pub fn of<'k>(kinds: impl IntoIterator<Item = &'k Kind>) -> Self {
        let mut all: Vec<&'static Kind> = kinds
            .into_iter()
            .filter_map(|k| by_group_kind(k.group, k.kind))
            .collect();
        all.sort_by_key(|k| (k.stage, k.group, k.plural));
        all.dedup();
        KindSet(all)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many kinds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: &Kind) -> bool {
        self.0.iter().any(|k| k.is(kind.group, kind.kind))
    }

    /// Whether the kind of `apiVersion` and `kind` is in the set, whatever its version: what an
    /// owner reference names.
    pub fn contains_type(&self, api_version: &str, kind: &str) -> bool {
        let (group, _) = split_api_version(api_version);
        self.0.iter().any(|k| k.is(group, kind))
    }

    /// The kinds in the set, in apply order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Kind> + '_ {
        self.0.iter().copied()
    }

    /// The kinds of this set and `other`.
    pub fn union(&self, other: &KindSet) -> KindSet {
        KindSet::of(self.iter().chain(other.iter()))
    }
}

impl Default for KindSet {
    fn default() -> Self {
        Self::default_five()
    }
}

#[cfg(test)]
mod tests;
