//! What `--kinds` means for a pass: resolved once per pass against what the primary serves.
//!
//! A cluster primary answers by API discovery. A directory of manifests has no discovery: its
//! kinds are those of its files (`apiVersion`/`kind`, at the versions the files use); whether a
//! kind is namespaced, and its plural, come from the first cluster replica's discovery, else a
//! CustomResourceDefinition in the directory itself, else the object (namespaced when it names
//! a namespace; the plural kube's rules make of the kind). So an offline `diff` of two
//! directories decides by the files alone.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Connected, Endpoint, Error, directory};
use crate::kinds::{self, KindSelection, Served, split_api_version};
use crate::scope::Scope;

/// What `--kinds` and `--sync-crds` ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The kinds.
    pub kinds: KindSelection,
    /// Copy the CRDs the synced custom resources need.
    pub sync_crds: bool,
}

/// Resolves `selection` into `scope.kinds` (and `scope.crds`) against what `primary` serves.
/// Costs one discovery of the primary (two requests on current servers) when the selection
/// names anything beyond the kind table, none otherwise.
pub async fn resolve(
    scope: &mut Scope,
    selection: &Selection,
    primary: &Connected,
    replicas: &[Endpoint],
) -> Result<(), Error> {
    if let Some(kinds) = selection.kinds.without_discovery() {
        scope.kinds = kinds;
    } else {
        let served = match primary {
            Connected::Cluster(cluster) => cluster.discover().await?,
            Connected::Directory(dir) => {
                let known = first_replica_discovery(replicas).await;
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || served_by_files(&dir, &known))
                    .await
                    .expect("reading a directory does not panic")?
            }
        };
        scope.kinds = kinds::resolve(&selection.kinds, &served)?;
    }
    scope.crds = if selection.sync_crds {
        crd_names(scope)
    } else {
        BTreeSet::new()
    };
    Ok(())
}

/// The names of the CRDs the scope's custom resources would have: `plural.group` of every kind
/// outside the table whose group is a domain (`gateway.networking.k8s.io`'s too; built-in groups
/// without a dot have no CRD, an aggregated API's resources have none either, and the listing
/// simply finds none).
pub fn crd_names(scope: &Scope) -> BTreeSet<String> {
    scope
        .kinds
        .iter()
        .filter(|k| k.is_custom())
        .map(|k| k.resource())
        .collect()
}

async fn first_replica_discovery(replicas: &[Endpoint]) -> Vec<Served> {
    for replica in replicas {
        if let Ok(Connected::Cluster(cluster)) = replica.connect().await
            && let Ok(served) = cluster.discover().await
        {
            return served;
        }
    }
    Vec::new()
}

/// What a directory of manifests "serves": one entry per kind its files hold.
pub fn served_by_files(dir: &std::path::Path, known: &[Served]) -> Result<Vec<Served>, Error> {
    let listing = directory::read(dir)?;
    let values: Vec<&Value> = listing.objects.iter().map(|o| &o.value).collect();
    Ok(served_by_objects(&values, known))
}

fn served_by_objects(objects: &[&Value], known: &[Served]) -> Vec<Served> {
    let defined: Vec<Served> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .filter_map(|crd| defined_by(crd))
        .collect();
    let mut served: Vec<Served> = Vec::new();
    for object in objects {
        let (Some(api_version), Some(kind)) =
            (object["apiVersion"].as_str(), object["kind"].as_str())
        else {
            continue;
        };
        let (group, version) = split_api_version(api_version);
        if served.iter().any(|s| s.group == group && s.kind == kind) {
            continue;
        }
        let same = |s: &&Served| s.group == group && s.kind == kind;
        let mut entry = match kinds::by_group_kind(group, kind) {
            Some(k) => Served {
                group: k.group.into(),
                version: k.version.into(),
                kind: k.kind.into(),
                plural: k.plural.into(),
                namespaced: k.namespaced,
                syncable: true,
            },
            None => match known
                .iter()
                .find(same)
                .or_else(|| defined.iter().find(same))
            {
                Some(s) => s.clone(),
                None => guessed(group, version, kind, object),
            },
        };
        if !entry.version.is_empty() && kinds::by_group_kind(group, kind).is_none() {
            entry.version = version.to_string();
        }
        served.push(entry);
    }
    served
}

fn defined_by(crd: &Value) -> Option<Served> {
    let spec = crd.get("spec")?;
    let version = spec["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"] == true)
        .or_else(|| spec["versions"].as_array()?.first())?;
    Some(Served {
        group: spec["group"].as_str()?.into(),
        version: version["name"].as_str()?.into(),
        kind: spec["names"]["kind"].as_str()?.into(),
        plural: spec["names"]["plural"].as_str()?.into(),
        namespaced: spec["scope"] != "Cluster",
        syncable: true,
    })
}

fn guessed(group: &str, version: &str, kind: &str, object: &Value) -> Served {
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    Served {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: kube::core::ApiResource::from_gvk(&gvk).plural,
        namespaced: object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|ns| !ns.is_empty()),
        syncable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_directory_serves_the_kinds_of_its_files() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let widget =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let gizmo = json!({"apiVersion": "toys.example.com/v2", "kind": "Gizmo",
            "metadata": {"name": "g", "namespace": "shop"}});
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        let known = vec![Served {
            group: "toys.example.com".into(),
            version: "v1".into(),
            kind: "Gizmo".into(),
            plural: "gizmoes".into(),
            namespaced: true,
            syncable: true,
        }];
        let served = served_by_objects(&[&crd, &widget, &gizmo, &service], &known);
        let find = |kind: &str| served.iter().find(|s| s.kind == kind).unwrap().clone();
        // The CRD in the directory says what a Widget is, though it names no namespace.
        let w = find("Widget");
        assert_eq!(
            (w.plural.as_str(), w.namespaced, w.version.as_str()),
            ("widgets", true, "v1")
        );
        // The replica's discovery names the plural; the file's version is the one synced.
        let g = find("Gizmo");
        assert_eq!((g.plural.as_str(), g.version.as_str()), ("gizmoes", "v2"));
        assert_eq!(find("Service").plural, "services");
        assert!(!find("CustomResourceDefinition").namespaced);
        let unknown =
            json!({"apiVersion": "other.io/v1", "kind": "Policy", "metadata": {"name": "p"}});
        let p = served_by_objects(&[&unknown], &[])[0].clone();
        assert_eq!((p.plural.as_str(), p.namespaced), ("policies", false));
    }
}
