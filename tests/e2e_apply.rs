//! End-to-end `diff`, `apply`, `jobs` and archives against real API servers (the local control
//! plane). Each test works in namespaces of its own and passes `--sync-namespaces`, so tests
//! run side by side.

mod support;

use serde_json::{Value, json};
use support::objects::{create, delete, get, patch};
use support::testenv::TestEnv;
use support::{Run, TestDir};

/// Runs a k8s-sync command from `primary` to `replicas`, limited to `namespaces`.
fn sync(
    dir: &TestDir,
    env: &TestEnv,
    command: &str,
    replicas: &[&str],
    namespaces: &str,
    extra: &[&str],
) -> Run {
    let mut args: Vec<String> = vec![command.into(), "--primary".into(), env.arg("primary")];
    for replica in replicas {
        args.push("--replica".into());
        args.push(env.arg(replica));
    }
    args.extend(["--sync-namespaces".into(), namespaces.into()]);
    if command != "diff" {
        args.extend(["--db".into(), "jobs.db".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dir.cmd(&args)
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn deployment(name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

fn every_kind() -> Vec<Value> {
    vec![
        configmap("settings", json!({"LOG_LEVEL": "info", "MODE": "off"})),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque",
            "stringData": {"password": "e2e-Secret-Value-0451"}}),
        // Pre-bound to a volume that exists only on the primary.
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-primary-only",
                "resources": {"requests": {"storage": "1Gi"}}}}),
        deployment("web", "web"),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "pgdata"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    ]
}

fn replica_report<'a>(json: &'a Value, replica: &str) -> &'a Value {
    json["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["replica"] == replica)
        .unwrap_or_else(|| panic!("no report for {replica}: {json}"))
}

#[tokio::test]
async fn a_fresh_replica_gets_every_kind_and_a_second_pass_writes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("fresh", &["primary"]).await;
    let primary = env.client("primary").await;
    for object in every_kind() {
        create(&primary, &ns, object).await;
    }
    let dir = TestDir::new();
    let run = sync(
        &dir,
        &env,
        "apply",
        &["replica-1", "replica-2"],
        &ns,
        &["-o", "json"],
    );
    run.expect_code(0);
    let json = run.json();
    // Objects are named after the primary cluster itself, however it was reached.
    let identity = env.identity("primary").await;
    assert_eq!(json["primary"], identity.as_str(), "{run}");
    for replica in ["replica-1", "replica-2"] {
        let report = replica_report(&json, replica);
        assert_eq!(
            (report["created"].as_u64(), report["failed"].as_u64()),
            (Some(5), Some(0)),
            "{run}"
        );
        assert_eq!(report["namespaces_created"], 1, "{run}");
        let client = env.client(replica).await;
        for (plural, name) in [
            ("configmaps", "settings"),
            ("secrets", "db"),
            ("persistentvolumeclaims", "data"),
            ("deployments", "web"),
            ("statefulsets", "db"),
        ] {
            let object = get(&client, &ns, plural, name)
                .await
                .unwrap_or_else(|| panic!("{replica} lacks {plural}/{name}"));
            let annotations = &object["metadata"]["annotations"];
            assert_eq!(
                annotations["k8s-sync.io/source"],
                identity.as_str(),
                "{object}"
            );
            assert!(
                annotations["k8s-sync.io/change-key"]
                    .as_str()
                    .unwrap()
                    .starts_with("sha256:")
            );
            assert_eq!(object["metadata"]["labels"]["k8s-sync.io/managed"], "true");
        }
        let pvc = get(&client, &ns, "persistentvolumeclaims", "data")
            .await
            .unwrap();
        assert!(
            pvc["spec"].get("volumeName").is_none(),
            "a PVC arrives unbound: {pvc}"
        );
        let secret = get(&client, &ns, "secrets", "db").await.unwrap();
        assert_eq!(secret["data"]["password"], "ZTJlLVNlY3JldC1WYWx1ZS0wNDUx");
    }

    // Right after an apply: no drift, and a second apply sends no write at all.
    let run = sync(&dir, &env, "diff", &["replica-1", "replica-2"], &ns, &[]);
    run.expect_code(0);
    let run = sync(
        &dir,
        &env,
        "apply",
        &["replica-1", "replica-2"],
        &ns,
        &["-o", "json"],
    );
    run.expect_code(0);
    for replica in ["replica-1", "replica-2"] {
        let report = replica_report(&run.json(), replica).clone();
        assert_eq!(report["writes"], 0, "{run}");
        assert_eq!(report["unchanged"], 5, "{run}");
    }
    assert!(
        !run.stdout().contains("e2e-Secret-Value-0451")
            && !run.stdout().contains("ZTJlLVNlY3JldC1WYWx1ZS0wNDUx")
    );
}

