//! End-to-end: one replica's API server down while `watch` runs, on the local control plane.
//! The healthy replica is not held up; the down one gets no per-object request, its work waits
//! (no failed job, no automatic retry spent) and one full pass catches it up when it is back.

mod support;

use serde_json::json;
use support::TestDir;
use support::http::ApiServer;
use support::objects::create;
use support::testenv::{FAULT_CLUSTER, FAULTS, TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, start_watch_with};

#[tokio::test]
async fn a_replica_down_holds_up_no_other_and_its_work_waits_for_it() {
    let Some(env) = TestEnv::get() else { return };
    let _faults = FAULTS.lock().await;
    let ns = env.namespace("replica-down", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("before", json!({"n": "0"}))).await;
    let dir = TestDir::new();
    let replicas = ["replica-1", FAULT_CLUSTER];
    let quick = ["--probe-interval", "1s", "--auto-retries", "1"];
    let daemon = start_watch_with(&dir, &env, "primary", &replicas, &ns, "watch.log", &quick);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    converges(&env, FAULT_CLUSTER, &ns, "before", json!({"n": "0"})).await;

    let stopped = env.stop(FAULT_CLUSTER);
    eventually(DEADLINE, "the outage noticed", || {
        let status = api.get("/api/status").json();
        async move { status["replicas"][1]["reachable"] == false }
    })
    .await;
    for i in 0..5 {
        create(
            &primary,
            &ns,
            configmap(&format!("during-{i}"), json!({"n": i.to_string()})),
        )
        .await;
    }
    for i in 0..5 {
        converges(
            &env,
            "replica-1",
            &ns,
            &format!("during-{i}"),
            json!({"n": i.to_string()}),
        )
        .await;
    }
    eventually(DEADLINE, "the down replica's work queued", || {
        let status = api.get("/api/status").json();
        async move { status["replicas"][1]["queued"] == 5 }
    })
    .await;
    let requests = || {
        let metrics = api.get("/metrics").text();
        ["read", "write"].map(|kind| {
            support::passes::sample(
                &metrics,
                &format!(
                    "k8s_sync_cluster_requests_total{{cluster=\"{FAULT_CLUSTER}\",type=\"{kind}\"}}"
                ),
            )
        })
    };
    let sent = requests();
    for i in 5..8 {
        create(
            &primary,
            &ns,
            configmap(&format!("during-{i}"), json!({"n": i.to_string()})),
        )
        .await;
        converges(
            &env,
            "replica-1",
            &ns,
            &format!("during-{i}"),
            json!({"n": i.to_string()}),
        )
        .await;
    }
    eventually(DEADLINE, "the later work queued too", || {
        let status = api.get("/api/status").json();
        async move { status["replicas"][1]["queued"] == 8 }
    })
    .await;
    assert_eq!(requests(), sent, "no request to a replica known down");
    let failed = api.get("/api/jobs?status=failed").json();
    assert_eq!(
        failed["jobs"],
        json!([]),
        "work for a replica known down fails nothing"
    );
    assert!(
        !api.log().contains("giving up after automatic retries"),
        "no retry is spent on a replica known down\n{}",
        api.log()
    );
    let ready = api.get("/readyz");
    assert_eq!(ready.status, 503, "{ready}");
    assert!(ready.error().contains(FAULT_CLUSTER), "{ready}");

    stopped.start();
    for i in 0..8 {
        converges(
            &env,
            FAULT_CLUSTER,
            &ns,
            &format!("during-{i}"),
            json!({"n": i.to_string()}),
        )
        .await;
    }
    eventually(DEADLINE, "ready again", || {
        let status = api.get("/readyz").status;
        async move { status == 200 }
    })
    .await;
}
