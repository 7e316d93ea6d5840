//! End-to-end: no flapping from manifests as people write them, nor across Kubernetes versions.
//! The local control plane runs v1.37 everywhere but on replica-4, which runs v1.34. Right
//! after `apply`, `diff` exits 0 and a second `apply` writes nothing: from a directory of
//! hand-written manifests to either server version, from a newer primary to an older replica,
//! and from an older primary to a newer one.

mod support;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use support::objects::{create, patch};
use support::passes::pass;
use support::testenv::{OLD_CLUSTER, TestEnv};
use support::{Run, TestDir};

const MANIFESTS: &str = "manifests/handwritten";
/// The namespace the fixtures are written for.
const FIXTURE_NAMESPACE: &str = "hand-written";

/// The hand-written manifests, copied into `dir/manifests` for namespace `ns`.
fn manifests_for(dir: &TestDir, ns: &str) -> PathBuf {
    let copy = dir.copy_fixture(MANIFESTS, "manifests");
    for entry in walkdir::WalkDir::new(&copy) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let text = text.replace(
                &format!("namespace: {FIXTURE_NAMESPACE}"),
                &format!("namespace: {ns}"),
            );
            std::fs::write(entry.path(), text).unwrap();
        }
    }
    copy
}

/// Every object of the manifests in `dir`, `List`s expanded.
fn objects_in(dir: &Path) -> Vec<Value> {
    let mut objects = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            match value.get("kind").and_then(Value::as_str) {
                None => {}
                Some("List") => objects.extend(value["items"].as_array().unwrap().iter().cloned()),
                Some(_) => objects.push(value),
            }
        }
    }
    objects
}

/// Creates the hand-written objects on `cluster` in `ns`, as `kubectl create -f` would.
async fn create_manifests(env: &TestEnv, cluster: &str, ns: &str, dir: &Path) {
    let client = env.client(cluster).await;
    for object in objects_in(dir) {
        create(&client, ns, object).await;
    }
}

fn writes_of(run: &Run) -> u64 {
    run.json()["replicas"][0]["writes"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// `apply`, then `diff` finds nothing and a second `apply` writes nothing; returns the three runs.
fn converges(dir: &TestDir, env: &TestEnv, primary: &str, replica: &str, ns: &str) -> [Run; 3] {
    let first = sync(dir, env, "apply", primary, replica, ns, &["-o", "json"]);
    first.expect_code(0);
    let diff = sync(dir, env, "diff", primary, replica, ns, &[]);
    diff.expect_code(0);
    let second = sync(dir, env, "apply", primary, replica, ns, &["-o", "json"]);
    second.expect_code(0);
    assert_eq!(writes_of(&second), 0, "{second}");
    [first, diff, second]
}

/// A pass from `primary` (a cluster name or a directory) to `replica`.
fn sync(
    dir: &TestDir,
    env: &TestEnv,
    command: &str,
    primary: &str,
    replica: &str,
    ns: &str,
    extra: &[&str],
) -> Run {
    if Path::new(primary).is_dir() {
        let mut args = vec![command, "--primary", primary];
        let replica = env.arg(replica);
        args.extend([
            "--replica",
            &replica,
            "--sync-namespaces",
            ns,
            "--db",
            "jobs.db",
        ]);
        args.extend_from_slice(extra);
        return dir.cmd(&args);
    }
    pass(dir, env, command, primary, &[replica], ns, extra)
}

#[tokio::test]
async fn hand_written_manifests_converge_on_either_server_version() {
    let Some(env) = TestEnv::get() else { return };
    for replica in ["replica-1", OLD_CLUSTER] {
        let ns = env.namespace("handwritten", &[]).await;
        let dir = TestDir::new();
        let manifests = manifests_for(&dir, &ns);
        let primary = manifests.to_str().unwrap();
        let [first, _, _] = converges(&dir, &env, primary, replica, &ns);
        let report = &first.json()["replicas"][0];
        assert_eq!(report["created"], 40, "{first}");

        // Offline, between the directory and a snapshot of the replica, too.
        let snapshot = dir.cmd(&[
            "snapshot",
            "--source",
            &env.arg(replica),
            "--sync-namespaces",
            &ns,
            "--out",
            "snap",
        ]);
        snapshot.expect_code(0);
        let offline = dir.cmd(&["diff", "--primary", primary, "--replica", "snap", "-q"]);
        offline.expect_code(0);
    }
}

#[tokio::test]
async fn a_newer_primary_and_an_older_replica_converge_both_ways() {
    let Some(env) = TestEnv::get() else { return };
    let dir = TestDir::new();
    for (primary, replica) in [("primary", OLD_CLUSTER), (OLD_CLUSTER, "replica-1")] {
        let ns = env.namespace("versions", &[primary]).await;
        let manifests = manifests_for(&dir, &ns);
        create_manifests(&env, primary, &ns, &manifests).await;
        let [first, _, second] = converges(&dir, &env, primary, replica, &ns);
        assert_eq!(first.json()["replicas"][0]["created"], 40, "{first}");
        if primary == "primary" {
            // v1.37 defaults each StatefulSet's updateStrategy.rollingUpdate.maxUnavailable,
            // which v1.34 does not keep: the subset check suspects all six, the server clears
            // them.
            assert_eq!(
                second.json()["replicas"][0]["verdicts_asked"],
                6,
                "{second}"
            );
        }
        // What the replica's server stores its own way was asked about once, then remembered.
        let third = sync(&dir, &env, "apply", primary, replica, &ns, &["-o", "json"]);
        third.expect_code(0);
        assert_eq!(
            third.json()["replicas"][0]["verdicts_asked"],
            0,
            "{second}\n{third}"
        );
    }
}

#[tokio::test]
async fn diff_says_which_check_found_drift_and_what_differs_after_the_servers_verdict() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("verdict", &["primary"]).await;
    let primary = env.client("primary").await;
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
        "data": {"mode": "on", "level": "info"}});
    create(&primary, &ns, config).await;
    let dir = TestDir::new();
    sync(&dir, &env, "apply", "primary", "replica-1", &ns, &[]).expect_code(0);
    let replica = env.client("replica-1").await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"mode": "off"}}),
    )
    .await;
    let run = sync(
        &dir,
        &env,
        "diff",
        "primary",
        "replica-1",
        &ns,
        &["-o", "json"],
    );
    run.expect_code(1);
    let change = &run.json()["replicas"][0]["changes"][0];
    assert_eq!(change["found_by"], json!(["subset", "server"]), "{run}");
    assert_eq!(change["changed_paths"], json!(["data.mode"]), "{run}");
}

