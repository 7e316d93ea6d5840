//! Every namespaced kind, custom resources included, against real API servers: the
//! application of `fixtures/app` (sixteen kinds, two CRDs and their custom resources) synced
//! with one command, each row of the kind table checked on the server, owned objects left to
//! their owners, and the prune, adopt and prune-safety rules for every kind.
//!
//! The testenv runs no controllers: no Pod, ReplicaSet or token Secret is ever made, so owner
//! references are written by hand here, as a controller would write them.

mod support;

use serde_json::{Value, json};
use support::objects::{apply_manifests, delete_any, get_any, manifests};
use support::passes::pass;
use support::testenv::TestEnv;
use support::{Run, TestDir};

/// Held by the tests that create CRDs on the primary or sync every CRD it has: a CRD one test
/// makes would be copied by another's `--kinds all --sync-crds`, and found as drift by its diff.
static DEFINITIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The primary's ClusterRole and IngressClass the application refers to, which no replica has.
async fn primary_only_cluster_objects(env: &TestEnv) {
    let primary = env.client("primary").await;
    apply_manifests(
        &primary,
        "",
        &[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "shop-metrics-reader"},
                "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "shop-edge"}, "spec": {"controller": "example.com/edge"}}),
        ],
    )
    .await;
}

fn report<'a>(run: &'a Value, replica: &str) -> &'a Value {
    run["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == replica)
        .unwrap_or_else(|| panic!("no report of {replica}: {run}"))
}

fn all_kinds(dir: &TestDir, env: &TestEnv, command: &str, ns: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--kinds", "all", "--sync-crds"];
    args.extend(extra);
    pass(dir, env, command, "primary", &["replica-1"], ns, &args)
}

#[tokio::test]
async fn a_whole_application_syncs_with_one_command_and_stays_in_step() {
    let Some(env) = TestEnv::get() else { return };
    let _definitions = DEFINITIONS.lock().await;
    primary_only_cluster_objects(&env).await;
    let ns = env.namespace("app", &["primary"]).await;
    let primary = env.client("primary").await;
    let app = manifests("app", &ns);
    apply_manifests(&primary, &ns, &app).await;
    let kinds: std::collections::BTreeSet<&str> =
        app.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert!(kinds.len() >= 10, "{kinds:?}");

    let dir = TestDir::new();
    let run = all_kinds(&dir, &env, "apply", &ns, &["-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    let applied = report(&json, "replica-1");
    // Every object of the application; the CRDs, cluster-scoped, may be there from an earlier
    // run (and other tests' CRDs copied before are kept in step, unchanged).
    let created = applied["created"].as_u64().unwrap() as usize;
    assert!(created >= app.len() - 2, "{run}");
    assert_eq!(applied["failed"], 0, "{run}");
    let stderr = run.stderr();
    for missing in [
        "has no ClusterRole \"shop-metrics-reader\", which",
        "has no IngressClass \"shop-edge\", which",
    ] {
        assert!(stderr.contains(missing), "no warning {missing:?}\n{run}");
    }
    assert!(!stderr.contains("ClusterRole \"view\""), "{run}");

    let replica = env.client("replica-1").await;
    for object in &app {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let (group, _) = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .unwrap_or(("", ""));
        let (resource, _) =
            support::objects::served(&replica, |r| r.kind == kind && r.group == group).await;
        let full = if group.is_empty() {
            resource.plural.clone()
        } else {
            format!("{}.{group}", resource.plural)
        };
        let copy = get_any(&replica, &ns, &full, name)
            .await
            .unwrap_or_else(|| panic!("replica-1 lacks {kind} {name}"));
        assert_eq!(
            copy["metadata"]["labels"]["k8s-sync.io/managed"], "true",
            "{copy}"
        );
    }

    // Each cluster allocates its own cluster IP; the headless Service stays headless.
    let web_primary = get_any(&primary, &ns, "services", "shop-web")
        .await
        .unwrap();
    let web_replica = get_any(&replica, &ns, "services", "shop-web")
        .await
        .unwrap();
    let ip = |s: &Value| s["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert_ne!(ip(&web_primary), ip(&web_replica));
    assert!(ip(&web_replica).starts_with("10.12."), "{web_replica}");
    let db = get_any(&replica, &ns, "services", "shop-db").await.unwrap();
    assert_eq!(db["spec"]["clusterIP"], "None");
    // The nightly report is suspended on the replica, not on the primary.
    let report_on = |s: Value| s["spec"]["suspend"].clone();
    assert_eq!(
        report_on(
            get_any(&replica, &ns, "cronjobs.batch", "shop-report")
                .await
                .unwrap()
        ),
        true
    );
    assert_eq!(
        report_on(
            get_any(&primary, &ns, "cronjobs.batch", "shop-report")
                .await
                .unwrap()
        ),
        false
    );

    // In step right after: no drift, and a second apply writes nothing.
    all_kinds(&dir, &env, "diff", &ns, &[]).expect_code(0);
    let again = all_kinds(&dir, &env, "apply", &ns, &["-o", "json"]);
    again.expect_code(0);
    let second = again.json();
    assert_eq!(report(&second, "replica-1")["writes"], 0, "{again}");
}

#[tokio::test]
async fn a_copied_cluster_ip_would_be_refused_so_each_replica_allocates_its_own() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("svc", &["primary", "replica-2"]).await;
    let primary = env.client("primary").await;
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
        "spec": {"type": "NodePort", "selector": {"app": "api"}, "ports": [{"port": 80}]}});
    apply_manifests(&primary, &ns, std::slice::from_ref(&service)).await;
    let on_primary = get_any(&primary, &ns, "services", "api").await.unwrap();
    // What copying the primary's allocation as it is would do: the replica refuses it.
    let mut copied = on_primary.clone();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        copied["metadata"].as_object_mut().unwrap().remove(field);
    }
    copied.as_object_mut().unwrap().remove("status");
    let replica = env.client("replica-2").await;
    let (resource, _) =
        support::objects::served(&replica, |r| r.plural == "services" && r.group.is_empty()).await;
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(replica.clone(), &ns, &resource);
    let refused = api
        .create(
            &Default::default(),
            &serde_json::from_value(copied).unwrap(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("range"), "{refused}");

    let dir = TestDir::new();
    pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", "services"],
    )
    .expect_code(0);
    let on_replica = get_any(&replica, &ns, "services", "api").await.unwrap();
    assert!(
        on_replica["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.13."),
        "{on_replica}"
    );
    assert!(
        on_replica["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .is_some(),
        "{on_replica}"
    );
    pass(
        &dir,
        &env,
        "diff",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", "services"],
    )
    .expect_code(0);
}

