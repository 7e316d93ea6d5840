use super::*;
use crate::normalize::{CHANGE_KEY_ANNOTATION, SOURCE_ANNOTATION};
use crate::scope::Scope;
use crate::snapshot::RawObject;
use serde_json::json;

fn snap(source: &str, objects: Vec<Value>) -> Snapshot {
    let raw = objects.into_iter().map(|value| RawObject {
        value,
        origin: "test".into(),
        archived: None,
    });
    Snapshot::build(source, raw, &Scope::default()).unwrap()
}

fn deployment(name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

/// `object` as a replica holds it after k8s-sync applied `desired` from `source`: server
/// defaults added, bookkeeping annotations set.
fn applied(mut object: Value, source: &str, desired: &Value) -> Value {
    let kind = crate::kinds::by_type("apps/v1", "Deployment")
        .or_else(|| crate::kinds::by_type("v1", desired["kind"].as_str().unwrap()))
        .unwrap();
    let mut normalized = desired.clone();
    normalized["metadata"]["namespace"] = "shop".into();
    crate::normalize::normalize(&mut normalized, kind);
    let key = ChangeKey::of(&normalized);
    object["metadata"]["annotations"] =
        json!({SOURCE_ANNOTATION: source, CHANGE_KEY_ANNOTATION: key.as_str()});
    object
}

fn with_defaults(mut d: Value) -> Value {
    d["spec"]["strategy"] = json!({"type": "RollingUpdate"});
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent".into();
    d["metadata"]["labels"]["replica-only"] = "yes".into();
    d["status"] = json!({"replicas": 2});
    d
}

fn only(plan: &Plan) -> &Change {
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    &plan.changes[0]
}

#[test]
fn subset_ignores_keys_only_live_has() {
    let mut out = Vec::new();
    subset_differences(
        &json!({"a": 1, "b": {"c": [1, {"d": 2}]}, "e": {}}),
        &json!({"a": 1, "b": {"c": [1, {"d": 2, "x": 0}], "y": 0}, "z": 0}),
        &mut String::new(),
        &mut out,
    );
    assert_eq!(out, Vec::<String>::new());
}

#[test]
fn subset_reports_missing_changed_and_resized_paths() {
    let mut out = Vec::new();
    subset_differences(
        &json!({"a": 1, "b": {"c": [1, 2], "d": [{"e": 1}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}}}),
        &json!({"a": 2, "b": {"c": [1], "d": [{"e": 3}]}, "metadata": {"labels": {}}}),
        &mut String::new(),
        &mut out,
    );
    assert_eq!(
        out,
        [
            "a",
            "b.c",
            "b.d[0].e",
            "metadata.labels[\"app.kubernetes.io/name\"]"
        ]
    );
}

#[test]
fn applied_object_with_server_defaults_is_in_sync() {
    let desired = deployment("web", "nginx:1");
    let live = applied(with_defaults(desired.clone()), "primary", &desired);
    let plan = Plan::new(
        "r",
        &snap("primary", vec![desired]),
        &snap("r", vec![live]),
        PlanOptions::default(),
    );
    assert_eq!(only(&plan).action, Action::InSync);
    assert_eq!(plan.summary.drift(), 0);
}

#[test]
fn missing_object_is_created_and_its_namespace_too() {
    let plan = Plan::new(
        "r",
        &snap("primary", vec![deployment("web", "a")]),
        &snap("r", vec![]),
        PlanOptions::default(),
    );
    assert_eq!(only(&plan).action, Action::Create);
    assert_eq!(plan.missing_namespaces, ["shop"]);
    assert_eq!(plan.summary.create, 1);
}

#[test]
fn source_change_is_drift_even_when_desired_is_a_subset() {
    // The source dropped a label; the replica still has it, so desired ⊆ live. Only the
    // change key says the object must be re-applied (to delete the label).
    let old = deployment("web", "nginx:1");
    let live = applied(with_defaults(old.clone()), "primary", &old);
    let mut new = old.clone();
    new["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app");
    let plan = Plan::new(
        "r",
        &snap("primary", vec![new]),
        &snap("r", vec![live]),
        PlanOptions::default(),
    );
    let change = only(&plan);
    assert_eq!(
        (change.action, change.reason),
        (Action::Update, Some(Reason::SourceChanged))
    );
    assert!(change.changed_paths.is_empty());
}

#[test]
fn hand_edit_on_the_replica_is_drift() {
    let desired = deployment("web", "nginx:1");
    let mut live = applied(with_defaults(desired.clone()), "primary", &desired);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:hacked".into();
    let plan = Plan::new(
        "r",
        &snap("primary", vec![desired]),
        &snap("r", vec![live]),
        PlanOptions::default(),
    );
    let change = only(&plan);
    assert_eq!(
        (change.action, change.reason),
        (Action::Update, Some(Reason::EditedOnReplica))
    );
    assert_eq!(
        change.changed_paths,
        ["spec.template.spec.containers[0].image"]
    );
}

#[test]
fn unmanaged_differing_object_is_adopted_or_a_conflict() {
    let desired = deployment("web", "nginx:1");
    let live = with_defaults(deployment("web", "nginx:0"));
    let (p, r) = (snap("primary", vec![desired]), snap("r", vec![live]));
    let adopt = Plan::new("r", &p, &r, PlanOptions::default());
    assert_eq!(
        (only(&adopt).action, only(&adopt).reason),
        (Action::Update, Some(Reason::Adopt))
    );
    let no_adopt = Plan::new(
        "r",
        &p,
        &r,
        PlanOptions {
            adopt: false,
            prune: true,
            prune_pvcs: false,
        },
    );
    assert_eq!(only(&no_adopt).action, Action::Conflict);
    assert_eq!(no_adopt.summary.conflict, 1);
}

#[test]
fn prunes_only_objects_this_source_created() {
    let gone = deployment("gone", "a");
    let ours = applied(gone.clone(), "primary", &gone);
    let theirs = applied(deployment("theirs", "a"), "other-primary", &gone);
    let unmanaged = deployment("local", "a");
    let live = snap("r", vec![ours, theirs, unmanaged]);
    let plan = Plan::new("r", &snap("primary", vec![]), &live, PlanOptions::default());
    let pruned: Vec<_> = plan
        .drifted()
        .map(|c| (c.action, c.name.as_str()))
        .collect();
    assert_eq!(pruned, [(Action::Prune, "gone")]);
    let kept = Plan::new(
        "r",
        &snap("primary", vec![]),
        &live,
        PlanOptions {
            adopt: true,
            prune: false,
            prune_pvcs: false,
        },
    );
    assert_eq!(kept.summary.drift(), 0);
}

#[test]
fn selector_change_needs_recreate() {
    let desired = deployment("web", "nginx:1");
    let mut live = applied(with_defaults(desired.clone()), "primary", &desired);
    live["spec"]["selector"]["matchLabels"]["app"] = "old".into();
    let plan = Plan::new(
        "r",
        &snap("primary", vec![desired]),
        &snap("r", vec![live]),
        PlanOptions::default(),
    );
    let change = only(&plan);
    assert_eq!(change.action, Action::NeedsRecreate);
    assert_eq!(change.immutable_paths, ["spec.selector.matchLabels.app"]);
    assert_eq!(plan.summary.needs_recreate, 1);
}

#[test]
fn secret_changes_name_keys_never_values() {
    let secret = |data: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": data})
    };
    let desired = secret(json!({"user": "YWRtaW4=", "password": "bmV3LXBhc3M=", "token": "dG9r"}));
    let live = secret(json!({"user": "YWRtaW4=", "password": "b2xkLXBhc3M=", "legacy": "bGVn"}));
    let (p, r) = (snap("primary", vec![desired]), snap("r", vec![live]));
    let plan = Plan::new("r", &p, &r, PlanOptions::default());
    let keys = only(&plan).secret_keys.clone().unwrap();
    assert_eq!(keys.changed, ["password".to_string()].into());
    assert_eq!(keys.added, ["token".to_string()].into());
    assert_eq!(keys.removed, ["legacy".to_string()].into());

    let text = render::text(&plan, &p, &r, render::TextOptions::default());
    let json = serde_json::to_string(&render::PlanView::from(&plan)).unwrap();
    for output in [&text, &json] {
        for value in [
            "YWRtaW4=",
            "bmV3LXBhc3M=",
            "dG9r",
            "b2xkLXBhc3M=",
            "bGVn",
            "admin",
            "new-pass",
            "old-pass",
        ] {
            assert!(!output.contains(value), "{value} leaked:\n{output}");
        }
    }
    assert!(text.contains("secret keys changed: password"), "{text}");
    assert!(text.contains(crate::secret::REDACTED_CHANGED), "{text}");
}

