//! Normalization on objects exactly as kube-apiserver returned them (`fixtures/apiserver/`,
//! recorded by `cargo run --example record_fixtures`).

mod support;

use k8s_sync::endpoint::directory;
use k8s_sync::normalize::{ChangeKey, normalize};
use k8s_sync::scope::Scope;
use k8s_sync::snapshot::Snapshot;
use serde_json::Value;

fn recorded() -> Vec<Value> {
    let listing = directory::read(&support::fixture("apiserver")).expect("read fixtures/apiserver");
    listing.objects.into_iter().map(|o| o.value).collect()
}

#[test]
fn every_synced_kind_was_recorded_in_server_shape() {
    let objects = recorded();
    let kinds: Vec<_> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
    ] {
        assert!(kinds.contains(&kind), "no recorded {kind}: {kinds:?}");
    }
    for object in &objects {
        let metadata = &object["metadata"];
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            assert!(
                metadata.get(field).is_some(),
                "{} lacks {field}: the server sets it",
                object["kind"]
            );
        }
    }
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["revisionHistoryLimit"], 10,
        "server default"
    );
    assert!(deployment.get("status").is_some());
    let version = std::fs::read_to_string(support::fixture("apiserver/VERSION")).unwrap();
    assert!(version.contains("kube-apiserver v1."), "{version}");
}

#[test]
fn normalization_leaves_nothing_cluster_specific() {
    let snapshot = Snapshot::build(
        "primary",
        directory::read(&support::fixture("apiserver"))
            .unwrap()
            .objects,
        &Scope::default(),
    )
    .expect("fixtures build");
    assert_eq!(snapshot.objects.len(), 5);
    for (reference, entry) in &snapshot.objects {
        let text = entry.object().to_string();
        for volatile in [
            "\"uid\"",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "\"status\"",
            "last-applied-configuration",
            "\"generation\"",
        ] {
            assert!(
                !text.contains(volatile),
                "{reference} keeps {volatile}: {text}"
            );
        }
        let mut again = entry.object();
        normalize(&mut again, reference.kind);
        assert_eq!(
            again,
            entry.object(),
            "{reference}: normalization is idempotent"
        );
        assert_eq!(ChangeKey::of(&again), entry.change_key);
    }
    let statefulset = snapshot
        .objects
        .iter()
        .find(|(r, _)| r.kind.kind == "StatefulSet")
        .unwrap()
        .1;
    let statefulset = statefulset.object();
    let template = &statefulset["spec"]["volumeClaimTemplates"][0];
    assert_eq!(
        (template["apiVersion"].as_str(), template["kind"].as_str()),
        (Some("v1"), Some("PersistentVolumeClaim"))
    );
}
