use super::*;
use crate::kinds::by_plural;
use serde_json::json;
use sha2::{Digest, Sha256};

fn rule(name: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

/// Applies one rule to `before` and checks the result is `after`.
fn check(name: &str, plural: &str, before: Value, after: Value) {
    let kind = by_plural(plural).unwrap();
    let rule = rule(name);
    assert!(rule.applies_to(kind), "{name} does not apply to {plural}");
    let mut object = before;
    rules::apply(rule.action, &mut object);
    assert_eq!(object, after, "rule {name}");
}

fn with_metadata(field: &str, value: Value) -> Value {
    json!({"kind": "ConfigMap", "metadata": {"name": "a", field: value}})
}

#[test]
fn strips_server_metadata() {
    let cases = [
        ("uid", "uid", json!("4f1c")),
        ("resource-version", "resourceVersion", json!("812")),
        ("generation", "generation", json!(3)),
        (
            "creation-timestamp",
            "creationTimestamp",
            json!("2026-01-01T00:00:00Z"),
        ),
        (
            "deletion-timestamp",
            "deletionTimestamp",
            json!("2026-01-01T00:00:00Z"),
        ),
        (
            "deletion-grace-period",
            "deletionGracePeriodSeconds",
            json!(30),
        ),
        ("self-link", "selfLink", json!("/api/v1/namespaces/a")),
        (
            "managed-fields",
            "managedFields",
            json!([{"manager": "kubectl"}]),
        ),
        ("owner-references", "ownerReferences", json!([{"uid": "1"}])),
    ];
    for (name, field, value) in cases {
        check(
            name,
            "configmaps",
            with_metadata(field, value),
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
        );
    }
}

#[test]
fn strips_status() {
    check(
        "status",
        "deployments",
        json!({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}),
        json!({"spec": {"replicas": 1}}),
    );
}

#[test]
fn strips_last_applied_configuration() {
    check(
        "last-applied-configuration",
        "secrets",
        json!({"metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"aHVudGVy\"}}",
            "team": "a"}}}),
        json!({"metadata": {"annotations": {"team": "a"}}}),
    );
}

#[test]
fn strips_own_annotations() {
    check(
        "own-annotations",
        "configmaps",
        json!({"metadata": {"annotations": {
            SOURCE_ANNOTATION: "primary", CHANGE_KEY_ANNOTATION: "sha256:00", "keep": "1"}}}),
        json!({"metadata": {"annotations": {"keep": "1"}}}),
    );
}

#[test]
fn strips_own_label() {
    check(
        "own-label",
        "secrets",
        json!({"metadata": {"labels": {MANAGED_LABEL: "true", "app": "db"}}}),
        json!({"metadata": {"labels": {"app": "db"}}}),
    );
}

#[test]
fn strips_deployment_revision() {
    for plural in ["deployments", "statefulsets"] {
        check(
            "deployment-revision",
            plural,
            json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "4"}}}),
            json!({"metadata": {"annotations": {}}}),
        );
    }
    assert!(!rule("deployment-revision").applies_to(by_plural("configmaps").unwrap()));
}

#[test]
fn defaults_claim_template_type_meta() {
    check(
        "claim-template-type-meta",
        "statefulsets",
        json!({"spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "data"}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "logs"}}]}}),
        json!({"spec": {"volumeClaimTemplates": [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "logs"}}]}}),
    );
}

#[test]
fn strips_claim_template_status() {
    check(
        "claim-template-status",
        "statefulsets",
        json!({"spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending"}}]}}),
        json!({"spec": {"volumeClaimTemplates": [
            {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}}),
    );
}

#[test]
fn strips_pvc_volume_name() {
    check(
        "pvc-volume-name",
        "persistentvolumeclaims",
        json!({"spec": {"volumeName": "pvc-1f2e", "storageClassName": "standard"}}),
        json!({"spec": {"storageClassName": "standard"}}),
    );
    assert!(!rule("pvc-volume-name").applies_to(by_plural("statefulsets").unwrap()));
}