/// A CRD of a group no other test uses, so that no replica has it unless this test copies it.
fn definition(group: &str, kind: &str, plural: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
}

fn owned_by(object: &mut Value, owner: &Value) {
    object["metadata"]["ownerReferences"] = json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }]);
}

#[tokio::test]
async fn owned_objects_are_left_to_their_owner_and_earlier_copies_released() {
    let Some(env) = TestEnv::get() else { return };
    let _definitions = DEFINITIONS.lock().await;
    let ns = env.namespace("owned", &["primary"]).await;
    let primary = env.client("primary").await;
    let group = format!("certs-{}.k8s-sync.test", &ns[6..]);
    apply_manifests(
        &primary,
        "",
        &[definition(&group, "Certificate", "certificates")],
    )
    .await;
    let certificates = format!("certificates.{group}");
    let certificate = json!({"apiVersion": format!("{group}/v1"), "kind": "Certificate",
        "metadata": {"name": "web-tls"}, "spec": {"dnsNames": ["shop.example.com"]}});
    apply_manifests(&primary, &ns, &[certificate]).await;
    let certificate = get_any(&primary, &ns, &certificates, "web-tls")
        .await
        .unwrap();
    // The Secret a certificate controller would have written, and a ConfigMap a synced
    // Deployment's controller would own.
    let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}});
    owned_by(&mut secret, &certificate);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
    apply_manifests(&primary, &ns, &[secret, deployment]).await;
    let deployment = get_any(&primary, &ns, "deployments.apps", "web")
        .await
        .unwrap();
    let mut generated = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-generated"},
        "data": {"made": "by its deployment"}});
    owned_by(&mut generated, &deployment);
    apply_manifests(&primary, &ns, &[generated]).await;

    // Certificates not synced: the Secret's owner is not synced, so the Secret is copied;
    // the Deployment is, so its ConfigMap is not.
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-3"], &ns, &[]).expect_code(0);
    let replica = env.client("replica-3").await;
    let copy = get_any(&replica, &ns, "secrets", "web-tls")
        .await
        .expect("the Secret is copied");
    assert_eq!(copy["metadata"]["labels"]["k8s-sync.io/managed"], "true");
    assert!(
        get_any(&replica, &ns, "deployments.apps", "web")
            .await
            .is_some()
    );
    assert!(
        get_any(&replica, &ns, "configmaps", "web-generated")
            .await
            .is_none(),
        "an object of a synced owner is left to that owner"
    );

    // Certificates synced too: the Secret is released, never pruned.
    let kinds = format!("secrets,configmaps,deployments,{certificates}");
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-3"],
        &ns,
        &["--kinds", &kinds, "--sync-crds", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(report(&run.json(), "replica-3")["released"], 1, "{run}");
    let released = get_any(&replica, &ns, "secrets", "web-tls")
        .await
        .expect("released, not pruned");
    assert!(
        released["metadata"]["labels"]
            .get("k8s-sync.io/managed")
            .is_none(),
        "{released}"
    );
    let annotations = released["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        annotations.keys().all(|k| !k.starts_with("k8s-sync.io/")),
        "{released}"
    );
    assert_eq!(released["data"]["tls.crt"], "Y3J0");
    assert!(
        get_any(&replica, &ns, &certificates, "web-tls")
            .await
            .is_some()
    );
    // And nothing more to do.
    pass(
        &dir,
        &env,
        "diff",
        "primary",
        &["replica-3"],
        &ns,
        &["--kinds", &kinds, "--sync-crds"],
    )
    .expect_code(0);
}

