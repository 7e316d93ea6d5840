//! End-to-end crash consistency on the local control plane: `kill -9` of `apply` and of
//! `watch` in the middle of a burst, then a rerun: every object ends in step, no job is left
//! running, and the rerun writes only what the killed run had not written. And a process's
//! `running` jobs are its own: another command on the same database leaves them alone.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::TestDir;
use support::daemon::Daemon;
use support::http::ApiServer;
use support::objects::create;
use support::passes::{configmaps, jobs, objects, pass, sample};
use support::testenv::{FAULT_CLUSTER, FAULTS, TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, start_watch_with};

const BURST: usize = 300;

fn resource_versions(objects: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|(name, o)| {
            let rv = o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            (name.clone(), rv.to_string())
        })
        .collect()
}

/// Kills `daemon` once `replica` holds at least a sixth of the burst in `ns`, and returns the
/// copies there then.
async fn kill_mid_burst(
    daemon: &mut Daemon,
    env: &TestEnv,
    replica: &str,
    ns: &str,
) -> BTreeMap<String, String> {
    let client = env.client(replica).await;
    eventually(DEADLINE, "a sixth of the burst written", || async {
        objects(&client, ns, "configmaps").await.len() >= BURST / 6
    })
    .await;
    daemon.kill();
    let written = resource_versions(&objects(&client, ns, "configmaps").await);
    assert!(written.len() < BURST, "killed after the burst was done");
    written
}

/// What a rerun must show: every object in step, none of those already written rewritten, and
/// `writes` (the rerun's write requests) only for the rest. One request may have been in flight
/// at the kill, and land after the copies were counted: the one worker of the killed run.
async fn check_rerun(env: &TestEnv, ns: &str, before: &BTreeMap<String, String>, writes: usize) {
    let after = resource_versions(&objects(&env.client("replica-1").await, ns, "configmaps").await);
    assert_eq!(after.len(), BURST);
    for (name, rv) in before {
        assert_eq!(&after[name], rv, "{name} was written again");
    }
    let missing = BURST - before.len();
    assert!(
        writes == missing || writes + 1 == missing,
        "{writes} writes for {missing} missing objects"
    );
}

#[tokio::test]
async fn a_killed_apply_is_completed_by_a_rerun_that_writes_only_what_was_left() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("crash-apply", &["primary"]).await;
    configmaps(&env.client("primary").await, &ns, "cm", BURST).await;
    let dir = TestDir::new();
    let args = [
        "apply",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
        "--worker-count",
        "1",
    ];
    let mut daemon = Daemon::start(&dir, "apply.log", &args, &[]);
    let before = kill_mid_burst(&mut daemon, &env, "replica-1", &ns).await;

    let rerun = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-1"],
        &ns,
        &["-o", "json"],
    );
    rerun.expect_code(0);
    let report = &rerun.json()["replicas"][0];
    let writes = report["writes"].as_u64().unwrap() as usize;
    check_rerun(&env, &ns, &before, writes).await;
    assert_eq!(
        report["created"].as_u64().unwrap() as usize,
        writes,
        "{rerun}"
    );
    assert!(
        jobs(&dir, &["--status", "running"]).is_empty(),
        "no job left running"
    );
    assert!(
        jobs(&dir, &["--status", "pending"]).is_empty(),
        "no job left pending"
    );
}

#[tokio::test]
async fn a_killed_watch_is_completed_by_a_restart_that_writes_only_what_was_left() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("crash-watch", &["primary"]).await;
    let dir = TestDir::new();
    let one_worker = ["--worker-count", "1"];
    let watch = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch-1.log",
        &one_worker,
    );
    let mut daemon = watch;
    configmaps(&env.client("primary").await, &ns, "cm", BURST).await;
    let before = kill_mid_burst(&mut daemon, &env, "replica-1", &ns).await;

    let restarted = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch-2.log",
        &one_worker,
    );
    let mut api = ApiServer::attach(restarted);
    api.login_as("admin", ADMIN_PASSWORD);
    converges(
        &env,
        "replica-1",
        &ns,
        &format!("cm-{:03}", BURST - 1),
        json!({"n": (BURST - 1).to_string()}),
    )
    .await;
    let metrics = api.get("/metrics").text();
    let writes = sample(
        &metrics,
        "k8s_sync_cluster_requests_total{cluster=\"replica-1\",type=\"write\"}",
    )
    .unwrap_or_default() as usize;
    check_rerun(&env, &ns, &before, writes).await;
    let running = api.get("/api/jobs?status=running").json();
    assert_eq!(running["jobs"], json!([]), "no job left running");
}

#[tokio::test]
async fn an_apply_next_to_a_live_watch_leaves_the_watchs_running_jobs_alone() {
    let Some(env) = TestEnv::get() else { return };
    let _faults = FAULTS.lock().await;
    let ns = env.namespace("owners", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("a", json!({"n": "a"}))).await;
    let dir = TestDir::new();
    let replicas = ["replica-1", FAULT_CLUSTER];
    let mut watch = start_watch_with(&dir, &env, "primary", &replicas, &ns, "watch.log", &[]);
    converges(&env, FAULT_CLUSTER, &ns, "a", json!({"n": "a"})).await;

    // A write to a hung replica: the watch's job stays running.
    let frozen = env.freeze(FAULT_CLUSTER);
    create(&primary, &ns, configmap("b", json!({"n": "b"}))).await;
    let running_on_hung = || {
        jobs(&dir, &["--status", "running"])
            .into_iter()
            .filter(|j| j["replica"] == FAULT_CLUSTER && j["name"] == "b")
            .count()
    };
    eventually(DEADLINE, "the watch's write to the hung replica", || {
        let running = running_on_hung();
        async move { running == 1 }
    })
    .await;
    let beside = pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]);
    beside.expect_code(0);
    assert_eq!(
        running_on_hung(),
        1,
        "the live watch's job was reset\n{beside}"
    );

    // Once the watch is gone, the next command settles its job.
    watch.kill();
    drop(frozen);
    let after = pass(&dir, &env, "apply", "primary", &replicas, &ns, &[]);
    after.expect_code(0);
    assert_eq!(running_on_hung(), 0, "{after}");
    converges(&env, FAULT_CLUSTER, &ns, "b", json!({"n": "b"})).await;
}
