//! End-to-end watch mode on the local control plane: changes on the primary reach the
//! replicas, hand edits are reverted, outages and restarts lose nothing, shutdown drains.
//! Every wait polls with a deadline.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::objects::{create, delete, patch};
use support::testenv::{FAULT_CLUSTER, TestEnv, eventually};
use support::watch::{
    ADMIN_PASSWORD, DEADLINE, configmap, converges, data_of, metric, start_watch, start_watch_with,
};
use support::{TestDir, fixture};
use tokio::sync::RwLock;

/// Tests share the primary; the one that restarts it takes this lock alone.
static PRIMARY: RwLock<()> = RwLock::const_new(());

#[tokio::test]
async fn primary_changes_reach_both_replicas_and_hand_edits_are_reverted() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch", &["primary"]).await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    let daemon = start_watch(&dir, &env, &["replica-1", "replica-2"], &ns, "watch.log");

    create(&primary, &ns, configmap("app", json!({"v": "1"}))).await;
    for replica in ["replica-1", "replica-2"] {
        converges(&env, replica, &ns, "app", json!({"v": "1"})).await;
    }
    patch(
        &primary,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"v": "2"}}),
    )
    .await;
    for replica in ["replica-1", "replica-2"] {
        converges(&env, replica, &ns, "app", json!({"v": "2"})).await;
    }
    // Someone edits a replica's copy: it is put back.
    let replica = env.client("replica-2").await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "app",
        json!({"data": {"v": "hand-edit"}}),
    )
    .await;
    converges(&env, "replica-2", &ns, "app", json!({"v": "2"})).await;

    delete(&primary, &ns, "configmaps", "app").await;
    for replica in ["replica-1", "replica-2"] {
        converges(&env, replica, &ns, "app", Value::Null).await;
    }
    drop(daemon);
}

#[tokio::test]
async fn a_new_namespace_reaches_the_replicas_before_its_objects() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let existing = env.namespace("watch-ns", &["primary"]).await;
    let later = format!("{existing}-later");
    let dir = TestDir::new();
    let namespaces = format!("{existing},{later}");
    let daemon = start_watch(&dir, &env, &["replica-1"], &namespaces, "watch.log");

    let primary = env.client("primary").await;
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": later}})).unwrap();
    kube::Api::all(primary.clone())
        .create(&Default::default(), &namespace)
        .await
        .unwrap();
    create(&primary, &later, configmap("inside", json!({"a": "1"}))).await;
    converges(&env, "replica-1", &later, "inside", json!({"a": "1"})).await;
    drop(daemon);
}

#[tokio::test]
async fn a_replica_that_was_down_catches_up() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-down", &["primary"]).await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    let daemon = start_watch(&dir, &env, &["replica-1", FAULT_CLUSTER], &ns, "watch.log");

    env.script(&["stop-cluster", FAULT_CLUSTER]);
    for i in 0..5 {
        create(
            &primary,
            &ns,
            configmap(&format!("while-down-{i}"), json!({"i": i.to_string()})),
        )
        .await;
    }
    converges(&env, "replica-1", &ns, "while-down-4", json!({"i": "4"})).await;
    env.script(&["start-cluster", FAULT_CLUSTER]);
    for i in 0..5 {
        converges(
            &env,
            FAULT_CLUSTER,
            &ns,
            &format!("while-down-{i}"),
            json!({"i": i.to_string()}),
        )
        .await;
    }
    drop(daemon);
}

#[tokio::test]
async fn changes_after_a_primary_restart_still_propagate() {
    let Some(env) = TestEnv::get() else { return };
    let _alone = PRIMARY.write().await;
    let ns = env.namespace("watch-restart", &["primary"]).await;
    let dir = TestDir::new();
    let daemon = start_watch(&dir, &env, &["replica-1"], &ns, "watch.log");

    env.script(&["stop-cluster", "primary"]);
    env.script(&["start-cluster", "primary"]);
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("after-restart", json!({"a": "1"}))).await;
    converges(&env, "replica-1", &ns, "after-restart", json!({"a": "1"})).await;
    drop(daemon);
}

