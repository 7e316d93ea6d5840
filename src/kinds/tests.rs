use super::*;

fn served(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Served {
    Served {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        syncable: true,
    }
}

/// What a primary with one custom resource, and a CRD of a second group that also calls its
/// objects `Ingress`, serves (a sample of it).
fn primary() -> Vec<Served> {
    vec![
        served("", "v1", "ConfigMap", "configmaps", true),
        served("", "v1", "Pod", "pods", true),
        served("", "v1", "Service", "services", true),
        served("", "v1", "Namespace", "namespaces", false),
        served("apps", "v1", "Deployment", "deployments", true),
        served("apps", "v1", "ReplicaSet", "replicasets", true),
        served("batch", "v1", "Job", "jobs", true),
        served("networking.k8s.io", "v1", "Ingress", "ingresses", true),
        served("gateway.example.com", "v1", "Ingress", "ingresses", true),
        served("example.com", "v1alpha1", "Widget", "widgets", true),
        Served {
            syncable: false,
            ..served("example.com", "v1", "Report", "reports", true)
        },
    ]
}

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
    assert_eq!(by_plural("cronjobs.batch").unwrap().kind, "CronJob");
    assert_eq!(by_id("Service").unwrap().plural, "services");
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
    // A cluster-scoped kind has no namespace in its path.
    assert_eq!(
        CRD.url_path(Some("shop")),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    );
}

#[test]
fn stages_follow_the_table() {
    let stage = |p| by_plural(p).unwrap().stage;
    assert_eq!(CRD.stage, Stage::Definitions);
    for p in [
        "serviceaccounts",
        "roles",
        "rolebindings",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
    ] {
        assert_eq!(stage(p), Stage::Foundations, "{p}");
    }
    assert_eq!(stage("services"), Stage::Network);
    for p in ["deployments", "statefulsets", "daemonsets", "cronjobs"] {
        assert_eq!(stage(p), Stage::Workloads, "{p}");
    }
    for p in [
        "ingresses",
        "networkpolicies",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
    ] {
        assert_eq!(stage(p), Stage::Rest, "{p}");
    }
    assert!(Stage::Definitions < Stage::Foundations && Stage::Network < Stage::Workloads);
}

#[test]
fn parses_selections() {
    assert_eq!("all".parse::<KindSelection>(), Ok(KindSelection::All));
    assert!("".parse::<KindSelection>().is_err());
    assert!("all,secrets".parse::<KindSelection>().is_err());
    let named: KindSelection = "deployments, Secret,configmap".parse().unwrap();
    assert!(!named.needs_discovery());
    let set = named.without_discovery().unwrap();
    let names: Vec<_> = set.iter().map(|k| k.plural).collect();
    assert_eq!(names, ["configmaps", "secrets", "deployments"]);
    assert!(
        "widgets.example.com"
            .parse::<KindSelection>()
            .unwrap()
            .needs_discovery()
    );
    assert_eq!(KindSet::default_five().len(), 5);
    assert!(!KindSelection::Default.needs_discovery());
}

#[test]
fn resolves_names_by_plural_group_and_kind() {
    let served = primary();
    for name in [
        "widgets",
        "widgets.example.com",
        "Widget",
        "Widget.example.com",
    ] {
        let set = resolve(&KindSelection::Names(vec![name.into()]), &served).unwrap();
        let kinds: Vec<_> = set.iter().map(|k| k.id()).collect();
        assert_eq!(kinds, ["Widget.example.com"], "{name}");
    }
    let widget = by_id("Widget.example.com").unwrap();
    assert_eq!(
        (widget.version, widget.plural, widget.stage),
        ("v1alpha1", "widgets", Stage::Rest)
    );
    let set = resolve(
        &KindSelection::Names(vec![
            "ingresses.networking.k8s.io".into(),
            "services".into(),
        ]),
        &served,
    )
    .unwrap();
    assert_eq!(
        set.iter().map(|k| k.plural).collect::<Vec<_>>(),
        ["services", "ingresses"]
    );
}

#[test]
fn a_bare_name_two_groups_serve_lists_the_candidates() {
    let err = resolve(&KindSelection::Names(vec!["ingresses".into()]), &primary()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--kinds: \"ingresses\" is served by more than one group: name one of ingresses.networking.k8s.io, ingresses.gateway.example.com"
    );
}

