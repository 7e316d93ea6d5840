use super::*;
use crate::diff::PlanOptions;
use crate::normalize::{CHANGE_KEY_ANNOTATION, SOURCE_ANNOTATION};
use crate::scope::Scope;
use crate::snapshot::RawObject;
use serde_json::{Value, json};

fn configmap(name: &str, managed_by: Option<&str>) -> Value {
    let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop"}, "data": {"k": name}});
    if let Some(source) = managed_by {
        object["metadata"]["annotations"] = json!({SOURCE_ANNOTATION: source,
            CHANGE_KEY_ANNOTATION: "sha256:0000000000000000000000000000000000000000000000000000000000000000"});
    }
    object
}

fn snap(source: &str, objects: Vec<Value>) -> Snapshot {
    let raw = objects.into_iter().map(|value| RawObject {
        value,
        origin: "test".into(),
        archived: None,
    });
    Snapshot::build(source, raw, &Scope::default()).unwrap()
}

/// A plan in which the primary kept `kept` of `total` managed ConfigMaps: the rest are prunes.
fn plan_with_prunes(total: usize, kept: usize) -> (Plan, Snapshot, Snapshot) {
    let desired = snap(
        "primary",
        (0..kept)
            .map(|i| configmap(&format!("cm-{i:03}"), None))
            .collect(),
    );
    let live = snap(
        "replica",
        (0..total)
            .map(|i| configmap(&format!("cm-{i:03}"), Some("primary")))
            .collect(),
    );
    let plan = Plan::new("replica", &desired, &live, PlanOptions::default());
    (plan, desired, live)
}

fn decide(plan: &mut Plan, rules: PruneRules, managed: usize, budget: &PruneBudget) -> usize {
    let deferred = HashMap::new();
    let empty = Snapshot::default();
    let context = Context {
        desired: &empty,
        live: &empty,
        now: jiff::Timestamp::now(),
        managed,
        deferred: &deferred,
        authority: &listed_in_full,
        budget,
    };
    gate(plan, &rules, &context).len()
}

#[test]
fn parses_counts_and_percentages() {
    assert_eq!("25".parse::<MaxPrune>().unwrap(), MaxPrune::Count(25));
    assert_eq!("5%".parse::<MaxPrune>().unwrap(), MaxPrune::Percent(5));
    assert_eq!("0".parse::<MaxPrune>().unwrap(), MaxPrune::Count(0));
    for bad in ["", "-1", "101%", "ten", "5%%"] {
        let error = bad.parse::<MaxPrune>().unwrap_err().to_string();
        assert!(error.contains("not a count"), "{bad}: {error}");
    }
    assert_eq!(MaxPrune::default().to_string(), "10%");
}

#[test]
fn a_percentage_never_allows_fewer_than_ten() {
    assert_eq!(MaxPrune::Percent(10).limit(61), 10);
    assert_eq!(MaxPrune::Percent(10).limit(1000), 100);
    assert_eq!(MaxPrune::Percent(10).limit(1001), 101, "rounded up");
    assert_eq!(MaxPrune::Percent(0).limit(1000), MIN_PRUNE_LIMIT);
    assert_eq!(MaxPrune::Count(3).limit(1000), 3, "a count is exact");
}

#[test]
fn a_pass_over_the_limit_prunes_none_and_holds_them_all() {
    // 30 of 61 deleted on the primary: over 10% of 61 (at least 10).
    let (mut plan, _, _) = plan_with_prunes(61, 31);
    assert_eq!(plan.summary.prune, 30);
    decide(
        &mut plan,
        PruneRules::default(),
        61,
        &PruneBudget::default(),
    );
    assert_eq!((plan.summary.prune, plan.summary.held), (0, 30));
    assert_eq!(
        plan.summary.in_sync + plan.summary.update,
        31,
        "the rest goes on"
    );
    assert!(
        plan.changes
            .iter()
            .filter(|c| c.action == Action::Prune)
            .all(|c| c.deferral == Some(Deferral::Held))
    );
}