#[tokio::test]
async fn sigterm_during_a_burst_loses_nothing_and_applies_nothing_twice() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-burst", &["primary"]).await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    let mut daemon = start_watch(&dir, &env, &["replica-1", "replica-2"], &ns, "first.log");

    const COUNT: usize = 150;
    for i in 0..COUNT {
        create(
            &primary,
            &ns,
            configmap(&format!("burst-{i}"), json!({"i": i.to_string()})),
        )
        .await;
        if i == COUNT / 2 {
            daemon.terminate();
        }
    }
    let status = daemon.wait(Duration::from_secs(40));
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    assert!(
        daemon.output().contains("shutting down"),
        "{}",
        daemon.output()
    );

    let restarted = start_watch(&dir, &env, &["replica-1", "replica-2"], &ns, "second.log");
    for replica in ["replica-1", "replica-2"] {
        let client = env.client(replica).await;
        let what = format!("all {COUNT} ConfigMaps on {replica}");
        eventually(DEADLINE, &what, || async {
            let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(client.clone(), &ns);
            api.list(&Default::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0)
                == COUNT
        })
        .await;
    }
    drop(restarted);
    let run = dir.cmd(&[
        "jobs", "list", "--db", "jobs.db", "--limit", "100000", "-o", "json",
    ]);
    let jobs = run.json();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(
        jobs.len(),
        2 * COUNT,
        "one job per object and replica\n{run}"
    );
    for job in jobs {
        assert_eq!(job["runs"], 1, "applied once: {job}");
        assert_eq!(job["status"], "succeeded", "{job}");
    }
}

#[tokio::test]
async fn a_thousand_quick_updates_end_at_the_last_value_with_far_fewer_writes() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-rapid", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("hot", json!({"n": "0"}))).await;
    let dir = TestDir::new();
    let daemon = start_watch(&dir, &env, &["replica-1"], &ns, "watch.log");

    for n in 1..=1000 {
        patch(
            &primary,
            &ns,
            "configmaps",
            "hot",
            json!({"data": {"n": n.to_string()}}),
        )
        .await;
    }
    converges(&env, "replica-1", &ns, "hot", json!({"n": "1000"})).await;
    drop(daemon);
    let run = dir.cmd(&[
        "jobs", "list", "--db", "jobs.db", "--limit", "100000", "-o", "json",
    ]);
    let writes = run.json().as_array().unwrap().len();
    eprintln!("{writes} writes for 1,000 updates");
    assert!(writes < 200, "{writes} writes for 1,000 updates\n{run}");
}

#[test]
fn the_original_flag_form_runs_watch() {
    // Checked offline: without --sync-once the seed form is `watch`, which refuses a directory
    // primary with its own message (a clap error would mean it was not recognised).
    let dir = TestDir::new();
    let primary = fixture("snapshots/primary");
    let run = dir.cmd(&[
        "--primary",
        primary.to_str().unwrap(),
        "--replica",
        primary.to_str().unwrap(),
        "--db",
        "x.db",
    ]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("watch mode needs a kubeconfig"),
        "{run}"
    );
}