#[test]
fn text_shows_a_projected_unified_diff() {
    let desired = deployment("web", "nginx:2");
    let mut live = applied(with_defaults(desired.clone()), "primary", &desired);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1".into();
    let (p, r) = (snap("primary", vec![desired]), snap("r", vec![live]));
    let plan = Plan::new("r", &p, &r, PlanOptions::default());
    let text = render::text(&plan, &p, &r, render::TextOptions::default());
    assert!(
        text.starts_with("r: 0 in sync, 0 to create, 1 to update, 0 to prune, 0 conflicts\n"),
        "{text}"
    );
    assert!(text.contains("-      - image: nginx:1"), "{text}");
    assert!(text.contains("+      - image: nginx:2"), "{text}");
    // Server defaults and replica-only labels are not shown as removals.
    assert!(
        !text.contains("imagePullPolicy") && !text.contains("replica-only"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no color unless asked");
    let colored = render::text(
        &plan,
        &p,
        &r,
        render::TextOptions {
            color: true,
            ..Default::default()
        },
    );
    assert!(colored.contains('\u{1b}'));
}

#[test]
fn another_sources_copy_is_a_conflict_never_adopted_and_an_aliased_one_is_ours() {
    let desired = deployment("web", "nginx:2");
    let written_by_other = applied(deployment("web", "nginx:1"), "other-primary", &desired);
    let plan = Plan::new(
        "r",
        &snap("primary", vec![desired.clone()]),
        &snap("r", vec![written_by_other]),
        PlanOptions::default(),
    );
    let change = only(&plan);
    assert_eq!(
        (change.action, change.reason),
        (Action::Conflict, Some(Reason::OtherSource)),
        "two primaries never take over each other's objects"
    );
    // Written under the name this source had before (an alias): still its own.
    let written_before = applied(with_defaults(desired.clone()), "old-name", &desired);
    let mut source = snap("cluster/uid-1", vec![desired.clone()]);
    source.aliases = vec!["old-name".into()];
    let plan = Plan::new(
        "r",
        &source,
        &snap("r", vec![written_before]),
        PlanOptions::default(),
    );
    assert_eq!(only(&plan).action, Action::InSync);
    let gone = applied(
        deployment("gone", "a"),
        "old-name",
        &deployment("gone", "a"),
    );
    let plan = Plan::new("r", &source, &snap("r", vec![gone]), PlanOptions::default());
    let prune = plan.changes.iter().find(|c| c.name == "gone").unwrap();
    assert_eq!(
        prune.action,
        Action::Prune,
        "an alias's objects are pruned too"
    );
}

#[test]
fn a_claim_gone_from_the_source_is_kept_unless_asked() {
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let live = snap("r", vec![applied(claim.clone(), "primary", &claim)]);
    let source = snap("primary", vec![]);
    let plan = Plan::new("r", &source, &live, PlanOptions::default());
    assert_eq!(only(&plan).action, Action::Keep);
    assert_eq!(
        (plan.summary.kept, plan.summary.drift()),
        (1, 0),
        "kept is not drift"
    );
    let options = PlanOptions {
        prune_pvcs: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        only(&Plan::new("r", &source, &live, options)).action,
        Action::Prune
    );
}

#[test]
fn a_plan_cut_down_to_some_objects_still_creates_empty_namespaces() {
    let mut desired = snap("primary", vec![deployment("web", "a")]);
    desired.namespaces.insert("empty".into());
    let mut plan = Plan::new("r", &desired, &snap("r", vec![]), PlanOptions::default());
    plan.retain(|_| false);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.missing_namespaces, ["empty", "shop"]);
}

fn crd_scope() -> Scope {
    Scope {
        crds: ["widgets.example.com".to_string()].into(),
        ..Scope::default()
    }
}

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"}, "versions": [{"name": "v1"}]}})
}