#[tokio::test]
async fn a_custom_resource_whose_crd_the_replica_lacks_fails_alone() {
    let Some(env) = TestEnv::get() else { return };
    let _definitions = DEFINITIONS.lock().await;
    let ns = env.namespace("nocrd", &["primary"]).await;
    let primary = env.client("primary").await;
    let group = format!("gadgets-{}.k8s-sync.test", &ns[6..]);
    apply_manifests(&primary, "", &[definition(&group, "Gadget", "gadgets")]).await;
    apply_manifests(
        &primary,
        &ns,
        &[
            json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 3}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"}, "data": {"a": "1"}}),
        ],
    )
    .await;
    let dir = TestDir::new();
    let kinds = format!("configmaps,gadgets.{group}");
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", &kinds],
    );
    run.expect_code(1);
    let replica = env.client("replica-2").await;
    assert!(
        get_any(&replica, &ns, "configmaps", "plain")
            .await
            .is_some(),
        "{run}"
    );
    let failed = support::passes::jobs(&dir, &["--status", "failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let error = failed[0]["error"].as_str().unwrap();
    assert_eq!(
        error,
        format!(
            "the replica does not serve {group}/v1: the CustomResourceDefinition gadgets.{group} is missing there (--sync-crds copies it)"
        )
    );
    // `serve`, which resolves no --kinds, retries the job of a custom resource too: the kind is
    // found in the primary's discovery, the job runs again and fails the same way.
    let id = failed[0]["id"].as_i64().unwrap();
    let mut server = support::http::ApiServer::start(
        &dir,
        &[
            "--primary",
            &env.arg("primary"),
            "--replica",
            &env.arg("replica-2"),
        ],
        &[("K8S_SYNC_ADMIN_PASSWORD", support::watch::ADMIN_PASSWORD)],
    );
    server.login_as("admin", support::watch::ADMIN_PASSWORD);
    let retried = server.request("POST", &format!("/retry?jobid={id}"), None);
    assert_eq!(retried.status, 200, "{retried}");
    let job = &retried.json()["job"];
    assert_eq!(job["status"], "failed", "{retried}");
    assert_eq!(job["runs"], 2, "run again: {retried}");
    assert_eq!(job["error"].as_str(), Some(error), "{retried}");
    drop(server);
    // A dry run with --sync-crds applies no CRD: the Gadget is counted, not validated.
    let dry = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", &kinds, "--sync-crds", "--dry-run", "-o", "json"],
    );
    dry.expect_code(0);
    assert_eq!(report(&dry.json(), "replica-2")["unvalidated"], 1, "{dry}");
    // With --sync-crds the CRD comes first, then the Gadget; the CRD is never pruned.
    pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", &kinds, "--sync-crds"],
    )
    .expect_code(0);
    let gadget = get_any(&replica, &ns, &format!("gadgets.{group}"), "g")
        .await
        .unwrap();
    assert_eq!(gadget["spec"]["size"], 3);
    // The Gadget deleted on the primary is pruned; its CRD stays on the replica.
    delete_any(&primary, &ns, &format!("gadgets.{group}"), "g").await;
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-2"],
        &ns,
        &["--kinds", &kinds, "--sync-crds", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(report(&run.json(), "replica-2")["pruned"], 1, "{run}");
    assert!(
        get_any(&replica, &ns, &format!("gadgets.{group}"), "g")
            .await
            .is_none()
    );
    assert!(
        get_any(
            &replica,
            "",
            "customresourcedefinitions.apiextensions.k8s.io",
            &format!("gadgets.{group}")
        )
        .await
        .is_some(),
        "a CRD is never pruned\n{run}"
    );
}