#[test]
fn an_unknown_name_names_what_is_close() {
    let err = resolve(
        &KindSelection::Names(vec!["widget.example.org".into()]),
        &primary(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("serves no resource \"widget.example.org\""),
        "{err}"
    );
    assert!(err.contains("widgets.example.com"), "{err}");
    let err = resolve(&KindSelection::Names(vec!["servics".into()]), &primary())
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("(close: services)"), "{err}");
}

#[test]
fn names_of_denied_cluster_scoped_or_unsyncable_resources_are_errors() {
    let one =
        |name: &str| resolve(&KindSelection::Names(vec![name.into()]), &primary()).unwrap_err();
    assert!(matches!(one("pods"), SelectError::Denied { .. }));
    let jobs = one("jobs").to_string();
    assert!(
        jobs.contains("jobs.batch is never synced: a Job on a replica would run again"),
        "{jobs}"
    );
    assert!(matches!(
        one("namespaces"),
        SelectError::ClusterScoped { .. }
    ));
    assert!(matches!(one("reports"), SelectError::NotSyncable { .. }));
}

#[test]
fn all_is_every_namespaced_syncable_resource_but_the_denied() {
    let set = resolve(&KindSelection::All, &primary()).unwrap();
    let mut names: Vec<_> = set.iter().map(|k| k.resource()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "configmaps",
            "deployments.apps",
            "ingresses.gateway.example.com",
            "ingresses.networking.k8s.io",
            "services",
            "widgets.example.com",
        ]
    );
}

#[test]
fn every_denied_resource_is_left_out_of_all() {
    for denied in DENIED {
        let served = vec![served(denied.group, "v1", "X", denied.plural, true)];
        assert!(
            resolve(&KindSelection::All, &served).unwrap().is_empty(),
            "{}",
            denied.plural
        );
    }
}

#[test]
fn kinds_of_the_table_keep_their_short_id_and_others_name_their_group() {
    assert_eq!(
        by_plural("horizontalpodautoscalers").unwrap().id(),
        "HorizontalPodAutoscaler"
    );
    let gadget = register(&served(
        "gadgets.example.com",
        "v1",
        "Gadget",
        "gadgets",
        true,
    ));
    assert_eq!(gadget.id(), "Gadget.gadgets.example.com");
    assert_eq!(gadget.resource(), "gadgets.gadgets.example.com");
    assert!(std::ptr::eq(
        register(&served(
            "gadgets.example.com",
            "v2",
            "Gadget",
            "gadgets",
            true
        )),
        gadget
    ));
    assert!(KindSet::of([gadget]).contains_type("gadgets.example.com/v9", "Gadget"));
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

    assert!(
        by_plural("rolebindings")
            .unwrap()
            .is_immutable_path("roleRef.name")
    );
    assert!(
        by_plural("services")
            .unwrap()
            .is_immutable_path("spec.clusterIP")
    );
    assert!(
        !by_plural("services")
            .unwrap()
            .is_immutable_path("spec.ports[0].port")
    );
    assert!(
        by_plural("daemonsets")
            .unwrap()
            .is_immutable_path("spec.selector")
    );
    assert!(CRD.is_immutable_path("spec.scope"));
}

#[test]
fn only_kinds_that_hold_data_wait_for_a_flag_before_pruning() {
    let holding: Vec<_> = TABLE
        .iter()
        .filter(|k| k.holds_data)
        .map(|k| k.plural)
        .collect();
    assert_eq!(holding, ["persistentvolumeclaims"]);
    assert!(CRD.never_pruned && !CRD.namespaced);
    assert!(TABLE.iter().all(|k| !k.never_pruned && k.namespaced));
}

#[test]
fn only_cronjobs_are_suspended_on_replicas() {
    let suspended: Vec<_> = TABLE
        .iter()
        .filter(|k| k.suspended_on_replicas)
        .map(|k| k.plural)
        .collect();
    assert_eq!(suspended, ["cronjobs"]);
}

#[test]
fn only_rbac_names_are_path_segments() {
    let rows: Vec<_> = TABLE
        .iter()
        .filter(|k| k.path_segment_names)
        .map(|k| k.plural)
        .collect();
    assert_eq!(rows, ["roles", "rolebindings"]);
}

#[test]
fn only_rows_of_the_table_are_recreated() {
    let custom = register(&served(
        "recreate.example.com",
        "v1",
        "Thing",
        "things",
        true,
    ));
    assert!(!custom.recreatable);
    let recreated: Vec<_> = TABLE
        .iter()
        .filter(|k| !k.recreatable)
        .map(|k| k.plural)
        .collect();
    assert_eq!(recreated, ["persistentvolumeclaims"]);
    assert!(!CRD.recreatable);
}