#[test]
fn strips_pvc_binding_annotations() {
    let cases = [
        ("pvc-bind-completed", "pv.kubernetes.io/bind-completed"),
        (
            "pvc-bound-by-controller",
            "pv.kubernetes.io/bound-by-controller",
        ),
        (
            "pvc-storage-provisioner",
            "volume.kubernetes.io/storage-provisioner",
        ),
        (
            "pvc-beta-storage-provisioner",
            "volume.beta.kubernetes.io/storage-provisioner",
        ),
        ("pvc-selected-node", "volume.kubernetes.io/selected-node"),
    ];
    for (name, key) in cases {
        check(
            name,
            "persistentvolumeclaims",
            json!({"metadata": {"annotations": {key: "yes", "owner": "team-a"}}}),
            json!({"metadata": {"annotations": {"owner": "team-a"}}}),
        );
        assert!(!rule(name).applies_to(by_plural("configmaps").unwrap()));
    }
}

#[test]
fn strips_pvc_protection_finalizer() {
    check(
        "pvc-protection-finalizer",
        "persistentvolumeclaims",
        json!({"metadata": {"finalizers": ["kubernetes.io/pvc-protection", "example.com/keep"]}}),
        json!({"metadata": {"finalizers": ["example.com/keep"]}}),
    );
}

#[test]
fn folds_string_data_into_data() {
    check(
        "secret-string-data",
        "secrets",
        json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hunter2", "c": "z"}}),
        json!({"data": {"a": "eA==", "b": "aHVudGVyMg==", "c": "eg=="}}),
    );
    check(
        "secret-string-data",
        "secrets",
        json!({"stringData": {"token": "t"}}),
        json!({"data": {"token": "dA=="}}),
    );
}

#[test]
fn removes_nulls_at_any_depth() {
    check(
        "null-fields",
        "deployments",
        json!({"metadata": {"labels": null}, "spec": {"template": {
            "metadata": {"creationTimestamp": null}, "spec": {"containers": [{"name": "a", "args": null}]}}}}),
        json!({"metadata": {}, "spec": {"template": {
            "metadata": {}, "spec": {"containers": [{"name": "a"}]}}}}),
    );
}

#[test]
fn removes_emptied_metadata_maps() {
    for (name, field, empty) in [
        ("empty-annotations", "annotations", json!({})),
        ("empty-labels", "labels", json!({})),
        ("empty-finalizers", "finalizers", json!([])),
    ] {
        check(
            name,
            "configmaps",
            with_metadata(field, empty),
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
        );
        // Non-empty ones stay.
        let kept = with_metadata(field, json!(["x"]));
        check(name, "configmaps", kept.clone(), kept);
    }
}