fn snap_in(source: &str, objects: Vec<Value>, scope: &Scope) -> Snapshot {
    let raw = objects.into_iter().map(|value| RawObject {
        value,
        origin: "test".into(),
        archived: None,
    });
    Snapshot::build(source, raw, scope).unwrap()
}

#[test]
fn a_crd_of_a_synced_kind_is_copied_before_any_of_its_objects_and_never_pruned() {
    let scope = crd_scope();
    // No Widget yet: the CRD of a synced kind is copied all the same, so that the first
    // Widget finds it (a pass of that one object would not copy it).
    let plan = Plan::new(
        "r",
        &snap_in("primary", vec![crd()], &scope),
        &snap("r", vec![]),
        PlanOptions::default(),
    );
    assert_eq!(only(&plan).action, Action::Create);
    // Gone from the primary, a copied CRD is kept.
    let mut copy = crd();
    copy["metadata"]["annotations"] = json!({SOURCE_ANNOTATION: "primary",
        CHANGE_KEY_ANNOTATION: ChangeKey::of(&json!(1)).as_str()});
    let live = snap_in("r", vec![copy], &scope);
    let plan = Plan::new("r", &snap("primary", vec![]), &live, PlanOptions::default());
    assert_eq!(only(&plan).action, Action::Keep);
}

