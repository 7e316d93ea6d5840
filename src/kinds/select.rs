//! `--kinds`: what the user asked for ([`KindSelection`]) and what it means on a primary that
//! serves certain resources ([`resolve`]), with the deny list of runtime state.

use std::fmt;
use std::str::FromStr;

use super::{KindSet, TABLE, register};

/// A resource a server serves, as discovery (or a manifest) tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// API group; empty for the core group.
    pub group: String,
    /// The version served (the group's preferred one).
    pub version: String,
    /// The `kind` of its objects.
    pub kind: String,
    /// The plural resource name.
    pub plural: String,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// Whether it can be listed, watched and patched: what syncing needs.
    pub syncable: bool,
}

impl Served {
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn matches(&self, word: &str) -> bool {
        let word = word.to_ascii_lowercase();
        let (name, group) = match word.split_once('.') {
            Some((name, group)) => (name, Some(group)),
            None => (word.as_str(), None),
        };
        group.is_none_or(|g| g == self.group)
            && (self.plural == name || self.kind.to_ascii_lowercase() == name)
    }
}

/// A resource that is never synced, even by name: state of the cluster it runs on, or work a
/// replica would do a second time.
#[derive(Debug)]
pub struct Denied {
    /// API group.
    pub group: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// Why, for the error that names it.
    pub why: &'static str,
}

const RUNTIME: &str = "runtime state that each cluster makes for itself";

/// The deny list of `--kinds all` (and of names): runtime state, and Jobs.
pub static DENIED: &[Denied] = &[
    Denied {
        group: "",
        plural: "pods",
        why: "runtime state: the workloads that own them make them",
    },
    Denied {
        group: "",
        plural: "events",
        why: RUNTIME,
    },
    Denied {
        group: "events.k8s.io",
        plural: "events",
        why: RUNTIME,
    },
    Denied {
        group: "",
        plural: "endpoints",
        why: RUNTIME,
    },
    Denied {
        group: "discovery.k8s.io",
        plural: "endpointslices",
        why: RUNTIME,
    },
    Denied {
        group: "apps",
        plural: "replicasets",
        why: "runtime state: Deployments make them",
    },
    Denied {
        group: "apps",
        plural: "controllerrevisions",
        why: RUNTIME,
    },
    Denied {
        group: "coordination.k8s.io",
        plural: "leases",
        why: "runtime state: leader elections of the cluster's own controllers",
    },
    Denied {
        group: "",
        plural: "podtemplates",
        why: RUNTIME,
    },
    Denied {
        group: "",
        plural: "bindings",
        why: RUNTIME,
    },
    Denied {
        group: "",
        plural: "limitranges",
        why: "policy of each cluster's own",
    },
    Denied {
        group: "",
        plural: "resourcequotas",
        why: "policy of each cluster's own",
    },
    Denied {
        group: "",
        plural: "replicationcontrollers",
        why: "a legacy controller; sync Deployments",
    },
    Denied {
        group: "metrics.k8s.io",
        plural: "pods",
        why: RUNTIME,
    },
    Denied {
        group: "metrics.k8s.io",
        plural: "nodes",
        why: RUNTIME,
    },
    Denied {
        group: "authorization.k8s.io",
        plural: "localsubjectaccessreviews",
        why: RUNTIME,
    },
    Denied {
        group: "batch",
        plural: "jobs",
        why: "a Job on a replica would run again for real",
    },
    Denied {
        group: "storage.k8s.io",
        plural: "csistoragecapacities",
        why: RUNTIME,
    },
    Denied {
        group: "resource.k8s.io",
        plural: "resourceclaims",
        why: "runtime state: devices allocated to Pods (ResourceClaimTemplates are synced)",
    },
    Denied {
        group: "certificates.k8s.io",
        plural: "podcertificaterequests",
        why: "runtime state: the kubelet's requests for its Pods",
    },
];

fn denied(served: &Served) -> Option<&'static Denied> {
    DENIED
        .iter()
        .find(|d| d.group == served.group && d.plural == served.plural)
}

/// What `--kinds` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KindSelection {
    /// The five default kinds: ConfigMaps, Secrets, PVCs, Deployments, StatefulSets.
    #[default]
    Default,
    /// Every namespaced resource that can be listed, watched and patched, minus [`DENIED`].
    All,
    /// These names: plurals (`services`), `plural.group` (`widgets.example.com`), kinds
    /// (`Service`) or `Kind.group` (`Widget.example.com`).
    Names(Vec<String>),
}

impl KindSelection {
    /// Whether the selection needs the primary's discovery to mean something: it does unless
    /// it names only rows of the kind table.
    pub fn needs_discovery(&self) -> bool {
        match self {
            KindSelection::Default => false,
            KindSelection::All => true,
            KindSelection::Names(names) => names.iter().any(|n| table_row(n).is_none()),
        }
    }

    /// The set without discovery, when [`needs_discovery`](Self::needs_discovery) is false.
    pub fn without_discovery(&self) -> Option<KindSet> {
        match self {
            KindSelection::Default => Some(KindSet::default_five()),
            KindSelection::All => None,
            KindSelection::Names(names) => names
                .iter()
                .map(|n| table_row(n))
                .collect::<Option<Vec<_>>>()
                .map(KindSet::of),
        }
    }
}

fn table_row(word: &str) -> Option<&'static super::Kind> {
    let lower = word.to_ascii_lowercase();
    let (name, group) = match lower.split_once('.') {
        Some((name, group)) => (name, Some(group)),
        None => (lower.as_str(), None),
    };
    TABLE.iter().find(|k| {
        group.is_none_or(|g| g == k.group)
            && (k.plural == name || k.kind.eq_ignore_ascii_case(name))
    })
}