#[test]
fn strips_what_each_cluster_allocates_to_a_service() {
    let service =
        |spec: Value| json!({"kind": "Service", "metadata": {"name": "web"}, "spec": spec});
    check(
        "service-cluster-ip",
        "services",
        service(json!({"clusterIP": "10.96.4.2", "type": "ClusterIP"})),
        service(json!({"type": "ClusterIP"})),
    );
    // A headless Service's `None` is the user's, and immutable.
    let headless = service(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
    check(
        "service-cluster-ip",
        "services",
        headless.clone(),
        headless.clone(),
    );
    check(
        "service-cluster-ips",
        "services",
        headless.clone(),
        headless,
    );
    check(
        "service-cluster-ips",
        "services",
        service(json!({"clusterIPs": ["10.96.4.2", "fd00::4"]})),
        service(json!({})),
    );
    check(
        "service-node-ports",
        "services",
        service(json!({"ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]})),
        service(json!({"ports": [{"port": 80}, {"port": 443}]})),
    );
    check(
        "service-health-check-node-port",
        "services",
        service(json!({"healthCheckNodePort": 31000, "externalTrafficPolicy": "Local"})),
        service(json!({"externalTrafficPolicy": "Local"})),
    );
    check(
        "service-single-stack",
        "services",
        service(
            json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"], "type": "ClusterIP"}),
        ),
        service(json!({"type": "ClusterIP"})),
    );
    let dual =
        service(json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}));
    check("service-single-stack", "services", dual.clone(), dual);
    assert!(!rule("service-cluster-ip").applies_to(by_plural("configmaps").unwrap()));
}

#[test]
fn strips_a_service_accounts_own_token_secrets() {
    let account = |secrets: Value| json!({"kind": "ServiceAccount", "metadata": {"name": "app"}, "secrets": secrets});
    check(
        "service-account-token-secrets",
        "serviceaccounts",
        account(json!([{"name": "app-token-x7k2p"}, {"name": "registry"}])),
        account(json!([{"name": "registry"}])),
    );
    check(
        "service-account-token-secrets",
        "serviceaccounts",
        account(json!([{"name": "app-token-x7k2p"}])),
        json!({"kind": "ServiceAccount", "metadata": {"name": "app"}}),
    );
    // Another account's token is not this one's.
    let other = account(json!([{"name": "web-token-abcde"}]));
    check(
        "service-account-token-secrets",
        "serviceaccounts",
        other.clone(),
        other,
    );
}

#[test]
fn every_rule_has_a_test() {
    // The names the tests above exercise; a new rule must be added here with its test.
    let tested = [
        "service-cluster-ip",
        "service-cluster-ips",
        "service-node-ports",
        "service-health-check-node-port",
        "service-single-stack",
        "service-account-token-secrets",
        "uid",
        "resource-version",
        "generation",
        "creation-timestamp",
        "deletion-timestamp",
        "deletion-grace-period",
        "self-link",
        "managed-fields",
        "owner-references",
        "status",
        "last-applied-configuration",
        "own-annotations",
        "own-label",
        "deployment-revision",
        "claim-template-type-meta",
        "claim-template-status",
        "pvc-volume-name",
        "pvc-bind-completed",
        "pvc-bound-by-controller",
        "pvc-storage-provisioner",
        "pvc-beta-storage-provisioner",
        "pvc-selected-node",
        "pvc-protection-finalizer",
        "secret-string-data",
        "null-fields",
        "empty-annotations",
        "empty-labels",
        "empty-finalizers",
    ];
    // Quantity and empty-value rules are tested row by row by the table-driven tests below.
    let by_table = |rule: &Rule| match rule.action {
        Action::CanonicalQuantity(_) | Action::RemoveIfEqual(..) => true,
        Action::RemoveIfEmpty(path) => !path.starts_with("metadata."),
        _ => false,
    };
    let names: Vec<_> = RULES
        .iter()
        .filter(|r| !by_table(r))
        .map(|r| r.name)
        .collect();
    assert_eq!(names.len(), tested.len(), "{names:?}");
    for name in names {
        assert!(tested.contains(&name), "rule {name} has no test");
    }
}

#[test]
fn change_key_is_sha256_of_sorted_compact_json() {
    let object = json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
    assert_eq!(
        String::from_utf8(canonical_bytes(&object)).unwrap(),
        r#"{"a":{"c":"x","d":[true,null]},"b":1}"#
    );
    // sha256 of the bytes above, as `printf %s '…' | sha256sum` prints it.
    assert_eq!(
        ChangeKey::of(&object).as_str(),
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(br#"{"a":{"c":"x","d":[true,null]},"b":1}"#))
        )
    );
    assert!(ChangeKey::parse(ChangeKey::of(&object).as_str()).is_some());
    assert!(ChangeKey::parse("sha256:xyz").is_none());
    assert!(ChangeKey::parse("md5:00").is_none());
}

/// An object holding `leaf` at `path`: one element for each `[]`, key `cpu` for a `*`.
fn sample(path: &str, leaf: Value) -> Value {
    let mut value = leaf;
    for segment in path.rsplit('.') {
        value = match segment {
            "*" => json!({ "cpu": value }),
            list if list.ends_with("[]") => json!({ list.trim_end_matches("[]"): [value] }),
            key => json!({ key: value }),
        };
    }
    value
}

/// The value at `path` in a [`sample`], if it is still there.
fn leaf_of(object: &Value, path: &str) -> Option<Value> {
    let mut value = object;
    for segment in path.split('.') {
        value = match segment {
            "*" => value.get("cpu")?,
            list if list.ends_with("[]") => value.get(list.trim_end_matches("[]"))?.get(0)?,
            key => value.get(key)?,
        };
    }
    Some(value.clone())
}

/// Runs one rule alone on `object`.
fn run(rule: &Rule, mut object: Value) -> Value {
    rules::apply(rule.action, &mut object);
    object
}

#[test]
fn every_quantity_rule_spells_its_quantities_canonically() {
    let mut checked = 0;
    for rule in RULES {
        let Action::CanonicalQuantity(path) = rule.action else {
            continue;
        };
        checked += 1;
        for (written, canonical) in [
            (json!(".5"), "500m"),
            (json!(1), "1"),
            (json!("1.5Gi"), "1536Mi"),
        ] {
            let object = run(rule, sample(path, written.clone()));
            assert_eq!(
                leaf_of(&object, path),
                Some(json!(canonical)),
                "{}: {written}",
                rule.name
            );
        }
        let odd = run(rule, sample(path, json!("not a quantity")));
        assert_eq!(
            leaf_of(&odd, path),
            Some(json!("not a quantity")),
            "{}",
            rule.name
        );
    }
    assert_eq!(checked, 13);
}

#[test]
fn every_empty_value_rule_drops_only_the_empty_value() {
    let mut checked = 0;
    for rule in RULES {
        let Action::RemoveIfEqual(path, empty) = rule.action else {
            continue;
        };
        checked += 1;
        let (empty_value, value) = match empty {
            Empty::String => (json!(""), json!("x")),
            Empty::False => (json!(false), json!(true)),
            Empty::Zero => (json!(0), json!(1)),
        };
        assert_eq!(
            leaf_of(&run(rule, sample(path, empty_value)), path),
            None,
            "{}",
            rule.name
        );
        assert_eq!(
            leaf_of(&run(rule, sample(path, value.clone())), path),
            Some(value),
            "{}",
            rule.name
        );
        // Only the empty value of the field's own type: `false` is not an empty string.
        let other = if empty == Empty::False {
            json!("")
        } else {
            json!(false)
        };
        assert_eq!(
            leaf_of(&run(rule, sample(path, other.clone())), path),
            Some(other),
            "{}",
            rule.name
        );
    }
    assert_eq!(checked, 30);
}

#[test]
fn every_empty_list_rule_drops_only_empty_lists_and_maps() {
    let mut checked = 0;
    for rule in RULES {
        let Action::RemoveIfEmpty(path) = rule.action else {
            continue;
        };
        checked += 1;
        for empty in [json!([]), json!({})] {
            assert_eq!(
                leaf_of(&run(rule, sample(path, empty)), path),
                None,
                "{}",
                rule.name
            );
        }
        let full = json!([{"name": "x"}]);
        assert_eq!(
            leaf_of(&run(rule, sample(path, full.clone())), path),
            Some(full),
            "{}",
            rule.name
        );
    }
    assert_eq!(checked, 14);
}

#[test]
fn a_false_zero_or_empty_string_that_means_something_reaches_the_replica() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 0, "revisionHistoryLimit": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "automountServiceAccountToken": false, "enableServiceLinks": false,
                "shareProcessNamespace": false, "hostUsers": false,
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsNonRoot": false, "runAsUser": 0},
                "containers": [{"name": "web", "image": "nginx",
                    "env": [{"name": "RATIO", "value": "0.5"}, {"name": "OFF", "value": "false"}],
                    "securityContext": {"privileged": false, "readOnlyRootFilesystem": false,
                        "allowPrivilegeEscalation": false, "runAsUser": 0}}]}}}});
    let mut normalized = deployment.clone();
    normalize(&mut normalized, by_plural("deployments").unwrap());
    assert_eq!(
        normalized["spec"], deployment["spec"],
        "nothing here is dropped or respelled"
    );

    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "shop"},
        "spec": {"storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}});
    let mut normalized = claim.clone();
    normalize(
        &mut normalized,
        by_plural("persistentvolumeclaims").unwrap(),
    );
    assert_eq!(
        normalized["spec"]["storageClassName"], "",
        "\"\" turns dynamic provisioning off"
    );

    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"}, "immutable": false,
        "data": {"cpu": "0.5", "empty": "", "flag": "false"}});
    let mut normalized = config.clone();
    normalize(&mut normalized, by_plural("configmaps").unwrap());
    assert_eq!(normalized, config, "ConfigMap data is never a quantity");

    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "shop"}, "immutable": false, "type": "Opaque"});
    let mut normalized = secret.clone();
    normalize(&mut normalized, by_plural("secrets").unwrap());
    assert_eq!(normalized, secret);
}

#[test]
fn rule_names_are_unique() {
    let mut seen = std::collections::BTreeSet::new();
    for rule in RULES {
        assert!(seen.insert(rule.name), "{} twice", rule.name);
    }
}
