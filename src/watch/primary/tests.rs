use super::*;
use crate::kinds::by_plural;
use crate::scope::Scope;
use crate::snapshot::RawObject;
use serde_json::json;

fn entry(namespace: &str, name: &str, value: &str) -> (ObjectRef, Entry) {
    let raw = RawObject {
        value: json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {"k": value}}),
        origin: "primary".into(),
        archived: None,
    };
    let snapshot = Snapshot::build("primary", [raw], &Scope::default()).unwrap();
    snapshot.objects.into_iter().next().unwrap()
}

fn configmaps(namespace: Option<&str>) -> Collection {
    Collection {
        kind: by_plural("configmaps").unwrap(),
        namespace: namespace.map(str::to_string),
    }
}

fn listed(
    state: &PrimaryState,
    collection: &Collection,
    objects: &[(&str, &str, &str)],
) -> Vec<String> {
    state.init(collection);
    for (ns, name, value) in objects {
        let (reference, entry) = entry(ns, name, value);
        state.init_apply(collection, reference, entry);
    }
    let mut changed: Vec<String> = state
        .init_done(collection)
        .iter()
        .map(|r| r.name.clone())
        .collect();
    changed.sort();
    changed
}

#[test]
fn nothing_is_authoritative_before_the_first_complete_listing() {
    let all = configmaps(None);
    let state = PrimaryState::new(vec![all.clone()], None, vec![]);
    let kind = all.kind;
    assert!(state.authority(kind).unwrap_err().contains("identity"));
    state.set_identity("cluster/uid-1".into());
    let error = state.authority(kind).unwrap_err();
    assert!(error.contains("not listed in full"), "{error}");
    state.init(&all);
    let (reference, value) = entry("shop", "a", "1");
    state.init_apply(&all, reference.clone(), value);
    assert!(
        state.authority(kind).is_err(),
        "half a listing proves nothing"
    );
    assert!(
        !state.contains(&reference),
        "a relist is not read until it is done"
    );
    state.init_done(&all);
    assert_eq!(state.authority(kind), Ok(()));
    assert!(state.contains(&reference));
    assert_eq!(state.snapshot().source, "cluster/uid-1");
    assert!(
        state.complete().is_err(),
        "the namespaces are not listed yet"
    );
    state.namespaces_listed();
    assert_eq!(state.complete(), Ok(()));
}

#[test]
fn a_relist_replaces_the_set_at_once_and_names_what_changed() {
    let all = configmaps(None);
    let state = PrimaryState::new(vec![all.clone()], Some("prod".into()), vec![]);
    assert_eq!(
        listed(&state, &all, &[("shop", "a", "1"), ("shop", "b", "1")]),
        ["a", "b"]
    );
    state.lost(&all, "connection refused");
    let error = state.authority(all.kind).unwrap_err();
    assert!(error.contains("connection refused"), "{error}");
    // While the stream was down: `a` changed, `b` was deleted, `c` was made.
    assert_eq!(
        listed(&state, &all, &[("shop", "a", "2"), ("shop", "c", "1")]),
        ["a", "b", "c"]
    );
    let names: Vec<_> = state
        .snapshot()
        .objects
        .keys()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(state.authority(all.kind), Ok(()));
}

#[test]
fn a_namespace_watch_replaces_only_its_namespace() {
    let shop = configmaps(Some("shop"));
    let billing = configmaps(Some("billing"));
    let state = PrimaryState::new(
        vec![shop.clone(), billing.clone()],
        Some("p".into()),
        vec![],
    );
    listed(&state, &shop, &[("shop", "a", "1")]);
    assert!(
        state.authority(shop.kind).is_err(),
        "billing is not listed yet"
    );
    listed(&state, &billing, &[("billing", "x", "1")]);
    assert_eq!(state.authority(shop.kind), Ok(()));
    assert_eq!(listed(&state, &shop, &[]), ["a"]);
    assert_eq!(state.len(), 1, "billing's object stays");
}

