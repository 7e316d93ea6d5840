//! What a pass syncs: which kinds, which namespaces, and the objects that never leave home.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::kinds::{CRD, Kind, KindSet};

/// An object that is never synced, whatever the flags say.
#[derive(Debug)]
pub struct Exclusion {
    /// Short name, used in counts and logs.
    pub name: &'static str,
    /// The `kind` it applies to.
    pub kind: &'static str,
    matches: fn(&Value) -> bool,
}

/// Objects each cluster makes for itself. Copying them would overwrite the replica's own.
pub static EXCLUSIONS: &[Exclusion] = &[
    Exclusion {
        name: "cluster CA bundle",
        kind: "ConfigMap",
        matches: |o| {
            matches!(
                name_of(o),
                // Published into every namespace by kube-controller-manager, OpenShift and
                // istiod respectively; each cluster's own CA.
                "kube-root-ca.crt" | "openshift-service-ca.crt" | "istio-ca-root-cert"
            )
        },
    },
    Exclusion {
        name: "the API server's own Service",
        kind: "Service",
        // `default/kubernetes` points at each cluster's own API server.
        matches: |o| {
            name_of(o) == "kubernetes"
                && o.pointer("/metadata/namespace").and_then(Value::as_str) == Some("default")
        },
    },
    Exclusion {
        name: "service account token",
        kind: "Secret",
        matches: |o| type_of(o) == "kubernetes.io/service-account-token",
    },
    Exclusion {
        name: "bootstrap token",
        kind: "Secret",
        matches: |o| type_of(o) == "bootstrap.kubernetes.io/token",
    },
];

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn type_of(object: &Value) -> &str {
    object
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Namespaces that belong to the cluster itself.
pub fn is_sensitive_namespace(namespace: &str) -> bool {
    namespace.starts_with("kube-")
}

/// Why an object is left out of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Its kind was not selected with `--kinds`.
    Kind,
    /// Its namespace is not in `--sync-namespaces`.
    Namespace,
    /// Its namespace is a `kube-*` one and `--allow-sensitive-namespaces` was not given.
    SensitiveNamespace,
    /// Its namespace is excluded: `--exclude-namespaces`, or the one k8s-sync runs in.
    ExcludedNamespace,
    /// It matches an [`Exclusion`].
    Excluded(&'static str),
}

/// The part of the world a pass looks at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The kinds to sync.
    pub kinds: KindSet,
    /// Only these namespaces, when given.
    pub namespaces: Option<BTreeSet<String>>,
    /// Sync `kube-*` namespaces too.
    pub allow_sensitive_namespaces: bool,
    /// Never these namespaces, whatever else says so.
    pub excluded: BTreeSet<String>,
    /// The CustomResourceDefinitions to sync (`--sync-crds`), by name (`widgets.example.com`):
    /// those of the synced custom resources.
    pub crds: BTreeSet<String>,
    /// Keep CronJobs' schedules running on replicas (`--run-cronjobs`) instead of suspending
    /// the copies.
    pub run_cronjobs: bool,
    /// The synced kinds of the whole pass, when this scope is cut down to a few objects
    /// ([`Scope::narrowed`]): an object's owner is of a synced kind by these, not by the few.
    pub owners: Option<KindSet>,
}

impl Scope {
    /// The kinds listed on each cluster: the synced ones, and CustomResourceDefinitions when
    /// some are synced.
    pub fn listed_kinds(&self) -> impl Iterator<Item = &'static Kind> + '_ {
        (!self.crds.is_empty())
            .then_some(&CRD)
            .into_iter()
            .chain(self.kinds.iter())
    }

    /// The kinds an object's controller must be of for the object to be left to it.
    pub fn owner_kinds(&self) -> &KindSet {
        self.owners.as_ref().unwrap_or(&self.kinds)
    }