#[tokio::test]
async fn removed_keys_go_and_hand_edits_are_reverted_but_replica_labels_stay() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("revert", &["primary"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    create(
        &primary,
        &ns,
        configmap("app", json!({"keep": "1", "drop": "2"})),
    )
    .await;
    let dir = TestDir::new();
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);

    // The primary drops a key; someone edits the replica and labels it.
    patch(
        &primary,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"drop": null}}),
    )
    .await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"keep": "hand-edit"}, "metadata": {"labels": {"local": "yes"}}}),
    )
    .await;

    let run = sync(&dir, &env, "diff", &["replica-1"], &ns, &["-o", "json"]);
    run.expect_code(1);
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);
    let object = get(&replica, &ns, "configmaps", "app").await.unwrap();
    assert_eq!(object["data"], json!({"keep": "1"}), "{object}");
    assert_eq!(object["metadata"]["labels"]["local"], "yes", "{object}");
    sync(&dir, &env, "diff", &["replica-1"], &ns, &[]).expect_code(0);

    // A later hand edit of the same kind is reverted again: the job is re-opened.
    patch(
        &replica,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"keep": "hand-edit"}}),
    )
    .await;
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);
    let object = get(&replica, &ns, "configmaps", "app").await.unwrap();
    assert_eq!(object["data"]["keep"], "1");
}