impl FromStr for KindSelection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        match words.as_slice() {
            [] => Err("no kind named (give plurals such as services, or all)".into()),
            [all] if all == "all" => Ok(KindSelection::All),
            _ if words.iter().any(|w| w == "all") => {
                Err("`all` cannot be combined with other kinds".into())
            }
            _ => Ok(KindSelection::Names(words)),
        }
    }
}

impl fmt::Display for KindSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindSelection::Default => f.write_str(&super::table::DEFAULT.join(",")),
            KindSelection::All => f.write_str("all"),
            KindSelection::Names(names) => f.write_str(&names.join(",")),
        }
    }
}

/// A selection that names what the primary does not serve, or cannot be synced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// No served resource has the name.
    #[error(
        "--kinds: the primary serves no resource {name:?}{}",
        close_names(close)
    )]
    Unknown {
        /// The name given.
        name: String,
        /// Served resources whose names are close.
        close: Vec<String>,
    },
    /// More than one group serves a bare name.
    #[error("--kinds: {name:?} is served by more than one group: name one of {}", candidates.join(", "))]
    Ambiguous {
        /// The name given.
        name: String,
        /// Each candidate as `plural.group`.
        candidates: Vec<String>,
    },
    /// The resource is on the deny list.
    #[error("--kinds: {resource} is never synced: {why}")]
    Denied {
        /// The resource, `plural.group`.
        resource: String,
        /// Why.
        why: &'static str,
    },
    /// The resource is cluster-scoped.
    #[error(
        "--kinds: {resource} is cluster-scoped; k8s-sync syncs namespaced resources (the CRDs of synced custom resources with --sync-crds)"
    )]
    ClusterScoped {
        /// The resource.
        resource: String,
    },
    /// The resource cannot be listed, watched and patched.
    #[error("--kinds: {resource} cannot be listed, watched and patched on the primary")]
    NotSyncable {
        /// The resource.
        resource: String,
    },
}

fn close_names(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (close: {})", close.join(", "))
    }
}

/// What a selection means on a primary that serves `served`: each kind registered, so that the
/// rest of the process can name it. `all` leaves out what [`DENIED`] names, cluster-scoped
/// resources and what cannot be synced; a name that does so is an error.
pub fn resolve(selection: &KindSelection, served: &[Served]) -> Result<KindSet, SelectError> {
    match selection {
        KindSelection::Default => Ok(KindSet::default_five()),
        KindSelection::All => Ok(KindSet::of(
            served
                .iter()
                .filter(|s| s.namespaced && s.syncable && denied(s).is_none())
                .map(register)
                .collect::<Vec<_>>(),
        )),
        KindSelection::Names(names) => {
            let mut kinds = Vec::new();
            for name in names {
                kinds.push(resolve_name(name, served)?);
            }
            Ok(KindSet::of(kinds))
        }
    }
}

fn resolve_name(name: &str, served: &[Served]) -> Result<&'static super::Kind, SelectError> {
    let mut found: Vec<&Served> = served.iter().filter(|s| s.matches(name)).collect();
    // The same resource served at one version is one candidate.
    found.dedup_by(|a, b| a.group == b.group && a.plural == b.plural);
    let one = match found.as_slice() {
        // Not served here, but never synced anywhere: say why.
        [] if let Some(denied) = denied_name(name) => {
            return Err(SelectError::Denied {
                resource: if denied.group.is_empty() {
                    denied.plural.to_string()
                } else {
                    format!("{}.{}", denied.plural, denied.group)
                },
                why: denied.why,
            });
        }
        [] => {
            return Err(SelectError::Unknown {
                name: name.to_string(),
                close: close(name, served),
            });
        }
        [one] => *one,
        many => {
            return Err(SelectError::Ambiguous {
                name: name.to_string(),
                candidates: many.iter().map(|s| s.resource()).collect(),
            });
        }
    };
    if let Some(denied) = denied(one) {
        return Err(SelectError::Denied {
            resource: one.resource(),
            why: denied.why,
        });
    }
    if !one.namespaced {
        return Err(SelectError::ClusterScoped {
            resource: one.resource(),
        });
    }
    if !one.syncable {
        return Err(SelectError::NotSyncable {
            resource: one.resource(),
        });
    }
    Ok(register(one))
}

/// The deny list's entry a name means (`pods`, `jobs.batch`), if any.
fn denied_name(name: &str) -> Option<&'static Denied> {
    let name = name.to_ascii_lowercase();
    let (plural, group) = match name.split_once('.') {
        Some((plural, group)) => (plural, Some(group)),
        None => (name.as_str(), None),
    };
    DENIED
        .iter()
        .find(|d| d.plural == plural && group.is_none_or(|g| g == d.group))
}

/// Served resources whose names are within a small edit distance of `name`, closest first.
fn close(name: &str, served: &[Served]) -> Vec<String> {
    let name = name.to_ascii_lowercase();
    let bare = name.split('.').next().unwrap_or_default();
    let mut scored: Vec<(usize, String)> = served
        .iter()
        .filter_map(|s| {
            let distance = strsim::levenshtein(bare, &s.plural)
                .min(strsim::levenshtein(bare, &s.kind.to_ascii_lowercase()));
            (distance <= 2 + bare.len() / 5 || s.plural.starts_with(bare))
                .then(|| (distance, s.resource()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, r)| r).collect()
}
