//! The synced kinds, as one table.
//!
//! Everything that differs between kinds — API coordinates, apply order, which fields the
//! server refuses to change — lives in [`KINDS`], so the rest of the code asks the table
//! instead of matching on kind names.

use std::fmt;
use std::str::FromStr;

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
    /// Position in an apply: data before the workloads that mount it.
    pub apply_order: u8,
    /// Paths (dot-separated, below the object root) the API server rejects changes to.
    /// A change at or below one of them can only be made by deleting and re-creating.
    pub immutable: &'static [&'static str],
    /// Paths under `spec` that may change even though `spec` as a whole is immutable.
    pub mutable_exceptions: &'static [&'static str],
    /// Whether `apply --recreate` may delete this kind to re-create it. PVCs hold data.
    pub recreatable: bool,
    /// Whether objects of this kind hold data of their own (a PVC's volume): such an object
    /// gone from the primary is kept on the replicas unless `--prune-pvcs`.
    pub holds_data: bool,
}

impl Kind {
    /// `apiVersion` as written in manifests: `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The API path of this kind's collection, in one namespace or across all.
    pub fn url_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            None => format!("{prefix}/{}", self.plural),
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
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)
    }
}

/// The five synced kinds, in apply order.
pub static KINDS: [Kind; 5] = [
    Kind {
        kind: "ConfigMap",
        group: "",
        version: "v1",
        plural: "configmaps",
        apply_order: 0,
        immutable: &[],
        mutable_exceptions: &[],
        recreatable: true,
        holds_data: false,
    },
    Kind {
        kind: "Secret",
        group: "",
        version: "v1",
        plural: "secrets",
        apply_order: 1,
        // The server rejects a change of type; data of `immutable: true` Secrets is handled
        // by the server's error, not predicted here.
        immutable: &["type"],
        mutable_exceptions: &[],
        recreatable: true,
        holds_data: false,
    },
    Kind {
        kind: "PersistentVolumeClaim",
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        apply_order: 2,
        immutable: &["spec"],
        // Storage may grow (the server refuses shrinking); the attributes class may change.
        mutable_exceptions: &[
            "spec.resources.requests.storage",
            "spec.volumeAttributesClassName",
        ],
        recreatable: false,
        holds_data: true,
    },
    Kind {
        kind: "Deployment",
        group: "apps",
        version: "v1",
        plural: "deployments",
        apply_order: 3,
        immutable: &["spec.selector"],
        mutable_exceptions: &[],
        recreatable: true,
        holds_data: false,
    },
    Kind {
        kind: "StatefulSet",
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        apply_order: 3,
        immutable: &["spec"],
        // The fields `kubectl apply` may change on a StatefulSet, as the API server lists
        // them in its validation error.
        mutable_exceptions: &[
            "spec.replicas",
            "spec.ordinals",
            "spec.template",
            "spec.updateStrategy",
            "spec.persistentVolumeClaimRetentionPolicy",
            "spec.minReadySeconds",
            "spec.revisionHistoryLimit",
        ],
        recreatable: true,
        holds_data: false,
    },
];