#[tokio::test]
async fn prunes_what_it_created_and_never_what_it_did_not() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("prune", &["primary"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    create(&primary, &ns, configmap("gone-soon", json!({"a": "1"}))).await;
    let dir = TestDir::new();
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);
    create(&replica, &ns, configmap("replica-own", json!({"b": "2"}))).await;
    delete(&primary, &ns, "configmaps", "gone-soon").await;

    sync(&dir, &env, "apply", &["replica-1"], &ns, &["--no-prune"]).expect_code(0);
    assert!(
        get(&replica, &ns, "configmaps", "gone-soon")
            .await
            .is_some(),
        "--no-prune keeps it"
    );

    let run = sync(&dir, &env, "apply", &["replica-1"], &ns, &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(
        replica_report(&run.json(), "replica-1")["pruned"],
        1,
        "{run}"
    );
    assert!(
        get(&replica, &ns, "configmaps", "gone-soon")
            .await
            .is_none()
    );
    assert!(
        get(&replica, &ns, "configmaps", "replica-own")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn cluster_objects_stay_home() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("home", &["primary"]).await;
    let primary = env.client("primary").await;
    let replica = env.client("replica-1").await;
    create(
        &primary,
        &ns,
        configmap("kube-root-ca.crt", json!({"ca.crt": "primary CA"})),
    )
    .await;
    create(&primary, &ns, json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "builder-token", "annotations": {"kubernetes.io/service-account.name": "builder"}},
        "data": {"token": "dG9rZW4tb2YtdGhlLXByaW1hcnk="}})).await;
    create(&primary, &ns, configmap("ordinary", json!({"a": "1"}))).await;
    let system_name = format!("{ns}-system");
    create(
        &primary,
        "kube-system",
        configmap(&system_name, json!({"a": "1"})),
    )
    .await;

    let dir = TestDir::new();
    let namespaces = format!("{ns},kube-system");
    sync(&dir, &env, "apply", &["replica-1"], &namespaces, &[]).expect_code(0);
    assert!(get(&replica, &ns, "configmaps", "ordinary").await.is_some());
    assert!(
        get(&replica, &ns, "configmaps", "kube-root-ca.crt")
            .await
            .is_none()
    );
    assert!(
        get(&replica, &ns, "secrets", "builder-token")
            .await
            .is_none()
    );
    assert!(
        get(&replica, "kube-system", "configmaps", &system_name)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn immutable_changes_need_recreate_and_pvcs_are_never_deleted() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("immutable", &["primary"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    create(&primary, &ns, deployment("web", "v1")).await;
    create(
        &primary,
        &ns,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    let dir = TestDir::new();
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);

    // New selector on the primary (made there by delete and create, as anyone would).
    delete(&primary, &ns, "deployments", "web").await;
    create(&primary, &ns, deployment("web", "v2")).await;
    delete(&primary, &ns, "persistentvolumeclaims", "data").await;
    create(
        &primary,
        &ns,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "slow",
            "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;

    let run = sync(
        &dir,
        &env,
        "diff",
        &["replica-1"],
        &ns,
        &["--color", "never"],
    );
    run.expect_code(1);
    assert!(
        run.stdout()
            .contains(&format!("! needs recreate {ns}/Deployment/web")),
        "{run}"
    );
    assert!(
        run.stdout()
            .contains(&format!("! needs recreate {ns}/PersistentVolumeClaim/data")),
        "{run}"
    );

    let run = sync(&dir, &env, "apply", &["replica-1"], &ns, &[]);
    run.expect_code(1);
    assert!(run.stderr().contains("rerun with --recreate"), "{run}");
    assert!(
        run.stderr()
            .contains("PersistentVolumeClaims are never deleted"),
        "{run}"
    );

    let run = dir.cmd(&[
        "jobs", "list", "--status", "failed", "--db", "jobs.db", "-o", "json",
    ]);
    run.expect_code(0);
    let failed = run.json();
    let web = failed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "Deployment")
        .expect("a failed job")
        .clone();
    let id = web["id"].as_i64().unwrap().to_string();

    let (primary_arg, replica_arg) = (env.arg("primary"), env.arg("replica-1"));
    let retry = [
        "jobs",
        "retry",
        id.as_str(),
        "--primary",
        &primary_arg,
        "--replica",
        &replica_arg,
        "--db",
        "jobs.db",
    ];
    let run = dir.cmd(&retry);
    run.expect_code(1);
    let mut with_recreate = retry.to_vec();
    with_recreate.push("--recreate");
    let run = dir.cmd(&with_recreate);
    run.expect_code(0);
    assert!(run.stdout().contains("succeeded"), "{run}");
    let web = get(&replica, &ns, "deployments", "web").await.unwrap();
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "v2");
    let pvc = get(&replica, &ns, "persistentvolumeclaims", "data")
        .await
        .unwrap();
    assert_eq!(
        pvc["spec"]["storageClassName"], "fast",
        "the PVC was left alone"
    );
}

#[tokio::test]
async fn dry_run_changes_and_records_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("dryrun", &["primary", "replica-1"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    create(&primary, &ns, configmap("planned", json!({"a": "1"}))).await;
    let dir = TestDir::new();
    let run = sync(
        &dir,
        &env,
        "apply",
        &["replica-1"],
        &ns,
        &["--dry-run", "-o", "json"],
    );
    run.expect_code(0);
    let report = replica_report(&run.json(), "replica-1").clone();
    assert_eq!(
        report["created"], 1,
        "the server validated the change: {run}"
    );
    assert!(get(&replica, &ns, "configmaps", "planned").await.is_none());
    let run = dir.cmd(&["jobs", "list", "--db", "jobs.db", "-o", "json"]);
    assert_eq!(run.json(), json!([]), "{run}");
}

#[tokio::test]
async fn a_broken_replica_kubeconfig_fails_alone() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("broken", &["primary"]).await;
    create(
        &env.client("primary").await,
        &ns,
        configmap("a", json!({"a": "1"})),
    )
    .await;
    let dir = TestDir::new();
    dir.write(
        "replicas/broken.kubeconfig",
        "apiVersion: v1\nclusters: [\n",
    );
    std::fs::copy(
        env.kubeconfig("replica-1"),
        dir.path().join("replicas/good.kubeconfig"),
    )
    .unwrap();
    let run = dir.cmd(&[
        "apply",
        "--primary",
        &env.arg("primary"),
        "--replica-dir",
        "replicas",
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
    ]);
    run.expect_code(1);
    let stderr = run.stderr();
    let errors: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("cannot load kubeconfig"))
        .collect();
    assert_eq!(errors.len(), 1, "{run}");
    assert!(
        errors[0].starts_with("broken: replicas/broken.kubeconfig: cannot load kubeconfig"),
        "{run}"
    );
    // Every line is the replica's own: no parser snippet spills over several lines.
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("broken: ") || l.starts_with("good: ")),
        "{run}"
    );
    assert!(
        get(&env.client("replica-1").await, &ns, "configmaps", "a")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_readonly_replica_records_failed_jobs() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("forbidden", &["primary", "replica-2"]).await;
    create(
        &env.client("primary").await,
        &ns,
        configmap("a", json!({"a": "1"})),
    )
    .await;
    let dir = TestDir::new();
    // A read-only primary is enough to read from.
    let readonly_primary = env.readonly_kubeconfig("primary").display().to_string();
    let readonly_replica = format!("ro={}", env.readonly_kubeconfig("replica-2").display());
    let run = dir.cmd(&[
        "apply",
        "--primary",
        &readonly_primary,
        "--source-name",
        "primary",
        "--replica",
        &readonly_replica,
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
    ]);
    run.expect_code(1);
    assert!(run.stderr().contains("403"), "{run}");
    let run = dir.cmd(&[
        "jobs", "list", "--status", "failed", "--db", "jobs.db", "-o", "json",
    ]);
    assert_eq!(run.json().as_array().unwrap().len(), 1, "{run}");
}