#[test]
fn a_pass_within_the_limit_prunes_and_force_prunes_past_it() {
    let (mut plan, _, _) = plan_with_prunes(61, 51);
    decide(
        &mut plan,
        PruneRules::default(),
        61,
        &PruneBudget::default(),
    );
    assert_eq!((plan.summary.prune, plan.summary.held), (10, 0));

    let (mut plan, _, _) = plan_with_prunes(61, 31);
    let force = PruneRules {
        force: true,
        ..PruneRules::default()
    };
    decide(&mut plan, force, 61, &PruneBudget::default());
    assert_eq!((plan.summary.prune, plan.summary.held), (30, 0));
}

#[test]
fn a_window_counts_prunes_across_passes() {
    let budget = PruneBudget::over(Duration::from_secs(60));
    let rules = PruneRules {
        max: MaxPrune::Count(3),
        ..PruneRules::default()
    };
    let mut pruned = 0;
    for _ in 0..5 {
        // One deletion at a time, as watch events bring them.
        let (mut plan, _, _) = plan_with_prunes(2, 1);
        decide(&mut plan, rules, 100, &budget);
        pruned += plan.summary.prune;
    }
    assert_eq!(pruned, 3, "the fourth and fifth are held");
    assert_eq!(budget.recent(), 3);
    // Without a window, every pass starts afresh.
    let once = PruneBudget::default();
    for _ in 0..5 {
        let (mut plan, _, _) = plan_with_prunes(2, 1);
        decide(&mut plan, rules, 100, &once);
        assert_eq!(plan.summary.prune, 1);
    }
}

#[test]
fn a_held_prune_stays_held_until_forced_and_a_delayed_one_waits_for_its_due_time() {
    let (mut plan, desired, live) = plan_with_prunes(3, 1);
    let reference = |name: &str| ObjectRef {
        kind: crate::kinds::by_plural("configmaps").unwrap(),
        namespace: "shop".into(),
        name: name.into(),
    };
    let now = jiff::Timestamp::now();
    let record = |name: &str, status, due_at| DeferredPrune {
        kind: "ConfigMap".into(),
        namespace: "shop".into(),
        name: name.into(),
        status,
        due_at,
    };
    let later = now.checked_add(Duration::from_secs(30)).unwrap();
    let deferred: HashMap<_, _> = [
        (reference("cm-001"), record("cm-001", Status::Held, None)),
        (
            reference("cm-002"),
            record("cm-002", Status::Delayed, Some(later)),
        ),
    ]
    .into();
    let rules = PruneRules {
        delay: Duration::from_secs(60),
        ..PruneRules::default()
    };
    let budget = PruneBudget::default();
    let context = Context {
        desired: &desired,
        live: &live,
        now,
        managed: 3,
        deferred: &deferred,
        authority: &listed_in_full,
        budget: &budget,
    };
    assert!(gate(&mut plan, &rules, &context).is_empty());
    let deferral = |plan: &Plan, name: &str| {
        plan.changes
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .deferral
    };
    assert_eq!(deferral(&plan, "cm-001"), Some(Deferral::Held));
    assert_eq!(
        deferral(&plan, "cm-002"),
        Some(Deferral::Delayed { due: later }),
        "the recorded due time, not a new one"
    );
    // Once due, the delayed one runs; the held one still waits.
    let (mut plan, _, _) = plan_with_prunes(3, 1);
    let context = Context {
        now: later.checked_add(Duration::from_secs(1)).unwrap(),
        ..context
    };
    gate(&mut plan, &rules, &context);
    assert_eq!(deferral(&plan, "cm-002"), None);
    assert_eq!((plan.summary.prune, plan.summary.held), (1, 1));
    // Forced (a release), the held one runs at once: it was due when it was held.
    let (mut plan, _, _) = plan_with_prunes(3, 1);
    let forced = PruneRules {
        force: true,
        ..rules
    };
    gate(&mut plan, &forced, &context);
    assert_eq!(deferral(&plan, "cm-001"), None);
    // A new deletion gets a due time of its own.
    let (mut plan, desired, live) = plan_with_prunes(4, 1);
    let context = Context {
        desired: &desired,
        live: &live,
        ..context
    };
    gate(&mut plan, &rules, &context);
    assert!(matches!(
        deferral(&plan, "cm-003"),
        Some(Deferral::Delayed { .. })
    ));
}

