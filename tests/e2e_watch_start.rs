//! Watch mode starting on replicas that hold copies already, on the local control plane: the
//! first full pass plans from what the replicas' watchers listed (and saw since), reads no
//! replica a second time, and still mends what changed while nothing ran. Every wait polls
//! with a deadline. One test stops the fault cluster, which no other test here uses.

mod support;

use serde_json::{Value, json};
use support::objects::{create, delete, get, patch};
use support::passes::pass;
use support::testenv::{FAULT_CLUSTER, TestEnv, eventually};
use support::watch::{
    ADMIN_PASSWORD, DEADLINE, configmap, converges, data_of, metric, start_watch_unready,
    start_watch_with,
};
use support::{TestDir, http::ApiServer};

/// The reads k8s-sync made of `cluster` so far, from its own counter.
fn reads(api: &ApiServer, cluster: &str) -> f64 {
    metric(
        &api.get("/metrics").text(),
        &format!("k8s_sync_cluster_requests_total{{cluster=\"{cluster}\",type=\"read\"}}"),
    )
}

/// `watch` from the primary to replica-1 over `ns` with its own job database, ready.
fn watch_replica_1(dir: &TestDir, env: &TestEnv, ns: &str, extra: &[&str]) -> ApiServer {
    let extra = [extra, &["--db", "watch.db"]].concat();
    let daemon = start_watch_with(dir, env, "primary", &["replica-1"], ns, "watch.log", &extra);
    ApiServer::attach(daemon)
}

/// The first full pass planned replica-1 from its watchers' listing.
fn planned_from_the_listing(api: &ApiServer) {
    let log = api.log();
    assert!(
        log.contains("first pass: the replica as its watchers listed it"),
        "{log}"
    );
}

#[tokio::test]
async fn a_replica_with_copies_is_planned_from_its_watchers_listing_and_mended() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("watch-start", &["primary"]).await;
    let primary = env.client("primary").await;
    for (name, v) in [("kept", "1"), ("edited", "1"), ("gone", "1")] {
        create(&primary, &ns, configmap(name, json!({"v": v}))).await;
    }
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);

    // While nothing runs: a hand edit of a copy, an object gone from the primary, a new one.
    let replica = env.client("replica-1").await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "edited",
        json!({"data": {"v": "by hand"}}),
    )
    .await;
    delete(&primary, &ns, "configmaps", "gone").await;
    create(&primary, &ns, configmap("new", json!({"v": "1"}))).await;

    let api = watch_replica_1(&dir, &env, &ns, &["--max-prune", "5"]);
    converges(&env, "replica-1", &ns, "edited", json!({"v": "1"})).await;
    converges(&env, "replica-1", &ns, "gone", Value::Null).await;
    converges(&env, "replica-1", &ns, "new", json!({"v": "1"})).await;
    assert_eq!(
        data_of(&replica, &ns, "kept").await,
        Some(json!({"v": "1"}))
    );
    planned_from_the_listing(&api);
    // Its namespaces alone: a listing of the replica's objects would read each kind too.
    assert_eq!(
        reads(&api, "replica-1"),
        1.0,
        "the first pass listed the replica beside its watchers\n{}",
        api.log()
    );
}

#[tokio::test]
async fn a_copy_made_by_hand_before_start_is_in_the_first_passs_listing() {
    // The watchers list every object of the synced kinds, not only k8s-sync's copies: without
    // adoption, a copy made by hand before start must be found and left alone, not written
    // over as an object the replica lacks.
    let Some(env) = TestEnv::get() else { return };
    let ns = env
        .namespace("watch-start-own", &["primary", "replica-1"])
        .await;
    let primary = env.client("primary").await;
    let replica = env.client("replica-1").await;
    create(&primary, &ns, configmap("synced", json!({"v": "1"}))).await;
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);
    let own = json!({"who": "replica-1"});
    create(&replica, &ns, configmap("own", own.clone())).await;
    create(&primary, &ns, configmap("own", json!({"who": "primary"}))).await;

    let api = watch_replica_1(&dir, &env, &ns, &["--no-adopt"]);
    planned_from_the_listing(&api);
    let copy = get(&replica, &ns, "configmaps", "own")
        .await
        .expect("the copy made by hand is there");
    assert_eq!(copy["data"], own, "{}", api.log());
    assert!(
        copy["metadata"]["labels"]["k8s-sync.io/managed"].is_null(),
        "{copy}"
    );
}

#[tokio::test]
async fn what_a_replica_holds_after_its_listing_is_what_the_first_pass_plans_from() {
    // The primary is down at start: the replica's watchers list it long before the first pass.
    // A copy made by hand meanwhile must be in what that pass plans from, or it would be
    // written over as an object the replica lacks.
    let Some(env) = TestEnv::get() else { return };
    let primary = FAULT_CLUSTER;
    let ns = env.namespace("watch-start-late", &[primary]).await;
    let source = env.client(primary).await;
    create(&source, &ns, configmap("synced", json!({"v": "1"}))).await;
    let dir = TestDir::new();
    // Named by hand: the source's name is known without asking the primary.
    let named = ["--source-name", "start-source"];
    pass(&dir, &env, "apply", primary, &["replica-1"], &ns, &named).expect_code(0);
    create(&source, &ns, configmap("own", json!({"who": "primary"}))).await;

    let stopped = env.stop(primary);
    let args = [&named[..], &["--no-adopt", "--probe-interval", "1s"]].concat();
    let daemon = start_watch_unready(&dir, &env, primary, &["replica-1"], &ns, "watch.log", &args);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    eventually(DEADLINE, "the replica's watchers listed it", || {
        let status = api.get("/api/status").json();
        async move { status["watchers"]["replica-1/configmaps"]["state"] == "running" }
    })
    .await;
    let replica = env.client("replica-1").await;
    let own = json!({"who": "replica-1"});
    create(&replica, &ns, configmap("own", own.clone())).await;

    stopped.start();
    eventually(DEADLINE, "ready", || {
        let status = api.get("/readyz").status;
        async move { status == 200 }
    })
    .await;
    planned_from_the_listing(&api);
    let copy = get(&replica, &ns, "configmaps", "own")
        .await
        .expect("the copy made by hand is there");
    assert_eq!(copy["data"], own, "{}", api.log());
    assert_eq!(
        data_of(&replica, &ns, "synced").await,
        Some(json!({"v": "1"}))
    );
}