#[tokio::test]
async fn archives_only_when_the_primary_changed() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("archive", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("a", json!({"a": "1"}))).await;
    let dir = TestDir::new();
    let archive = ["--archive", "audit"];
    sync(&dir, &env, "apply", &["replica-1"], &ns, &archive).expect_code(0);
    sync(&dir, &env, "apply", &["replica-1"], &ns, &archive).expect_code(0);
    let count = || std::fs::read_dir(dir.path().join("audit")).unwrap().count();
    assert_eq!(count(), 1);
    patch(
        &primary,
        &ns,
        "configmaps",
        "a",
        json!({"data": {"a": "2"}}),
    )
    .await;
    sync(&dir, &env, "apply", &["replica-1"], &ns, &archive).expect_code(0);
    assert_eq!(count(), 2);
    for entry in std::fs::read_dir(dir.path().join("audit")).unwrap() {
        let path = entry.unwrap().path();
        dir.cmd(&["snapshot", "verify", path.to_str().unwrap()])
            .expect_code(0);
    }
    // `snapshot --source KUBECONFIG` writes the same format.
    let run = dir.cmd(&[
        "snapshot",
        "--source",
        &env.arg("primary"),
        "--sync-namespaces",
        &ns,
        "--out",
        "snap",
    ]);
    run.expect_code(0);
    assert!(
        dir.path()
            .join(format!("snap/{ns}/configmaps/a.yaml"))
            .is_file(),
        "{run}"
    );
}

#[tokio::test]
async fn no_adopt_leaves_a_differing_replica_object_alone() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("adopt", &["primary", "replica-1"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    create(
        &primary,
        &ns,
        configmap("shared", json!({"owner": "primary"})),
    )
    .await;
    create(
        &replica,
        &ns,
        configmap("shared", json!({"owner": "replica"})),
    )
    .await;
    let dir = TestDir::new();

    let run = sync(
        &dir,
        &env,
        "apply",
        &["replica-1"],
        &ns,
        &["--no-adopt", "-o", "json"],
    );
    run.expect_code(1);
    assert_eq!(
        replica_report(&run.json(), "replica-1")["conflicts"],
        1,
        "{run}"
    );
    let object = get(&replica, &ns, "configmaps", "shared").await.unwrap();
    assert_eq!(object["data"]["owner"], "replica");

    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);
    let object = get(&replica, &ns, "configmaps", "shared").await.unwrap();
    assert_eq!(object["data"]["owner"], "primary", "adopted by default");
    assert_eq!(
        object["metadata"]["annotations"]["k8s-sync.io/source"],
        env.identity("primary").await.as_str()
    );
}

