//! Cluster-scoped objects that synced objects refer to — a RoleBinding's ClusterRole, an
//! Ingress's class, a claim's StorageClass, a pod template's PriorityClass — which k8s-sync
//! does not sync (each cluster has its own). A replica that lacks one takes the object but
//! cannot use it, so a pass warns of it by name. One GET per distinct referred object and pass.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::endpoint::Cluster;
use crate::snapshot::{ObjectRef, Snapshot};

/// What one kind's objects refer to at one path.
#[derive(Debug)]
pub struct Reference {
    /// The referring kind's `kind` (of the kind table).
    pub from: &'static str,
    /// Dot-separated path of the referred name; `[]` walks every element of a list.
    pub path: &'static str,
    /// When set, a sibling field (path, value) that must hold for the reference to count:
    /// a RoleBinding's `roleRef.kind: ClusterRole` (a Role is namespaced and may be synced).
    pub when: Option<(&'static str, &'static str)>,
    /// The referred kind, as `Kind` and its collection's API path.
    pub to: (&'static str, &'static str),
}

const CLUSTER_ROLES: (&str, &str) = (
    "ClusterRole",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
);
const INGRESS_CLASSES: (&str, &str) = ("IngressClass", "/apis/networking.k8s.io/v1/ingressclasses");
const STORAGE_CLASSES: (&str, &str) = ("StorageClass", "/apis/storage.k8s.io/v1/storageclasses");
const PRIORITY_CLASSES: (&str, &str) = (
    "PriorityClass",
    "/apis/scheduling.k8s.io/v1/priorityclasses",
);

/// The references, one row each.
pub static REFERENCES: &[Reference] = &[
    Reference {
        from: "RoleBinding",
        path: "roleRef.name",
        when: Some(("roleRef.kind", "ClusterRole")),
        to: CLUSTER_ROLES,
    },
    Reference {
        from: "Ingress",
        path: "spec.ingressClassName",
        when: None,
        to: INGRESS_CLASSES,
    },
    Reference {
        from: "PersistentVolumeClaim",
        path: "spec.storageClassName",
        when: None,
        to: STORAGE_CLASSES,
    },
    Reference {
        from: "StatefulSet",
        path: "spec.volumeClaimTemplates[].spec.storageClassName",
        when: None,
        to: STORAGE_CLASSES,
    },
    Reference {
        from: "Deployment",
        path: "spec.template.spec.priorityClassName",
        when: None,
        to: PRIORITY_CLASSES,
    },
    Reference {
        from: "StatefulSet",
        path: "spec.template.spec.priorityClassName",
        when: None,
        to: PRIORITY_CLASSES,
    },
    Reference {
        from: "DaemonSet",
        path: "spec.template.spec.priorityClassName",
        when: None,
        to: PRIORITY_CLASSES,
    },
    Reference {
        from: "CronJob",
        path: "spec.jobTemplate.spec.template.spec.priorityClassName",
        when: None,
        to: PRIORITY_CLASSES,
    },
];

/// The names at `path` in `object`.
fn names_at<'v>(object: &'v Value, path: &str, out: &mut Vec<&'v str>) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let (key, every) = match head.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (head, false),
    };
    let Some(value) = object.get(key) else {
        return;
    };
    let items: Vec<&Value> = match (every, value) {
        (true, Value::Array(items)) => items.iter().collect(),
        (true, _) => return,
        (false, value) => vec![value],
    };
    for item in items {
        match rest {
            Some(rest) => names_at(item, rest, out),
            None => {
                if let Some(name) = item.as_str().filter(|n| !n.is_empty()) {
                    out.push(name);
                }
            }
        }
    }
}

/// Every cluster-scoped object the objects of `desired` refer to, as (referred kind, its
/// collection, name) → the first object that refers to it.
pub fn referred(desired: &Snapshot) -> BTreeMap<(&'static str, &'static str, String), ObjectRef> {
    let mut all = BTreeMap::new();
    for (reference, entry) in &desired.objects {
        if entry.owned_by.is_some() {
            continue;
        }
        let mut rows = REFERENCES
            .iter()
            .filter(|r| reference.kind.in_table && r.from == reference.kind.kind)
            .peekable();
        if rows.peek().is_none() {
            continue;
        }
        let object = entry.object();
        for row in rows {
            if let Some((path, value)) = row.when {
                let mut found = Vec::new();
                names_at(&object, path, &mut found);
                if found != [value] {
                    continue;
                }
            }
            let mut names = Vec::new();
            names_at(&object, row.path, &mut names);
            for name in names {
                all.entry((row.to.0, row.to.1, name.to_string()))
                    .or_insert_with(|| reference.clone());
            }
        }
    }
    all
}

/// Warnings naming each object of [`referred`] that `cluster` lacks. What cannot be checked
/// (no permission, the replica down) is not warned of: the pass says so elsewhere.
pub async fn missing(cluster: &Cluster, desired: &Snapshot) -> Vec<String> {
    let mut warnings = Vec::new();
    for ((kind, collection, name), by) in referred(desired) {
        if let Ok(false) = cluster.exists_at(collection, &name).await {
            warnings.push(format!(
                "replica {} has no {kind} {name:?}, which {by} refers to",
                cluster.name()
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use crate::snapshot::RawObject;
    use serde_json::json;

    fn snapshot(objects: Vec<Value>) -> Snapshot {
        let raw = objects.into_iter().map(|value| RawObject {
            value,
            origin: "t".into(),
            archived: None,
        });
        let scope = Scope {
            kinds: crate::kinds::KindSet::of(crate::kinds::TABLE.iter()),
            ..Scope::default()
        };
        Snapshot::build("p", raw, &scope).unwrap()
    }

    #[test]
    fn every_row_names_what_its_objects_refer_to() {
        let meta = |name: &str| json!({"name": name, "namespace": "shop"});
        let pod = |class: &str| json!({"spec": {"priorityClassName": class, "containers": []}});
        let desired = snapshot(vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("view"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": []}),
            // A Role is namespaced: synced as the binding is, not warned of.
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("own"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "own"}, "subjects": []}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("web"),
                "spec": {"ingressClassName": "nginx"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("data"),
                "spec": {"storageClassName": "fast"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
                "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "slow"}}], "template": pod("critical")}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("api"), "spec": {"template": pod("high")}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("agent"), "spec": {"template": pod("node")}}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("report"),
                "spec": {"jobTemplate": {"spec": {"template": pod("batch")}}}}),
        ]);
        let found: Vec<String> = referred(&desired)
            .into_iter()
            .map(|((kind, _, name), by)| format!("{kind} {name} by {by}"))
            .collect();
        assert_eq!(
            found,
            [
                "ClusterRole view by shop/RoleBinding/view",
                "IngressClass nginx by shop/Ingress/web",
                "PriorityClass batch by shop/CronJob/report",
                "PriorityClass critical by shop/StatefulSet/db",
                "PriorityClass high by shop/Deployment/api",
                "PriorityClass node by shop/DaemonSet/agent",
                "StorageClass fast by shop/PersistentVolumeClaim/data",
                "StorageClass slow by shop/StatefulSet/db",
            ]
        );
    }
}