/// The resource (`plural.group`) of a manifest's kind, as `server` serves it.
async fn resource_of(client: &kube::Client, object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap().to_string();
    let api_version = object["apiVersion"].as_str().unwrap().to_string();
    let (resource, _) =
        support::objects::served(client, |r| r.api_version == api_version && r.kind == kind).await;
    if resource.group.is_empty() {
        resource.plural
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

#[tokio::test]
async fn prune_adopt_and_prune_safety_hold_for_every_kind() {
    let Some(env) = TestEnv::get() else { return };
    let _definitions = DEFINITIONS.lock().await;
    primary_only_cluster_objects(&env).await;
    // The replica of the older Kubernetes version: every kind's defaults differ a little.
    let target = support::testenv::OLD_CLUSTER;
    let ns = env.namespace("everykind", &["primary", target]).await;
    let primary = env.client("primary").await;
    let replica = env.client(target).await;
    let app = manifests("app", &ns);
    apply_manifests(&primary, &ns, &app).await;
    let objects: Vec<&Value> = app
        .iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .collect();
    // A hand-made copy of the Role on the replica, not k8s-sync's: adopted.
    let mut own_role = app.iter().find(|o| o["kind"] == "Role").unwrap().clone();
    own_role["rules"][0]["verbs"] = json!(["get"]);
    apply_manifests(&replica, &ns, &[own_role]).await;

    let dir = TestDir::new();
    let kinds = ["--kinds", "all", "--sync-crds"];
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &[target],
        &ns,
        &[&kinds[..], &["-o", "json"]].concat(),
    );
    run.expect_code(0);
    let role = get_any(
        &replica,
        &ns,
        "roles.rbac.authorization.k8s.io",
        "shop-config-reader",
    )
    .await
    .unwrap();
    assert_eq!(
        role["rules"][0]["verbs"],
        json!(["get", "list", "watch"]),
        "adopted: {role}"
    );
    assert_eq!(role["metadata"]["labels"]["k8s-sync.io/managed"], "true");
    pass(&dir, &env, "diff", "primary", &[target], &ns, &kinds).expect_code(0);

    // Everything deleted on the primary at once: more than --max-prune, so nothing goes.
    let mut resources = Vec::new();
    for object in &objects {
        let resource = resource_of(&primary, object).await;
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        delete_any(&primary, &ns, &resource, &name).await;
        resources.push((resource, name));
    }
    let held = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &[target],
        &ns,
        &[&kinds[..], &["-o", "json"]].concat(),
    );
    held.expect_code(1);
    assert_eq!(
        report(&held.json(), target)["held"],
        objects.len(),
        "{held}"
    );
    on_replica(&replica, &ns, &resources, true, &held).await;
    // Forced: every kind is pruned; the CRDs stay.
    let forced = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &[target],
        &ns,
        &[&kinds[..], &["--force-prune", "-o", "json"]].concat(),
    );
    forced.expect_code(0);
    assert_eq!(
        report(&forced.json(), target)["pruned"],
        objects.len(),
        "{forced}"
    );
    on_replica(&replica, &ns, &resources, false, &forced).await;
    assert!(
        get_any(
            &replica,
            "",
            "customresourcedefinitions.apiextensions.k8s.io",
            "servicemonitors.monitoring.coreos.com"
        )
        .await
        .is_some()
    );
}