#[tokio::test]
async fn a_diff_that_may_not_ask_the_server_says_so_once_and_keeps_the_subset_verdict() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("no-verdict", &["primary"]).await;
    let primary = env.client("primary").await;
    for name in ["a", "b"] {
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"}});
        create(&primary, &ns, config).await;
    }
    let dir = TestDir::new();
    sync(&dir, &env, "apply", "primary", "replica-1", &ns, &[]).expect_code(0);
    let replica = env.client("replica-1").await;
    for name in ["a", "b"] {
        patch(
            &replica,
            &ns,
            "configmaps",
            name,
            json!({"data": {"k": "edited"}}),
        )
        .await;
    }
    let readonly = env.readonly_kubeconfig("replica-1");
    let run = dir.cmd(&[
        "diff",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &format!("replica-1={}", readonly.display()),
        "--sync-namespaces",
        &ns,
        "-q",
    ]);
    run.expect_code(1);
    assert!(run.stdout().contains("2 to update"), "{run}");
    let notes = run
        .stderr()
        .lines()
        .filter(|l| l.contains("verdict") && l.contains("not available"))
        .count();
    assert_eq!(notes, 1, "said once for the replica\n{run}");
}

#[tokio::test]
async fn a_watch_started_on_a_database_with_the_verdicts_asks_nothing_again() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("verdict-restart", &["primary"]).await;
    let dir = TestDir::new();
    let manifests = manifests_for(&dir, &ns);
    create_manifests(&env, "primary", &ns, &manifests).await;
    converges(&dir, &env, "primary", OLD_CLUSTER, &ns);
    let daemon = support::watch::start_watch_with(
        &dir,
        &env,
        "primary",
        &[OLD_CLUSTER],
        &ns,
        "watch.log",
        &[],
    );
    let api = support::http::ApiServer::attach(daemon);
    let metrics = api.get("/metrics").text();
    let writes = support::passes::sample(
        &metrics,
        &format!("k8s_sync_cluster_requests_total{{cluster=\"{OLD_CLUSTER}\",type=\"write\"}}"),
    );
    assert_eq!(
        writes,
        Some(0.0),
        "no dry-run nor write: the verdicts were remembered\n{metrics}"
    );
    let drifted = support::passes::sample(
        &metrics,
        &format!("k8s_sync_drifted_objects{{replica=\"{OLD_CLUSTER}\"}}"),
    );
    assert_eq!(drifted, Some(0.0), "{metrics}");
}
