use super::*;
use serde_json::json;

fn raw(value: Value) -> RawObject {
    RawObject {
        value,
        origin: "test.yaml".into(),
        archived: None,
    }
}

fn configmap(namespace: Option<&str>, name: &str) -> Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "uid": "1", "resourceVersion": "5"}, "data": {"a": "1"}});
    if let Some(ns) = namespace {
        cm["metadata"]["namespace"] = ns.into();
    }
    cm
}

#[test]
fn builds_normalized_keyed_objects() {
    let snap = Snapshot::build(
        "primary",
        [raw(configmap(Some("shop"), "a")), raw(configmap(None, "b"))],
        &Scope::default(),
    )
    .unwrap();
    let keys: Vec<_> = snap.objects.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["default/ConfigMap/b", "shop/ConfigMap/a"]);
    let entry = snap.objects.values().next().unwrap();
    assert_eq!(
        entry.object()["metadata"],
        json!({"name": "b", "namespace": "default"})
    );
    assert_eq!(entry.change_key, ChangeKey::of(&entry.object()));
    assert!(snap.namespaces.contains("default") && snap.namespaces.contains("shop"));
}

#[test]
fn counts_unknown_kinds_and_skips() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let snap = Snapshot::build(
        "p",
        [
            raw(pod),
            raw(json!({"a": 1})),
            raw(configmap(Some("kube-system"), "x")),
            raw(configmap(Some("shop"), "kube-root-ca.crt")),
        ],
        &Scope::default(),
    )
    .unwrap();
    assert!(snap.objects.is_empty());
    assert_eq!(snap.skipped["unknown kind v1/Pod"], 1);
    assert_eq!(snap.skipped["object without kind"], 1);
    assert_eq!(snap.skipped["ConfigMap: kube-* namespace"], 1);
    assert_eq!(snap.skipped["ConfigMap: cluster CA bundle"], 1);
}

#[test]
fn reads_bookkeeping_before_normalizing() {
    let mut cm = configmap(Some("shop"), "a");
    let key = ChangeKey::of(&json!(1));
    cm["metadata"]["annotations"] =
        json!({SOURCE_ANNOTATION: "primary", CHANGE_KEY_ANNOTATION: key.as_str()});
    let snap = Snapshot::build("r", [raw(cm)], &Scope::default()).unwrap();
    let entry = snap.objects.values().next().unwrap();
    assert_eq!(
        entry.applied,
        Some(Applied {
            source: "primary".into(),
            change_key: key,
            prune_held: false,
        })
    );
    let mut held = configmap(Some("shop"), "b");
    held["metadata"]["annotations"] = json!({SOURCE_ANNOTATION: "primary",
        CHANGE_KEY_ANNOTATION: key.as_str(), PRUNE_HELD_ANNOTATION: "2026-12-01T00:00:00Z"});
    let snap = Snapshot::build("r", [raw(held)], &Scope::default()).unwrap();
    let entry = snap.objects.values().next().unwrap();
    assert!(entry.applied.as_ref().unwrap().prune_held);
    assert!(entry.object()["metadata"].get("annotations").is_none());
}

#[test]
fn cronjobs_are_suspended_on_replicas_unless_they_may_run() {
    let cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "0 2 * * *", "suspend": false, "jobTemplate": {}}});
    let scope = Scope {
        kinds: crate::kinds::KindSet::of([crate::kinds::by_plural("cronjobs").unwrap()]),
        ..Scope::default()
    };
    let read = Snapshot::build("p", [raw(cron_job.clone())], &scope).unwrap();
    let as_read = read.objects.values().next().unwrap().clone();
    let shaped = read.for_replicas(&scope);
    let entry = shaped.objects.values().next().unwrap();
    assert_eq!(entry.object()["spec"]["suspend"], true);
    assert_eq!(entry.change_key, ChangeKey::of(&entry.object()));
    assert_ne!(entry.change_key, as_read.change_key);
    let running = Scope {
        run_cronjobs: true,
        ..scope
    };
    let kept = Snapshot::build("p", [raw(cron_job)], &running)
        .unwrap()
        .for_replicas(&running);
    assert_eq!(
        kept.objects.values().next().unwrap().object()["spec"]["suspend"],
        false
    );
}