    /// Whether a namespace is synced.
    pub fn admits_namespace(&self, namespace: &str) -> Result<(), Skip> {
        if self.excluded.contains(namespace) {
            return Err(Skip::ExcludedNamespace);
        }
        if self
            .namespaces
            .as_ref()
            .is_some_and(|only| !only.contains(namespace))
        {
            return Err(Skip::Namespace);
        }
        // Naming a kube-* namespace in --sync-namespaces still needs the explicit flag.
        if is_sensitive_namespace(namespace) && !self.allow_sensitive_namespaces {
            return Err(Skip::SensitiveNamespace);
        }
        Ok(())
    }

    /// This scope cut down to what some objects need, given as their kinds and namespaces:
    /// those kinds, in those namespaces (one LIST of each kind in each), `kube-*` ones included
    /// when an object is in one. For passes about a few recorded objects (a retry, a release of
    /// held prunes).
    pub fn narrowed<'r>(
        &self,
        objects: impl IntoIterator<Item = (&'static Kind, &'r str)>,
    ) -> Scope {
        let mut kinds = Vec::new();
        let mut namespaces = BTreeSet::new();
        for (kind, namespace) in objects {
            // CRDs are listed as `crds` says, cluster-wide: not a kind of the set.
            if kind.namespaced {
                kinds.push(kind);
                namespaces.insert(namespace.to_string());
            }
        }
        Scope {
            kinds: KindSet::of(kinds),
            allow_sensitive_namespaces: self.allow_sensitive_namespaces
                || namespaces.iter().any(|ns| is_sensitive_namespace(ns)),
            namespaces: Some(namespaces),
            excluded: self.excluded.clone(),
            crds: self.crds.clone(),
            run_cronjobs: self.run_cronjobs,
            owners: Some(self.owner_kinds().clone()),
        }
    }

    /// Whether an object of `kind` in `namespace` is synced.
    pub fn admits(&self, kind: &Kind, namespace: &str, object: &Value) -> Result<(), Skip> {
        if kind.is(CRD.group, CRD.kind) {
            return match self.crds.contains(name_of(object)) {
                true => Ok(()),
                false => Err(Skip::Kind),
            };
        }
        if !self.kinds.contains(kind) {
            return Err(Skip::Kind);
        }
        self.admits_namespace(namespace)?;
        match EXCLUSIONS
            .iter()
            .find(|e| kind.is("", e.kind) && (e.matches)(object))
        {
            Some(exclusion) => Err(Skip::Excluded(exclusion.name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{KindSet, by_plural};
    use serde_json::json;

    fn configmap(name: &str) -> Value {
        json!({"kind": "ConfigMap", "metadata": {"name": name}})
    }

    fn secret(kind: &str) -> Value {
        json!({"kind": "Secret", "metadata": {"name": "s"}, "type": kind})
    }

    #[test]
    fn never_syncs_cluster_ca_bundles_or_tokens() {
        let scope = Scope::default();
        let cm = by_plural("configmaps").unwrap();
        let s = by_plural("secrets").unwrap();
        assert_eq!(
            scope.admits(cm, "shop", &configmap("kube-root-ca.crt")),
            Err(Skip::Excluded("cluster CA bundle"))
        );
        assert_eq!(
            scope.admits(s, "shop", &secret("kubernetes.io/service-account-token")),
            Err(Skip::Excluded("service account token"))
        );
        assert_eq!(
            scope.admits(s, "shop", &secret("bootstrap.kubernetes.io/token")),
            Err(Skip::Excluded("bootstrap token"))
        );
        assert_eq!(scope.admits(s, "shop", &secret("Opaque")), Ok(()));
        assert_eq!(scope.admits(cm, "shop", &configmap("settings")), Ok(()));
        let services = Scope {
            kinds: KindSet::of([by_plural("services").unwrap()]),
            ..Scope::default()
        };
        let svc = by_plural("services").unwrap();
        let kubernetes = |ns: &str| json!({"kind": "Service", "metadata": {"name": "kubernetes", "namespace": ns}});
        assert_eq!(
            services.admits(svc, "default", &kubernetes("default")),
            Err(Skip::Excluded("the API server's own Service"))
        );
        assert_eq!(services.admits(svc, "shop", &kubernetes("shop")), Ok(()));
        // A Secret that happens to be called kube-root-ca.crt is an ordinary Secret.
        let mut odd = secret("Opaque");
        odd["metadata"]["name"] = "kube-root-ca.crt".into();
        assert_eq!(scope.admits(s, "shop", &odd), Ok(()));
    }

    #[test]
    fn skips_kube_namespaces_unless_allowed() {
        let cm = by_plural("configmaps").unwrap();
        let object = configmap("x");
        let mut scope = Scope::default();
        for ns in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "kube-anything",
        ] {
            assert_eq!(scope.admits(cm, ns, &object), Err(Skip::SensitiveNamespace));
        }
        assert_eq!(scope.admits(cm, "kubeflow", &object), Ok(()));
        scope.allow_sensitive_namespaces = true;
        assert_eq!(scope.admits(cm, "kube-system", &object), Ok(()));
    }

    #[test]
    fn an_excluded_namespace_is_never_synced_whatever_else_admits_it() {
        let scope = Scope {
            kinds: KindSet::of([by_plural("configmaps").unwrap()]),
            namespaces: Some(["k8s-sync".to_string(), "shop".to_string()].into()),
            allow_sensitive_namespaces: true,
            excluded: ["k8s-sync".to_string()].into(),
            ..Scope::default()
        };
        let cm = by_plural("configmaps").unwrap();
        let object = configmap("settings");
        assert_eq!(
            scope.admits(cm, "k8s-sync", &object),
            Err(Skip::ExcludedNamespace)
        );
        assert_eq!(scope.admits(cm, "shop", &object), Ok(()));
        let narrowed = scope.narrowed([(cm, "k8s-sync")]);
        assert_eq!(
            narrowed.owner_kinds(),
            &scope.kinds,
            "owners are of the whole pass"
        );
        assert_eq!(
            narrowed.admits(cm, "k8s-sync", &object),
            Err(Skip::ExcludedNamespace),
            "a retry of a recorded object does not lift the exclusion"
        );
    }

    #[test]
    fn restricts_to_listed_namespaces_and_kinds() {
        let scope = Scope {
            kinds: KindSet::of([by_plural("secrets").unwrap()]),
            namespaces: Some(["shop".to_string(), "kube-system".to_string()].into()),
            allow_sensitive_namespaces: false,
            excluded: Default::default(),
            ..Scope::default()
        };
        let s = by_plural("secrets").unwrap();
        let cm = by_plural("configmaps").unwrap();
        assert_eq!(scope.admits(s, "shop", &secret("Opaque")), Ok(()));
        assert_eq!(
            scope.admits(s, "billing", &secret("Opaque")),
            Err(Skip::Namespace)
        );
        assert_eq!(
            scope.admits(s, "kube-system", &secret("Opaque")),
            Err(Skip::SensitiveNamespace)
        );
        assert_eq!(scope.admits(cm, "shop", &configmap("x")), Err(Skip::Kind));
    }

    #[test]
    fn narrows_to_the_kinds_and_namespaces_of_some_objects() {
        let object = |plural| by_plural(plural).unwrap();
        let narrowed = Scope::default().narrowed([
            (object("secrets"), "shop"),
            (object("configmaps"), "kube-system"),
        ]);
        let kinds: Vec<_> = narrowed.kinds.iter().map(|k| k.plural).collect();
        assert_eq!(kinds, ["configmaps", "secrets"]);
        assert_eq!(
            narrowed.namespaces,
            Some(["kube-system".to_string(), "shop".to_string()].into())
        );
        assert!(
            narrowed.allow_sensitive_namespaces,
            "a recorded kube-* object is in scope"
        );
        assert!(
            !Scope::default()
                .narrowed([(object("secrets"), "shop")])
                .allow_sensitive_namespaces
        );
    }
}