#[tokio::test]
async fn a_dry_run_into_a_namespace_the_replica_lacks_validates_what_it_can() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("dryrun-new", &["primary"]).await;
    create(
        &env.client("primary").await,
        &ns,
        configmap("planned", json!({"a": "1"})),
    )
    .await;
    let dir = TestDir::new();
    let run = sync(
        &dir,
        &env,
        "apply",
        &["replica-1"],
        &ns,
        &["--dry-run", "-o", "json"],
    );
    run.expect_code(0);
    let report = replica_report(&run.json(), "replica-1").clone();
    assert_eq!(
        (
            report["created"].as_u64(),
            report["unvalidated"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{run}"
    );
    let text = sync(&dir, &env, "apply", &["replica-1"], &ns, &["--dry-run"]);
    text.expect_code(0);
    assert!(text.stderr().contains("not validated"), "{text}");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(env.client("replica-1").await);
    assert!(
        namespaces.get_opt(&ns).await.unwrap().is_none(),
        "a dry run creates nothing"
    );
}

#[tokio::test]
async fn objects_belong_to_the_primary_cluster_itself_however_it_is_reached() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("identity", &["primary", "replica-2"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("ours", json!({"a": "1"}))).await;
    create(
        &primary,
        &ns,
        configmap("shared", json!({"from": "primary"})),
    )
    .await;
    let dir = TestDir::new();
    sync(&dir, &env, "apply", &["replica-1"], &ns, &[]).expect_code(0);

    // The same cluster through a kubeconfig of another name is the same source: nothing to do.
    let other_name = dir.path().join("prod-admin.kubeconfig");
    std::fs::copy(env.kubeconfig("primary"), &other_name).unwrap();
    let again = dir.cmd(&[
        "apply",
        "--primary",
        other_name.to_str().unwrap(),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
        "-o",
        "json",
    ]);
    again.expect_code(0);
    assert_eq!(
        replica_report(&again.json(), "replica-1")["writes"],
        0,
        "{again}"
    );

    // A second primary with an object of the same name: a conflict, never taken over; and it
    // prunes nothing of the first's.
    let other = env.client("replica-2").await;
    create(
        &other,
        &ns,
        configmap("shared", json!({"from": "replica-2"})),
    )
    .await;
    let second = dir.cmd(&[
        "apply",
        "--primary",
        &env.arg("replica-2"),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
        "-o",
        "json",
    ]);
    second.expect_code(1);
    let report = replica_report(&second.json(), "replica-1").clone();
    assert_eq!(
        (report["conflicts"].as_u64(), report["pruned"].as_u64()),
        (Some(1), Some(0)),
        "{second}"
    );
    let replica = env.client("replica-1").await;
    let shared = get(&replica, &ns, "configmaps", "shared").await.unwrap();
    assert_eq!(shared["data"]["from"], "primary");
    assert!(get(&replica, &ns, "configmaps", "ours").await.is_some());
    let diff = dir.cmd(&[
        "diff",
        "--primary",
        &env.arg("replica-2"),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
    ]);
    assert!(diff.stdout().contains("from another source"), "{diff}");
}

#[tokio::test]
async fn objects_written_under_the_old_file_stem_name_keep_their_owner() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("alias", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("kept", json!({"a": "1"}))).await;
    create(&primary, &ns, configmap("dropped", json!({"a": "1"}))).await;
    let dir = TestDir::new();
    // As earlier versions wrote them: named after the kubeconfig's stem, `primary`.
    sync(
        &dir,
        &env,
        "apply",
        &["replica-1"],
        &ns,
        &["--source-name", "primary"],
    )
    .expect_code(0);
    delete(&primary, &ns, "configmaps", "dropped").await;
    let run = sync(&dir, &env, "apply", &["replica-1"], &ns, &["-o", "json"]);
    run.expect_code(0);
    let report = replica_report(&run.json(), "replica-1").clone();
    assert_eq!(
        (
            report["unchanged"].as_u64(),
            report["pruned"].as_u64(),
            report["conflicts"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{run}"
    );
}
