//! The least privilege a pass needs, derived from the kind table: what the ClusterRoles in
//! `deploy/` must grant, and a test there fails when they grant anything else. A kind added
//! to [`TABLE`](crate::kinds::TABLE) adds its rules here, in one place. Custom resources are
//! the user's to add (a rule per group in an overlay, as the README shows).

use std::collections::BTreeSet;

use crate::kinds::Kind;

/// A cluster's part in replication, and so what k8s-sync does there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Listed and watched, never written.
    Primary,
    /// Listed, watched and written by server-side apply; pruned; namespaces made.
    Replica,
}

/// What a part needs of the synced kinds and of namespaces.
#[derive(Debug)]
pub struct Grant {
    /// The part.
    pub part: Part,
    /// Verbs on every synced kind.
    pub kinds: &'static [&'static str],
    /// Verbs on namespaces (cluster-scoped): read on both, create where passes make them.
    pub namespaces: &'static [&'static str],
}

/// One row per part.
pub static GRANTS: [Grant; 2] = [
    Grant {
        part: Part::Primary,
        kinds: &["get", "list", "watch"],
        // `get` also reads `kube-system`'s uid, the cluster's identity.
        namespaces: &["get", "list", "watch"],
    },
    Grant {
        part: Part::Replica,
        // Server-side apply is a `patch`, also when it creates; `create` for re-creation,
        // `delete` for prunes and re-creation; dry-run applies are patches too.
        kinds: &["get", "list", "watch", "create", "patch", "delete"],
        namespaces: &["get", "list", "watch", "create"],
    },
];

/// What each part needs beyond the synced kinds, as (part, group, resource, verbs):
/// CustomResourceDefinitions for `--sync-crds` (never deleted), the RBAC verbs that let a
/// replica's Roles and RoleBindings be written as the primary has them (`escalate` to write a
/// Role granting what k8s-sync itself lacks, `bind` to bind a Role or ClusterRole), and reads
/// of the cluster-scoped objects synced ones refer to, to warn of those a replica lacks.
pub static EXTRA: &[(Part, &str, &str, &[&str])] = &[
    (
        Part::Primary,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["get", "list", "watch"],
    ),
    (
        Part::Replica,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["get", "list", "watch", "create", "patch"],
    ),
    (
        Part::Replica,
        "rbac.authorization.k8s.io",
        "roles",
        &["bind", "escalate"],
    ),
    (
        Part::Replica,
        "rbac.authorization.k8s.io",
        "clusterroles",
        &["get", "bind"],
    ),
    (
        Part::Replica,
        "networking.k8s.io",
        "ingressclasses",
        &["get"],
    ),
    (Part::Replica, "storage.k8s.io", "storageclasses", &["get"]),
    (
        Part::Replica,
        "scheduling.k8s.io",
        "priorityclasses",
        &["get"],
    ),
];

/// What the copies in the primary need in their own namespace (a Role there): the Lease of the
/// election, the leader's label on its own Pod (taken off the Pods of earlier leaders), and
/// the Secret of the API's users and sessions that the copies share
/// ([`SECRET_NAME`](crate::accounts::SECRET_NAME); the Role names it for every verb but
/// `create`, which cannot be limited by name).
pub static LEADER_ELECTION: &[(&str, &str, &[&str])] = &[
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
    ("", "pods", &["get", "list", "patch"]),
    ("", "secrets", &["get", "list", "watch", "create", "update"]),
];

/// The permissions of [`LEADER_ELECTION`], as (group, resource, verb).
pub fn leader_election() -> BTreeSet<Permission> {
    LEADER_ELECTION
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(|verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

/// One permission: `verb` on `resource` of API `group` (empty for the core group).
pub type Permission = (String, String, String);

/// Every permission `part` needs for `kinds`, as (group, resource, verb).
pub fn permissions<'k>(
    part: Part,
    kinds: impl IntoIterator<Item = &'k Kind>,
) -> BTreeSet<Permission> {
    let grant = GRANTS
        .iter()
        .find(|g| g.part == part)
        .expect("every part has a grant");
    let mut all = BTreeSet::new();
    for verb in grant.namespaces {
        all.insert((String::new(), "namespaces".into(), verb.to_string()));
    }
    for kind in kinds {
        for verb in grant.kinds {
            all.insert((kind.group.into(), kind.plural.into(), verb.to_string()));
        }
    }
    for (_, group, resource, verbs) in EXTRA.iter().filter(|e| e.0 == part) {
        for verb in *verbs {
            all.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    all
}

/// The permissions a list of RBAC `rules` (as in a ClusterRole) grants, as (group, resource,
/// verb); `*` is kept as written, so that a wildcard never passes for least privilege.
pub fn granted(rules: &serde_json::Value) -> BTreeSet<Permission> {
    let strings = |rule: &serde_json::Value, field: &str| -> Vec<String> {
        rule[field]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    all.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{TABLE, by_plural};
    use serde_json::json;

    #[test]
    fn the_primary_is_only_read() {
        let all = permissions(Part::Primary, &TABLE);
        assert!(
            all.iter()
                .all(|(_, _, verb)| ["get", "list", "watch"].contains(&verb.as_str()))
        );
        // The kinds, namespaces and CRDs.
        assert_eq!(all.len(), 3 * (TABLE.len() + 2));
    }

    #[test]
    fn a_replica_is_written_and_its_namespaces_made_but_never_deleted() {
        let all = permissions(Part::Replica, [by_plural("deployments").unwrap()]);
        let of = |resource: &str| -> Vec<&str> {
            all.iter()
                .filter(|(_, r, _)| r == resource)
                .map(|(_, _, v)| v.as_str())
                .collect()
        };
        assert_eq!(
            of("deployments"),
            ["create", "delete", "get", "list", "patch", "watch"]
        );
        assert_eq!(of("namespaces"), ["create", "get", "list", "watch"]);
        assert_eq!(of("roles"), ["bind", "escalate"]);
        assert_eq!(
            of("customresourcedefinitions"),
            ["create", "get", "list", "patch", "watch"]
        );
        assert!(!all.contains(&(
            "apiextensions.k8s.io".into(),
            "customresourcedefinitions".into(),
            "delete".into()
        )));
    }

    #[test]
    fn reads_rules_as_written_wildcards_included() {
        let rules = json!([
            {"apiGroups": ["", "apps"], "resources": ["configmaps"], "verbs": ["get", "list"]},
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        ]);
        let granted = granted(&rules);
        assert_eq!(granted.len(), 5);
        assert!(granted.contains(&("*".into(), "*".into(), "*".into())));
    }
}