#[test]
fn deferred_prunes_of_objects_back_on_the_primary_or_gone_from_the_replica_are_cancelled() {
    // The primary has cm-000 and cm-001 again; the replica never had cm-009.
    let (mut plan, desired, live) = plan_with_prunes(3, 2);
    let kind = crate::kinds::by_plural("configmaps").unwrap();
    let back = ObjectRef {
        kind,
        namespace: "shop".into(),
        name: "cm-001".into(),
    };
    let still_gone = ObjectRef {
        name: "cm-002".into(),
        ..back.clone()
    };
    let nowhere = ObjectRef {
        name: "cm-009".into(),
        ..back.clone()
    };
    let deferred: HashMap<_, _> = [back.clone(), still_gone, nowhere.clone()]
        .into_iter()
        .map(|r| {
            let record = DeferredPrune {
                kind: "ConfigMap".into(),
                namespace: "shop".into(),
                name: r.name.clone(),
                status: Status::Held,
                due_at: None,
            };
            (r, record)
        })
        .collect();
    let budget = PruneBudget::default();
    let context = Context {
        desired: &desired,
        live: &live,
        now: jiff::Timestamp::now(),
        managed: 3,
        deferred: &deferred,
        authority: &listed_in_full,
        budget: &budget,
    };
    let mut cancelled = gate(&mut plan, &PruneRules::default(), &context);
    cancelled.sort();
    assert_eq!(cancelled, [back, nowhere]);
}

#[test]
fn kinds_not_listed_in_full_are_left_out() {
    let desired = snap("primary", vec![configmap("new", None)]);
    let live = snap("replica", vec![configmap("old", Some("primary"))]);
    let mut plan = Plan::new("replica", &desired, &live, PlanOptions::default());
    assert_eq!((plan.summary.create, plan.summary.prune), (1, 1));
    let deferred = HashMap::new();
    let budget = PruneBudget::default();
    let unknown = |kind: &Kind| -> Result<(), String> {
        Err(format!("{}: not listed in full yet", kind.plural))
    };
    let context = Context {
        desired: &desired,
        live: &live,
        now: jiff::Timestamp::now(),
        managed: 1,
        deferred: &deferred,
        authority: &unknown,
        budget: &budget,
    };
    gate(&mut plan, &PruneRules::default(), &context);
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(plan.summary.waiting, 2);
    assert_eq!(
        plan.waiting,
        [(
            "configmaps".to_string(),
            "configmaps: not listed in full yet".to_string()
        )]
    );
}

#[test]
fn managed_counts_only_this_sources_objects() {
    let desired = snap("primary", vec![]);
    let live = snap(
        "replica",
        vec![
            configmap("a", Some("primary")),
            configmap("b", Some("other")),
            configmap("c", None),
        ],
    );
    assert_eq!(managed(&desired, &live), 1);
}

#[test]
fn a_prune_another_copy_held_is_held_here_too() {
    let desired = snap("primary", vec![]);
    let mut marked = configmap("cm-000", Some("primary"));
    marked["metadata"]["annotations"][crate::normalize::PRUNE_HELD_ANNOTATION] =
        "2026-12-01T00:00:00Z".into();
    let live = snap(
        "replica",
        vec![marked, configmap("cm-001", Some("primary"))],
    );
    let mut plan = Plan::new("replica", &desired, &live, PlanOptions::default());
    let deferred = HashMap::new();
    let budget = PruneBudget::default();
    let context = Context {
        desired: &desired,
        live: &live,
        now: jiff::Timestamp::now(),
        managed: 2,
        deferred: &deferred,
        authority: &listed_in_full,
        budget: &budget,
    };
    gate(&mut plan, &PruneRules::default(), &context);
    let deferral = |name: &str| {
        plan.changes
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .deferral
    };
    assert_eq!(
        deferral("cm-000"),
        Some(Deferral::Held),
        "marked on the replica"
    );
    assert_eq!(deferral("cm-001"), None, "within the limit");
    let forced = PruneRules {
        force: true,
        ..PruneRules::default()
    };
    let mut plan = Plan::new("replica", &desired, &live, PlanOptions::default());
    gate(&mut plan, &forced, &context);
    assert!(plan.changes.iter().all(|c| c.deferral.is_none()), "forced");
}