/// Looks a kind up by its `apiVersion` and `kind` fields.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// Looks a kind up by its `kind` field alone (`Deployment`), as jobs record it.
pub fn by_kind(kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// Looks a kind up by its plural resource name (`deployments`).
pub fn by_plural(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// A subset of [`KINDS`], as chosen with `--kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSet(u8);

impl KindSet {
    /// Every synced kind.
    pub fn all() -> Self {
        KindSet((1 << KINDS.len()) - 1)
    }

    /// The set of the given kinds.
    pub fn of<'k>(kinds: impl IntoIterator<Item = &'k Kind>) -> Self {
        KindSet(kinds.into_iter().fold(0, |bits, k| bits | Self::bit(k)))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: &Kind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// The kinds in the set, in apply order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Kind> + '_ {
        KINDS.iter().filter(|k| self.contains(k))
    }

    fn bit(kind: &Kind) -> u8 {
        let index = KINDS
            .iter()
            .position(|k| k == kind)
            .expect("every Kind lives in KINDS");
        1 << index
    }
}

impl Default for KindSet {
    fn default() -> Self {
        Self::all()
    }
}

/// `--kinds` named a kind k8s-sync does not sync.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind {0:?} (expected a comma-separated list of: {list})", list = plurals())]
pub struct UnknownKind(String);

fn plurals() -> String {
    KINDS
        .iter()
        .map(|k| k.plural)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for KindSet {
    type Err = UnknownKind;

    /// Parses `deployments,secrets`; singular names and `Kind` spellings are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = KindSet(0);
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let lower = word.to_ascii_lowercase();
            let kind = KINDS
                .iter()
                .find(|k| {
                    k.plural == lower
                        || k.kind.eq_ignore_ascii_case(&lower)
                        || k.plural == format!("{lower}s")
                })
                .ok_or_else(|| UnknownKind(word.to_string()))?;
            set.0 |= Self::bit(kind);
        }
        if set.0 == 0 {
            return Err(UnknownKind(s.to_string()));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_kinds_up_by_type_and_plural() {
        assert_eq!(
            by_type("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(by_type("v1", "Secret").unwrap().plural, "secrets");
        assert!(by_type("extensions/v1beta1", "Deployment").is_none());
        assert!(by_type("v1", "Pod").is_none());
        assert_eq!(by_plural("statefulsets").unwrap().kind, "StatefulSet");
    }

    #[test]
    fn builds_api_paths() {
        let d = by_plural("deployments").unwrap();
        assert_eq!(d.url_path(None), "/apis/apps/v1/deployments");
        assert_eq!(
            d.url_path(Some("shop")),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
        let c = by_plural("configmaps").unwrap();
        assert_eq!(
            c.url_path(Some("shop")),
            "/api/v1/namespaces/shop/configmaps"
        );
    }

    #[test]
    fn apply_order_puts_data_before_workloads() {
        let order = |p| by_plural(p).unwrap().apply_order;
        assert!(order("configmaps") < order("deployments"));
        assert!(order("secrets") < order("statefulsets"));
        assert!(order("persistentvolumeclaims") < order("statefulsets"));
    }

    #[test]
    fn parses_kind_sets() {
        let set: KindSet = "deployments, Secret,configmap".parse().unwrap();
        let names: Vec<_> = set.iter().map(|k| k.plural).collect();
        assert_eq!(names, ["configmaps", "secrets", "deployments"]);
        assert!("".parse::<KindSet>().is_err());
        let err = "pods".parse::<KindSet>().unwrap_err().to_string();
        assert!(
            err.contains("\"pods\"") && err.contains("persistentvolumeclaims"),
            "{err}"
        );
        assert_eq!(KindSet::all().iter().count(), 5);
    }

    #[test]
    fn immutable_paths_follow_the_table() {
        let deploy = by_plural("deployments").unwrap();
        assert!(deploy.is_immutable_path("spec.selector.matchLabels.app"));
        assert!(!deploy.is_immutable_path("spec.selectorX"));
        assert!(!deploy.is_immutable_path("spec.replicas"));

        let sts = by_plural("statefulsets").unwrap();
        assert!(sts.is_immutable_path("spec.serviceName"));
        assert!(sts.is_immutable_path("spec.volumeClaimTemplates[0].spec"));
        assert!(!sts.is_immutable_path("spec.template.spec.containers[0].image"));
        assert!(!sts.is_immutable_path("spec.replicas"));

        let pvc = by_plural("persistentvolumeclaims").unwrap();
        assert!(pvc.is_immutable_path("spec.storageClassName"));
        assert!(!pvc.is_immutable_path("spec.resources.requests.storage"));
        assert!(!pvc.is_immutable_path("metadata.labels.tier"));
        assert!(!pvc.recreatable);
    }

    #[test]
    fn only_kinds_that_hold_data_wait_for_a_flag_before_pruning() {
        let holding: Vec<_> = KINDS
            .iter()
            .filter(|k| k.holds_data)
            .map(|k| k.plural)
            .collect();
        assert_eq!(holding, ["persistentvolumeclaims"]);
    }
}
