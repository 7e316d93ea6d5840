//! Watch mode starting on replicas that hold copies already, on the local control plane: the
//! first full pass plans from what the replicas' watchers listed, reads no replica a second
//! time, and still mends what changed while nothing ran. Every wait polls with a deadline.

mod support;

use serde_json::{Value, json};
use support::objects::{create, delete, get, patch};
use support::passes::pass;
use support::testenv::TestEnv;
use support::watch::{configmap, converges, data_of, metric, start_watch_with};
use support::{TestDir, http::ApiServer};

/// The reads k8s-sync made of `cluster` so far, from its own counter.
fn reads(api: &ApiServer, cluster: &str) -> f64 {
    metric(
        &api.get("/metrics").text(),
        &format!("k8s_sync_cluster_requests_total{{cluster=\"{cluster}\",type=\"read\"}}"),
    )
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

    let extra = ["--max-prune", "5", "--db", "watch.db"];
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &extra,
    );
    let api = ApiServer::attach(daemon);
    converges(&env, "replica-1", &ns, "edited", json!({"v": "1"})).await;
    converges(&env, "replica-1", &ns, "gone", Value::Null).await;
    converges(&env, "replica-1", &ns, "new", json!({"v": "1"})).await;
    assert_eq!(
        data_of(&replica, &ns, "kept").await,
        Some(json!({"v": "1"}))
    );
    let log = api.log();
    assert!(
        log.contains("first pass: the replica as its watchers listed it"),
        "{log}"
    );
    // Its namespaces alone: a listing of the replica's objects would read each kind too.
    assert_eq!(
        reads(&api, "replica-1"),
        1.0,
        "the first pass listed the replica beside its watchers\n{log}"
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

    let extra = ["--no-adopt", "--db", "watch.db"];
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &extra,
    );
    let api = ApiServer::attach(daemon);
    assert!(
        api.log()
            .contains("first pass: the replica as its watchers listed it"),
        "{}",
        api.log()
    );
    let copy = get(&replica, &ns, "configmaps", "own")
        .await
        .expect("the copy made by hand is there");
    assert_eq!(copy["data"], own, "{}", api.log());
    assert!(
        copy["metadata"]["labels"]["k8s-sync.io/managed"].is_null(),
        "{copy}"
    );
}