#[tokio::test]
async fn watch_serves_readiness_watcher_states_and_metrics() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-api", &["primary"]).await;
    let dir = TestDir::new();
    let mut api =
        support::http::ApiServer::attach(start_watch(&dir, &env, &["replica-1"], &ns, "watch.log"));
    let ready = api.get("/readyz");
    assert_eq!(ready.status, 200, "{ready}");

    api.login_as("admin", ADMIN_PASSWORD);
    let status = api.get("/api/status").json();
    assert_eq!(
        status["watchers"][format!("primary/configmaps/{ns}")]["state"],
        "running",
        "{status}"
    );
    assert_eq!(
        status["watchers"]["replica-1/deployments"]["state"], "running",
        "{status}"
    );
    assert_eq!(status["replicas"][0]["reachable"], true, "{status}");

    create(
        &env.client("primary").await,
        &ns,
        configmap("seen", json!({"a": "1"})),
    )
    .await;
    converges(&env, "replica-1", &ns, "seen", json!({"a": "1"})).await;
    let mut metrics = String::new();
    eventually(DEADLINE, "the propagation to be measured", || {
        metrics = api.get("/metrics").text();
        let seen = metric(&metrics, "k8s_sync_propagation_seconds_count") >= 1.0;
        async move { seen }
    })
    .await;
    assert!(
        metric(&metrics, "k8s_sync_watch_events_total{kind=\"ConfigMap\"") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("k8s_sync_watcher_running{{watcher=\"primary/configmaps/{ns}\"}}")
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn starting_with_several_namespaces_prunes_nothing() {
    // Each namespace has a watcher of its own; the end of one's listing must not count the
    // other namespaces' objects as deleted.
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let first = env.namespace("watch-ns-a", &["primary"]).await;
    let second = env.namespace("watch-ns-b", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &first, configmap("kept", json!({"a": "1"}))).await;
    create(&primary, &second, configmap("kept", json!({"b": "1"}))).await;
    let dir = TestDir::new();
    let namespaces = format!("{first},{second}");
    let daemon = start_watch(&dir, &env, &["replica-1"], &namespaces, "watch.log");
    // A change made after start, processed after every watcher's first listing.
    create(&primary, &second, configmap("later", json!({"c": "1"}))).await;
    converges(&env, "replica-1", &second, "later", json!({"c": "1"})).await;
    let replica = env.client("replica-1").await;
    for (ns, data) in [(&first, json!({"a": "1"})), (&second, json!({"b": "1"}))] {
        assert_eq!(
            data_of(&replica, ns, "kept").await,
            Some(data),
            "{}",
            daemon.output()
        );
    }
    assert!(!daemon.output().contains("Deleted"), "{}", daemon.output());
}

#[tokio::test]
async fn new_objects_are_written_without_reading_the_replicas_first() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-noread", &["primary"]).await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    let replicas = ["replica-1", "replica-2"];
    let api =
        support::http::ApiServer::attach(start_watch(&dir, &env, &replicas, &ns, "watch.log"));
    let requests = |text: &str, cluster: &str, kind: &str| {
        metric(
            text,
            &format!("k8s_sync_cluster_requests_total{{cluster=\"{cluster}\",type=\"{kind}\"}}"),
        )
    };
    let before = api.get("/metrics").text();

    const COUNT: usize = 20;
    for i in 0..COUNT {
        let name = format!("new-{i}");
        create(&primary, &ns, configmap(&name, json!({"i": i.to_string()}))).await;
    }
    for replica in replicas {
        for i in 0..COUNT {
            converges(
                &env,
                replica,
                &ns,
                &format!("new-{i}"),
                json!({"i": i.to_string()}),
            )
            .await;
        }
    }
    let after = api.get("/metrics").text();
    for replica in replicas {
        // The first pass listed the replica and the watch on its managed objects showed no
        // copy since: each object is applied straight away.
        let reads = requests(&after, replica, "read") - requests(&before, replica, "read");
        assert_eq!(reads, 0.0, "{replica}\n{before}\n{after}");
        let writes = requests(&after, replica, "write") - requests(&before, replica, "write");
        assert!(
            writes >= COUNT as f64,
            "{replica}: {writes} writes\n{after}"
        );
    }
}

#[tokio::test]
async fn with_no_adopt_a_copy_made_by_hand_after_start_is_left_alone() {
    // The replica's listing predates the copy: without adoption, the object must be read (or
    // its copy seen by the replica's watcher) before anything is written.
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env
        .namespace("watch-noadopt", &["primary", "replica-1"])
        .await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    // One worker takes the objects in the order the primary made them.
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1", "replica-2"],
        &ns,
        "watch.log",
        &["--no-adopt", "--worker-count", "1"],
    );
    let own = json!({"who": "replica-1"});
    create(
        &env.client("replica-1").await,
        &ns,
        configmap("own", own.clone()),
    )
    .await;
    create(&primary, &ns, configmap("own", json!({"who": "primary"}))).await;
    create(&primary, &ns, configmap("after", json!({"a": "1"}))).await;

    converges(&env, "replica-2", &ns, "own", json!({"who": "primary"})).await;
    converges(&env, "replica-1", &ns, "after", json!({"a": "1"})).await;
    let replica = env.client("replica-1").await;
    assert_eq!(
        data_of(&replica, &ns, "own").await,
        Some(own),
        "{}",
        daemon.output()
    );
}