/// Asserts that each of `objects` (resource, name) is on the replica, or is not.
async fn on_replica(
    client: &kube::Client,
    ns: &str,
    objects: &[(String, String)],
    present: bool,
    run: &Run,
) {
    for (resource, name) in objects {
        let found = get_any(client, ns, resource, name).await.is_some();
        assert_eq!(
            found, present,
            "{resource} {name} on the replica: {found}\n{run}"
        );
    }
}

#[tokio::test]
async fn watch_mode_syncs_a_crd_created_later_without_a_restart() {
    let Some(env) = TestEnv::get() else { return };
    let _definitions = DEFINITIONS.lock().await;
    let primary = env.client("primary").await;
    release_held_definitions(&primary).await;
    let ns = env.namespace("latercrd", &["primary"]).await;
    let dir = TestDir::new();
    let daemon = support::watch::start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &["--kinds", "all", "--sync-crds"],
    );
    let group = format!("later-{}.k8s-sync.test", &ns[9..]);
    apply_manifests(&primary, "", &[definition(&group, "Dial", "dials")]).await;
    apply_manifests(
        &primary,
        &ns,
        &[json!({"apiVersion": format!("{group}/v1"), "kind": "Dial", "metadata": {"name": "volume"}, "spec": {"level": 7}})],
    )
    .await;
    let replica = env.client("replica-1").await;
    let dials = format!("dials.{group}");
    support::testenv::eventually(
        support::watch::DEADLINE,
        "the Dial on the replica",
        || async {
            match get_any_if_served(&replica, &ns, &dials, "volume").await {
                Some(dial) => dial["spec"]["level"] == 7,
                None => false,
            }
        },
    )
    .await;
    // Watched from then on: a change arrives by its event.
    apply_manifests(
        &primary,
        &ns,
        &[json!({"apiVersion": format!("{group}/v1"), "kind": "Dial", "metadata": {"name": "volume"}, "spec": {"level": 9}})],
    )
    .await;
    support::testenv::eventually(
        support::watch::DEADLINE,
        "the change on the replica",
        || async {
            get_any_if_served(&replica, &ns, &dials, "volume")
                .await
                .is_some_and(|d| d["spec"]["level"] == 9)
        },
    )
    .await;
    assert!(
        daemon
            .output()
            .contains("syncing kinds the primary serves now"),
        "{}",
        daemon.output()
    );
    // The CRD deleted on the primary: the server deletes every Dial there first. Those
    // deletions must not reach the replica. A finalizer of the test's own keeps the CRD
    // terminating after its objects are gone, as a slow cleanup would.
    let dial = |name: &str| json!({"apiVersion": format!("{group}/v1"), "kind": "Dial", "metadata": {"name": name}, "spec": {"level": 1}});
    apply_manifests(&primary, &ns, &[dial("bass"), dial("treble")]).await;
    let names = ["volume", "bass", "treble"];
    support::testenv::eventually(
        support::watch::DEADLINE,
        "three Dials on the replica",
        || async {
            let mut all = true;
            for name in names {
                all &= get_any_if_served(&replica, &ns, &dials, name)
                    .await
                    .is_some();
            }
            all
        },
    )
    .await;
    let crds = "customresourcedefinitions.apiextensions.k8s.io";
    support::objects::patch_any(
        &primary,
        "",
        crds,
        &dials,
        json!({"metadata": {"finalizers": ["k8s-sync.test/hold"]}}),
    )
    .await;
    let mut api = support::http::ApiServer::attach(daemon);
    api.login_as("admin", support::watch::ADMIN_PASSWORD);
    delete_any(&primary, "", crds, &dials).await;
    support::testenv::eventually(
        support::watch::DEADLINE,
        "the Dials gone from the primary",
        || async {
            get_any_if_served(&primary, &ns, &dials, "volume")
                .await
                .is_none()
                && get_any_if_served(&primary, &ns, &dials, "bass")
                    .await
                    .is_none()
                && get_any_if_served(&primary, &ns, &dials, "treble")
                    .await
                    .is_none()
        },
    )
    .await;
    // Held from the CRD's first event of its deletion (the server may stop serving the kind
    // before the CRD goes, which drops it from the scope: held or dropped, nothing is pruned).
    assert!(
        api.log().contains("a CRD is being deleted on the primary"),
        "{}",
        api.log()
    );
    for name in names {
        assert!(
            get_any(&replica, &ns, &dials, name).await.is_some(),
            "{name} pruned while its CRD is being deleted\n{}",
            api.log()
        );
    }
    // Gone: the kind is no longer synced, watch is ready again, the copies stay.
    support::objects::patch_any(
        &primary,
        "",
        crds,
        &dials,
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    support::testenv::eventually(support::watch::DEADLINE, "the kind dropped, ready", || {
        let dropped = api
            .log()
            .contains("the primary no longer serves these kinds")
            && api.get("/readyz").status == 200;
        async move { dropped }
    })
    .await;
    for name in names {
        assert!(
            get_any(&replica, &ns, &dials, name).await.is_some(),
            "{name} pruned after its CRD went\n{}",
            api.log()
        );
    }
}