#[test]
fn rejects_names_that_could_escape_a_directory() {
    for bad in ["..", ".", "a/b", "../../etc", "A", "-a", ""] {
        let result = Snapshot::build("p", [raw(configmap(Some("shop"), bad))], &Scope::default());
        assert!(result.is_err(), "accepted name {bad:?}");
        let result = Snapshot::build("p", [raw(configmap(Some(bad), "a"))], &Scope::default());
        // An empty namespace means `default`; every other bad one is refused.
        assert_eq!(result.is_err(), !bad.is_empty(), "namespace {bad:?}");
    }
    assert!(Snapshot::build("p", [raw(configmap(Some("a.b"), "x"))], &Scope::default()).is_err());
    assert!(Snapshot::build("p", [raw(configmap(Some("s"), "a.b-c"))], &Scope::default()).is_ok());
}

#[test]
fn rbac_names_are_path_segments() {
    let scope = Scope {
        kinds: crate::kinds::KindSet::of([crate::kinds::by_plural("roles").unwrap()]),
        ..Scope::default()
    };
    let role = |name: &str| {
        raw(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": "shop"}, "rules": []}),
        )
    };
    assert!(Snapshot::build("p", [role("system:controller:bootstrap-signer")], &scope).is_ok());
    for bad in ["..", ".", "a/b", "50%", ""] {
        assert!(
            Snapshot::build("p", [role(bad)], &scope).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn refuses_duplicates_naming_both_origins() {
    let mut second = raw(configmap(Some("shop"), "a"));
    second.origin = "other.yaml".into();
    let err = Snapshot::build(
        "p",
        [raw(configmap(Some("shop"), "a")), second],
        &Scope::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("test.yaml") && err.contains("other.yaml"),
        "{err}"
    );
}

#[test]
fn root_hash_depends_on_content_only() {
    let a = Snapshot::build(
        "x",
        [
            raw(configmap(Some("s"), "a")),
            raw(configmap(Some("s"), "b")),
        ],
        &Scope::default(),
    )
    .unwrap();
    let b = Snapshot::build(
        "y",
        [
            raw(configmap(Some("s"), "b")),
            raw(configmap(Some("s"), "a")),
        ],
        &Scope::default(),
    )
    .unwrap();
    assert_eq!(a.root_hash(), b.root_hash());
    let mut changed = configmap(Some("s"), "b");
    changed["data"]["a"] = "2".into();
    let c = Snapshot::build(
        "x",
        [raw(configmap(Some("s"), "a")), raw(changed)],
        &Scope::default(),
    )
    .unwrap();
    assert_ne!(a.root_hash(), c.root_hash());
}

#[test]
fn a_copy_in_step_shares_the_sources_bytes_and_a_differing_one_keeps_its_own() {
    let scope = Scope::default();
    let desired = Snapshot::build(
        "primary",
        [
            raw(configmap(Some("shop"), "a")),
            raw(configmap(Some("shop"), "b")),
        ],
        &scope,
    )
    .unwrap();
    let mut edited = configmap(Some("shop"), "b");
    edited["data"]["a"] = "edited".into();
    let mut live = Snapshot::new("replica");
    for object in [configmap(Some("shop"), "a"), edited] {
        live.insert(raw(object), &scope, Some(&desired)).unwrap();
    }
    let entry = |snapshot: &Snapshot, name: &str| {
        snapshot
            .objects
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert!(
        entry(&live, "a")
            .canonical
            .shares(&entry(&desired, "a").canonical)
    );
    let (have, want) = (entry(&live, "b"), entry(&desired, "b"));
    assert!(!have.canonical.shares(&want.canonical));
    assert_ne!(have.change_key, want.change_key);
    assert_eq!(have.object()["data"]["a"], "edited");
}

#[test]
fn a_prepared_object_of_a_held_version_counts_as_skipped_and_holds_its_kind() {
    let scope = Scope::default();
    let mut object = json!({"apiVersion": "apps/v1beta2", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}});
    let prepared = prepare(raw(object.take()), &scope).unwrap();
    let mut snapshot = Snapshot::new("primary");
    snapshot.add(prepared, None).unwrap();
    assert!(snapshot.objects.is_empty());
    assert_eq!(snapshot.incomplete.len(), 1, "{:?}", snapshot.incomplete);
    assert_eq!(snapshot.skipped.values().sum::<usize>(), 1);
}
