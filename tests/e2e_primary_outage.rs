//! End-to-end: the primary's API server down (stopped) while `watch` starts or runs, on the
//! local control plane. The primary of these tests is the cluster reserved for faults; each
//! test holds the fault lock. Nothing may be pruned or reverted on a replica until the primary
//! is listed in full again; then one full pass catches up.

mod support;

use serde_json::{Value, json};
use support::TestDir;
use support::http::ApiServer;
use support::objects::{create, delete, get, patch};
use support::passes::{configmaps, objects, pass, sample};
use support::testenv::{FAULT_CLUSTER, FAULTS, TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, start_watch_unready};

/// Flags that make a watch notice outages and resync within seconds.
const QUICK: &[&str] = &["--probe-interval", "1s", "--resync-interval", "2s"];

fn drifted(api: &ApiServer, replica: &str) -> Option<f64> {
    sample(
        &api.get("/metrics").text(),
        &format!("k8s_sync_drifted_objects{{replica=\"{replica}\"}}"),
    )
}

async fn data(env: &TestEnv, cluster: &str, ns: &str, name: &str) -> Option<Value> {
    get(&env.client(cluster).await, ns, "configmaps", name)
        .await
        .map(|o| o["data"]["n"].clone())
}

#[tokio::test]
async fn watch_started_while_the_primary_is_down_prunes_and_reverts_nothing_until_it_is_back() {
    let Some(env) = TestEnv::get() else { return };
    let _faults = FAULTS.lock().await;
    let primary = FAULT_CLUSTER;
    let ns = env.namespace("dr-start", &[primary]).await;
    configmaps(&env.client(primary).await, &ns, "cm", 30).await;
    let dir = TestDir::new();
    let replicas = ["replica-1", "replica-2"];
    // Named by hand, so that the source's name is known without asking the primary: what
    // holds the writes back is that nothing was listed.
    let named = ["--source-name", "dr-source"];
    pass(&dir, &env, "apply", primary, &replicas, &ns, &named).expect_code(0);

    let stopped = env.stop(primary);
    let args = [QUICK, &named[..]].concat();
    let daemon = start_watch_unready(&dir, &env, primary, &replicas, &ns, "watch.log", &args);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    let one = env.client("replica-1").await;
    let two = env.client("replica-2").await;
    // As a controller or a person on the DR site would: three copies changed, one deleted.
    for name in ["cm-001", "cm-002", "cm-003"] {
        patch(
            &one,
            &ns,
            "configmaps",
            name,
            json!({"data": {"n": "edited"}}),
        )
        .await;
    }
    delete(&two, &ns, "configmaps", "cm-010").await;
    eventually(DEADLINE, "the edits seen and left waiting", || {
        let seen = (drifted(&api, "replica-1"), drifted(&api, "replica-2"));
        async move { seen == (Some(3.0), Some(1.0)) }
    })
    .await;
    let ready = api.get("/readyz");
    assert_eq!(ready.status, 503, "{ready}");
    assert!(ready.error().contains("unreachable"), "{ready}");
    let status = api.get("/api/status").json();
    assert_eq!(status["primary"]["reachable"], false, "{status}");
    assert_eq!(status["primary"]["authoritative"], false, "{status}");
    let metrics = api.get("/metrics").text();
    assert_eq!(
        sample(&metrics, "k8s_sync_primary_reachable"),
        Some(0.0),
        "{metrics}"
    );
    // A replica that comes back meanwhile is caught up without a single write.
    {
        let frozen = env.freeze("replica-2");
        eventually(DEADLINE, "replica-2 seen down", || {
            let down = api.get("/api/status").json()["replicas"][1]["reachable"] == false;
            async move { down }
        })
        .await;
        drop(frozen);
    }
    eventually(DEADLINE, "replica-2 caught up", || {
        let up = api.get("/api/status").json()["replicas"][1]["reachable"] == true;
        async move { up }
    })
    .await;
    // `/retry` of a failed job waits too: nothing may be written for the kind now.
    let failed = {
        let store = k8s_sync::store::Store::open(&dir.path().join("jobs.db")).unwrap();
        let key = format!("sha256:{:064x}", 1);
        let id = store
            .begin(&k8s_sync::store::NewJob {
                replica: "replica-1",
                kind: "ConfigMap",
                namespace: &ns,
                name: "cm-001",
                operation: k8s_sync::store::Operation::Apply,
                change_key: &key,
                action: "update",
                options: None,
            })
            .unwrap();
        store
            .finish(id, Err("forbidden"), 1, std::time::Duration::ZERO)
            .unwrap();
        id
    };
    let retried = api.request("POST", &format!("/retry?jobid={failed}"), None);
    assert_eq!(retried.status, 503, "{retried}");
    assert!(
        retried.error().contains("may not drive writes"),
        "{retried}"
    );
    // `jobs retry` lists the primary itself: it fails and writes nothing.
    let retried = dir.cmd(&[
        "jobs",
        "retry",
        "1",
        "--primary",
        &env.arg(primary),
        "--replica",
        &env.arg("replica-1"),
        "--db",
        "jobs.db",
    ]);
    retried.expect_code(2);
    assert_eq!(objects(&one, &ns, "configmaps").await.len(), 30);
    assert_eq!(objects(&two, &ns, "configmaps").await.len(), 29);
    for name in ["cm-001", "cm-002", "cm-003"] {
        assert_eq!(
            data(&env, "replica-1", &ns, name).await,
            Some(json!("edited"))
        );
    }
    let log = api.log();
    let outages = log
        .lines()
        .filter(|l| l.contains("cluster unreachable") && l.contains(primary))
        .count();
    assert_eq!(outages, 1, "one line per change of state\n{log}");
    assert!(
        !log.contains("ERROR"),
        "no line per failed request or watcher retry\n{log}"
    );

    stopped.start();
    eventually(DEADLINE, "ready once the primary is listed in full", || {
        let status = api.get("/readyz").status;
        async move { status == 200 }
    })
    .await;
    for (name, n) in [("cm-001", "1"), ("cm-002", "2"), ("cm-003", "3")] {
        converges(&env, "replica-1", &ns, name, json!({ "n": n })).await;
    }
    converges(&env, "replica-2", &ns, "cm-010", json!({"n": "10"})).await;
    assert_eq!(objects(&one, &ns, "configmaps").await.len(), 30);
    assert_eq!(drifted(&api, "replica-1"), Some(0.0));
    assert_eq!(
        sample(&api.get("/metrics").text(), "k8s_sync_primary_reachable"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_restart_of_the_primary_during_watch_loses_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let _faults = FAULTS.lock().await;
    let primary = FAULT_CLUSTER;
    let ns = env.namespace("dr-restart", &[primary]).await;
    let source = env.client(primary).await;
    configmaps(&source, &ns, "cm", 10).await;
    let dir = TestDir::new();
    let daemon = start_watch_unready(&dir, &env, primary, &["replica-1"], &ns, "watch.log", QUICK);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    eventually(DEADLINE, "ready", || {
        let status = api.get("/readyz").status;
        async move { status == 200 }
    })
    .await;
    let replica = env.client("replica-1").await;
    converges(&env, "replica-1", &ns, "cm-009", json!({"n": "9"})).await;

    let stopped = env.stop(primary);
    eventually(DEADLINE, "the outage noticed", || {
        let status = api.get("/readyz");
        async move { status.status == 503 && status.error().contains("unreachable") }
    })
    .await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "cm-001",
        json!({"data": {"n": "edited"}}),
    )
    .await;
    delete(&replica, &ns, "configmaps", "cm-002").await;
    eventually(
        DEADLINE,
        "the replica's changes seen and left waiting",
        || {
            let seen = drifted(&api, "replica-1") == Some(2.0);
            async move { seen }
        },
    )
    .await;
    // Resyncs run meanwhile, and do nothing either.
    let before = api.log().matches("resync: full pass").count();
    eventually(DEADLINE, "two resyncs while the primary is down", || {
        let resyncs = api.log().matches("resync: full pass").count();
        async move { resyncs >= before + 2 }
    })
    .await;
    assert_eq!(
        objects(&replica, &ns, "configmaps").await.len(),
        9,
        "nothing pruned"
    );
    assert_eq!(
        data(&env, "replica-1", &ns, "cm-001").await,
        Some(json!("edited"))
    );

    stopped.start();
    eventually(DEADLINE, "ready again", || {
        let status = api.get("/readyz").status;
        async move { status == 200 }
    })
    .await;
    create(&source, &ns, configmap("cm-new", json!({"n": "new"}))).await;
    patch(
        &source,
        &ns,
        "configmaps",
        "cm-003",
        json!({"data": {"n": "changed"}}),
    )
    .await;
    delete(&source, &ns, "configmaps", "cm-004").await;
    converges(&env, "replica-1", &ns, "cm-new", json!({"n": "new"})).await;
    converges(&env, "replica-1", &ns, "cm-003", json!({"n": "changed"})).await;
    converges(&env, "replica-1", &ns, "cm-004", Value::Null).await;
    converges(&env, "replica-1", &ns, "cm-001", json!({"n": "1"})).await;
    converges(&env, "replica-1", &ns, "cm-002", json!({"n": "2"})).await;
    let status = api.get("/api/status").json();
    for (name, state) in status["watchers"].as_object().unwrap() {
        assert_eq!(state["state"], "running", "{name}: {status}");
    }
}

#[tokio::test]
async fn watch_of_every_kind_started_while_the_primary_is_down_waits_for_its_discovery() {
    let Some(env) = TestEnv::get() else { return };
    let _faults = FAULTS.lock().await;
    let primary = FAULT_CLUSTER;
    let ns = env.namespace("dr-kinds", &[primary]).await;
    let source = env.client(primary).await;
    configmaps(&source, &ns, "cm", 3).await;
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    create(&source, &ns, service).await;
    let dir = TestDir::new();
    let named = ["--source-name", "dr-kinds", "--kinds", "all"];
    pass(&dir, &env, "apply", primary, &["replica-1"], &ns, &named).expect_code(0);

    let stopped = env.stop(primary);
    let args = [QUICK, &named[..]].concat();
    let daemon = start_watch_unready(&dir, &env, primary, &["replica-1"], &ns, "watch.log", &args);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    // Which kinds are synced is not known: no kind may drive a write, whatever happens on the
    // replica.
    let replica = env.client("replica-1").await;
    delete(&replica, &ns, "services", "web").await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "cm-001",
        json!({"data": {"n": "edited"}}),
    )
    .await;
    eventually(DEADLINE, "the primary seen down", || {
        let down = api.get("/api/status").json()["primary"]["reachable"] == false;
        async move { down }
    })
    .await;
    let ready = api.get("/readyz");
    assert_eq!(ready.status, 503, "{ready}");
    assert!(get(&replica, &ns, "services", "web").await.is_none());
    assert_eq!(
        data(&env, "replica-1", &ns, "cm-001").await,
        Some(json!("edited"))
    );
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 3);

    stopped.start();
    eventually(
        DEADLINE,
        "the kinds resolved and the replica in step",
        || {
            let ready = api.get("/readyz").status == 200;
            async move { ready }
        },
    )
    .await;
    assert!(get(&replica, &ns, "services", "web").await.is_some());
    assert_eq!(
        data(&env, "replica-1", &ns, "cm-001").await,
        Some(json!("1"))
    );
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 3);
}