#[test]
fn an_owned_object_is_not_copied_and_a_copy_made_before_is_released() {
    let scope = Scope {
        kinds: crate::kinds::KindSet::of(crate::kinds::TABLE.iter()),
        ..Scope::default()
    };
    let mut owned = deployment("web", "a");
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet",
        "name": "agent", "uid": "1", "controller": true}]);
    let desired = snap_in("primary", vec![owned.clone()], &scope);
    assert_eq!(
        desired.objects.values().next().unwrap().owned_by.as_deref(),
        Some("DaemonSet/agent")
    );
    assert!(
        Plan::new("r", &desired, &snap("r", vec![]), PlanOptions::default())
            .changes
            .is_empty()
    );
    let live = snap(
        "r",
        vec![applied(
            deployment("web", "a"),
            "primary",
            &deployment("web", "a"),
        )],
    );
    let plan = Plan::new("r", &desired, &live, PlanOptions::default());
    assert_eq!(only(&plan).action, Action::Release);
    assert_eq!(plan.summary.release, 1);
    // Without prunes, too: a release deletes nothing.
    let options = PlanOptions {
        prune: false,
        ..PlanOptions::default()
    };
    assert_eq!(
        only(&Plan::new("r", &desired, &live, options)).action,
        Action::Release
    );
    // An owner of a kind not synced: copied as any object.
    let five = snap("primary", vec![owned]);
    assert_eq!(
        only(&Plan::new(
            "r",
            &five,
            &snap("r", vec![]),
            PlanOptions::default()
        ))
        .action,
        Action::Create
    );
}