/// Takes the test's finalizer off CRDs an interrupted run of this test left being deleted:
/// watch mode holds a kind whose CRD is being deleted, and is not ready while it does.
async fn release_held_definitions(client: &kube::Client) {
    let (resource, _) =
        support::objects::served(client, |r| r.plural == "customresourcedefinitions").await;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client.clone(), &resource);
    for crd in api.list(&Default::default()).await.unwrap().items {
        if crd
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "k8s-sync.test/hold")
        {
            let name = crd.metadata.name.clone().unwrap();
            let patch = json!({"metadata": {"finalizers": null}});
            api.patch(&name, &Default::default(), &kube::api::Patch::Merge(&patch))
                .await
                .unwrap();
        }
    }
}

/// [`get_any`], `None` too while the server does not serve the resource yet.
async fn get_any_if_served(
    client: &kube::Client,
    ns: &str,
    resource: &str,
    name: &str,
) -> Option<Value> {
    let (plural, group) = resource.split_once('.').unwrap();
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .ok()?;
    let served = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .any(|(r, _)| r.plural == plural && r.group == group);
    if served {
        get_any(client, ns, resource, name).await
    } else {
        None
    }
}

/// One object of each row of the kind table, and one changed at an immutable field where the
/// row has one (`None` where it has none).
fn samples() -> Vec<(&'static str, Value, Option<Value>)> {
    let selector = |app: &str| json!({"matchLabels": {"app": app}});
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}});
    let with = |mut object: Value, path: &[&str], value: Value| {
        let mut at = &mut object;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        object
    };
    // A new selector, and template labels to match it.
    let reselected = |object: Value, app: &str| {
        let labels = json!({"app": app, "v": "2"});
        let object = with(
            object,
            &["spec", "selector"],
            json!({"matchLabels": labels}),
        );
        with(object, &["spec", "template", "metadata", "labels"], labels)
    };
    let service_account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
        // A legacy token Secret of the primary's: each cluster makes its own.
        "secrets": [{"name": "sa-token-x7k2p"}], "imagePullSecrets": [{"name": "registry"}]});
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "stringData": {"k": "v"}});
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "d"}, "ports": [{"port": 80}]}});
    let external = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": selector("d"), "template": template("d")}});
    let stateful_set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ss"},
        "spec": {"serviceName": "ss", "selector": selector("ss"), "template": template("ss")}});
    let daemon_set = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"selector": selector("ds"), "template": template("ds")}});
    let cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.37"}]}}}}}});
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "ing"},
        "spec": {"defaultBackend": {"service": {"name": "svc", "port": {"number": 80}}}}});
    let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
    let budget = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
        "spec": {"maxUnavailable": 1, "selector": selector("d")}});
    let autoscaler = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}, "maxReplicas": 3}});
    vec![
        ("serviceaccounts", service_account, None),
        ("roles", role, None),
        (
            "rolebindings",
            binding.clone(),
            Some(with(binding, &["roleRef", "name"], json!("other"))),
        ),
        ("configmaps", config_map, None),
        (
            "secrets",
            secret.clone(),
            Some(with(secret, &["type"], json!("example.com/other"))),
        ),
        (
            "persistentvolumeclaims",
            claim.clone(),
            Some(with(
                claim,
                &["spec", "accessModes"],
                json!(["ReadWriteMany"]),
            )),
        ),
        (
            "services",
            service.clone(),
            Some(with(service, &["spec", "clusterIP"], json!("None"))),
        ),
        ("services", external, None),
        (
            "deployments",
            deployment.clone(),
            Some(reselected(deployment, "d")),
        ),
        (
            "statefulsets",
            stateful_set.clone(),
            Some(with(stateful_set, &["spec", "serviceName"], json!("other"))),
        ),
        (
            "daemonsets",
            daemon_set.clone(),
            Some(reselected(daemon_set, "ds")),
        ),
        ("cronjobs", cron_job, None),
        ("ingresses", ingress, None),
        ("networkpolicies", policy, None),
        ("poddisruptionbudgets", budget, None),
        ("horizontalpodautoscalers", autoscaler, None),
    ]
}