#[test]
fn an_unreachable_primary_makes_every_kind_wait_for_a_new_listing() {
    let all = configmaps(None);
    let state = PrimaryState::new(vec![all.clone()], Some("p".into()), vec![]);
    listed(&state, &all, &[("shop", "a", "1")]);
    state.set_unreachable(Some("no answer within 5s".into()));
    assert!(
        state
            .authority(all.kind)
            .unwrap_err()
            .contains("unreachable")
    );
    state.set_unreachable(None);
    assert!(
        state.authority(all.kind).is_err(),
        "answering again is not enough: what changed meanwhile is unknown"
    );
    listed(&state, &all, &[("shop", "a", "1")]);
    assert_eq!(state.authority(all.kind), Ok(()));
}

#[test]
fn watch_events_change_the_store_only_when_the_key_changes() {
    let all = configmaps(None);
    let state = PrimaryState::new(vec![all.clone()], Some("p".into()), vec!["old".into()]);
    listed(&state, &all, &[]);
    let (reference, first) = entry("shop", "a", "1");
    assert_eq!(
        state.apply(reference.clone(), first.clone()),
        Change::Applied
    );
    assert_eq!(state.apply(reference.clone(), first), Change::None);
    let (_, second) = entry("shop", "a", "2");
    assert_eq!(state.apply(reference.clone(), second), Change::Applied);
    assert_eq!(state.delete(&reference), Change::Deleted);
    assert_eq!(state.delete(&reference), Change::None);
    let snapshot = state.snapshot_of(&reference);
    assert!(snapshot.objects.is_empty());
    assert_eq!(
        (snapshot.source.as_str(), snapshot.aliases.as_slice()),
        ("p", &["old".to_string()][..])
    );
}

#[test]
fn no_state_is_authoritative_while_the_synced_kinds_are_unknown() {
    // `--kinds all` before the primary answered discovery: no collection to wait for yet.
    let state = PrimaryState::new(Vec::new(), Some("primary".into()), Vec::new());
    state.namespaces_listed();
    state.set_kinds_unknown(Some("the primary has not answered discovery yet".into()));
    let kind = by_plural("configmaps").unwrap();
    assert!(
        state
            .complete()
            .unwrap_err()
            .contains("kinds are not known yet")
    );
    assert!(state.authority(kind).is_err());
    // Found: their collections are added, incomplete until listed.
    state.set_kinds_unknown(None);
    state.add_collections([configmaps(None)]);
    assert!(state.complete().unwrap_err().contains("not listed in full"));
    listed(&state, &configmaps(None), &[("shop", "a", "1")]);
    assert_eq!(state.complete(), Ok(()));
}

#[test]
fn a_kind_held_for_its_crd_deletion_stays_held_through_a_relist() {
    let state = PrimaryState::new(vec![configmaps(None)], Some("primary".into()), Vec::new());
    state.namespaces_listed();
    listed(&state, &configmaps(None), &[("shop", "a", "1")]);
    let kind = by_plural("configmaps").unwrap();
    assert_eq!(state.authority(kind), Ok(()));
    assert!(!state.is_held(kind));
    state.hold_kind(kind, "its CRD is being deleted on the primary");
    assert!(state.is_held(kind));
    assert!(
        state
            .authority(kind)
            .unwrap_err()
            .contains("CRD is being deleted")
    );
    // A new listing (the watch restarted) does not lift it; full passes go on for the others.
    listed(&state, &configmaps(None), &[]);
    assert!(state.authority(kind).is_err());
    assert_eq!(state.complete(), Ok(()));
    assert!(state.held().unwrap().contains("CRD is being deleted"));
    // Gone from the scope: not synced, still not authoritative.
    state.remove_kind(kind);
    assert!(state.authority(kind).unwrap_err().contains("not synced"));
}