#[tokio::test]
async fn a_quiet_watch_outlives_the_client_read_timeout() {
    // The client drops a response that sends nothing for 60 s. Watch calls must end sooner on
    // the server's side, or every quiet watcher fails once a minute and /readyz flaps. The
    // source is replica-2, which no test restarts, so this test does not hold the primary.
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("watch-quiet", &["replica-2"]).await;
    let dir = TestDir::new();
    let daemon = start_watch_with(
        &dir,
        &env,
        "replica-2",
        &["replica-1"],
        &ns,
        "watch.log",
        &[],
    );
    let api = support::http::ApiServer::attach(daemon);
    // The quiet spell is what is tested, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let log = api.log();
    assert!(!log.contains("watch failed"), "{log}");
    let ready = api.get("/readyz");
    assert_eq!(ready.status, 200, "{ready}\n{log}");
    let source = env.client("replica-2").await;
    create(&source, &ns, configmap("after-quiet", json!({"a": "1"}))).await;
    converges(&env, "replica-1", &ns, "after-quiet", json!({"a": "1"})).await;
}

#[tokio::test]
async fn the_drift_gauge_says_what_is_out_of_step_now_and_the_pass_time_moves_with_full_passes_only()
 {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env
        .namespace("watch-gauges", &["primary", "replica-1"])
        .await;
    let primary = env.client("primary").await;
    let replica = env.client("replica-1").await;
    for i in 0..3 {
        let name = format!("c-{i}");
        create(&primary, &ns, configmap(&name, json!({"from": "primary"}))).await;
        create(&replica, &ns, configmap(&name, json!({"from": "replica"}))).await;
    }
    let dir = TestDir::new();
    let extra = ["--no-adopt", "--resync-interval", "1h"];
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &extra,
    );
    let mut api = support::http::ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    let gauge = |metrics: &str, name: &str| {
        support::passes::sample(metrics, &format!("{name}{{replica=\"replica-1\"}}"))
    };
    let metrics = api.get("/metrics").text();
    assert_eq!(
        gauge(&metrics, "k8s_sync_drifted_objects"),
        Some(3.0),
        "{metrics}"
    );
    let passed = gauge(&metrics, "k8s_sync_last_successful_pass_timestamp_seconds").unwrap();
    // Let the clock pass the full pass's second, so that a pass now would show.
    eventually(DEADLINE, "the next second", || async move {
        (jiff::Timestamp::now().as_second() as f64) > passed
    })
    .await;
    for name in ["d-0", "d-1"] {
        create(&primary, &ns, configmap(name, json!({"n": "1"}))).await;
        converges(&env, "replica-1", &ns, name, json!({"n": "1"})).await;
    }
    eventually(DEADLINE, "both propagations measured", || {
        let metrics = api.get("/metrics").text();
        async move { metric(&metrics, "k8s_sync_propagation_seconds_count") >= 2.0 }
    })
    .await;
    let metrics = api.get("/metrics").text();
    assert_eq!(
        gauge(&metrics, "k8s_sync_drifted_objects"),
        Some(3.0),
        "per-object passes leave the three conflicts counted: {metrics}"
    );
    assert_eq!(
        gauge(&metrics, "k8s_sync_last_successful_pass_timestamp_seconds"),
        Some(passed),
        "only a full pass moves it"
    );
    assert_eq!(
        gauge(&metrics, "k8s_sync_replication_lag_seconds"),
        Some(0.0),
        "{metrics}"
    );
    let status = api.get("/api/status").json();
    assert_eq!(status["replicas"][0]["drifted"], 3, "{status}");
}

#[tokio::test]
async fn a_resync_plans_against_the_primarys_store_and_never_lists_it() {
    let Some(env) = TestEnv::get() else { return };
    let _shared = PRIMARY.read().await;
    let ns = env.namespace("watch-store", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("a", json!({"n": "1"}))).await;
    let dir = TestDir::new();
    let extra = ["--resync-interval", "1s"];
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &extra,
    );
    let api = support::http::ApiServer::attach(daemon);
    let reads = || {
        let metrics = api.get("/metrics").text();
        support::passes::sample(
            &metrics,
            "k8s_sync_cluster_requests_total{cluster=\"primary\",type=\"read\"}",
        )
    };
    let before = reads();
    let resyncs = api.log().matches("resync: full pass").count();
    eventually(DEADLINE, "two resyncs", || {
        let now = api.log().matches("resync: full pass").count();
        async move { now >= resyncs + 2 }
    })
    .await;
    assert_eq!(
        reads(),
        before,
        "a resync read the primary beside its store"
    );
    // The store stays fed by the watch: a change still arrives.
    patch(
        &primary,
        &ns,
        "configmaps",
        "a",
        json!({"data": {"n": "2"}}),
    )
    .await;
    converges(&env, "replica-1", &ns, "a", json!({"n": "2"})).await;
}