#[tokio::test]
async fn every_row_of_the_kind_table_syncs_in_step_and_its_immutable_fields_need_a_recreate() {
    let Some(env) = TestEnv::get() else { return };
    let samples = samples();
    for row in &k8s_sync::kinds::TABLE {
        assert!(
            samples.iter().any(|(plural, _, _)| *plural == row.plural),
            "no sample of {}",
            row.plural
        );
        assert_eq!(
            !row.immutable.is_empty(),
            samples
                .iter()
                .any(|(plural, _, changed)| *plural == row.plural && changed.is_some()),
            "{}: a row with immutable fields has a sample that changes one",
            row.plural
        );
    }
    let objects: Vec<Value> = samples
        .iter()
        .map(|(_, object, _)| object.clone())
        .collect();
    let kinds: Vec<&str> = k8s_sync::kinds::TABLE.iter().map(|k| k.plural).collect();
    let kinds = kinds.join(",");
    // A replica of the primary's version and one of the older version.
    for target in ["replica-2", support::testenv::OLD_CLUSTER] {
        let ns = env.namespace("table", &["primary"]).await;
        let primary = env.client("primary").await;
        apply_manifests(&primary, &ns, &objects).await;
        let dir = TestDir::new();
        let run = pass(
            &dir,
            &env,
            "apply",
            "primary",
            &[target],
            &ns,
            &["--kinds", &kinds, "-o", "json"],
        );
        run.expect_code(0);
        assert_eq!(
            report(&run.json(), target)["created"],
            objects.len(),
            "{run}"
        );
        pass(
            &dir,
            &env,
            "diff",
            "primary",
            &[target],
            &ns,
            &["--kinds", &kinds],
        )
        .expect_code(0);
        let again = pass(
            &dir,
            &env,
            "apply",
            "primary",
            &[target],
            &ns,
            &["--kinds", &kinds, "-o", "json"],
        );
        assert_eq!(report(&again.json(), target)["writes"], 0, "{again}");

        let replica = env.client(target).await;
        let account = get_any(&replica, &ns, "serviceaccounts", "sa")
            .await
            .unwrap();
        assert!(
            account.get("secrets").is_none(),
            "the primary's token Secret is not named: {account}"
        );
        assert_eq!(account["imagePullSecrets"], json!([{"name": "registry"}]));
        let external = get_any(&replica, &ns, "services", "ext").await.unwrap();
        assert_eq!(external["spec"]["externalName"], "db.example.com");

        // Each immutable field changed on the primary: the replica's copy needs a recreate.
        let changed: Vec<Value> = samples
            .iter()
            .filter_map(|(_, _, changed)| changed.clone())
            .collect();
        for object in &changed {
            let resource = resource_of(&primary, object).await;
            let name = object["metadata"]["name"].as_str().unwrap();
            delete_any(&primary, &ns, &resource, name).await;
            support::testenv::eventually(support::watch::DEADLINE, "the deletion", || async {
                get_any(&primary, &ns, &resource, name).await.is_none()
            })
            .await;
        }
        apply_manifests(&primary, &ns, &changed).await;
        let diff = pass(
            &dir,
            &env,
            "diff",
            "primary",
            &[target],
            &ns,
            &["--kinds", &kinds, "-o", "json"],
        );
        diff.expect_code(1);
        let plan = &diff.json()["replicas"][0];
        for object in &changed {
            let name = object["metadata"]["name"].as_str().unwrap();
            let kind = object["kind"].as_str().unwrap();
            let change = plan["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == kind && c["name"] == name)
                .unwrap_or_else(|| panic!("no change of {kind} {name}: {diff}"));
            assert_eq!(
                change["action"], "needs_recreate",
                "{kind} {name}: {change}"
            );
        }
    }
}
