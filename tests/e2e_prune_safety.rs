//! End-to-end prune safety on the local control plane: a mass deletion on the primary is held
//! (`--max-prune`, per pass in `apply`, over a sliding window in `watch`) until an operator
//! releases it, PVCs are kept, and `--prune-delay` lets a deletion be undone first.

mod support;

use serde_json::{Value, json};
use support::TestDir;
use support::http::ApiServer;
use support::objects::{create, delete, get};
use support::passes::{configmaps, jobs, objects, pass, sample};
use support::testenv::{TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, start_watch_with};

fn count(jobs: &[Value], status: &str) -> usize {
    jobs.iter().filter(|j| j["status"] == status).count()
}

#[tokio::test]
async fn a_mass_deletion_on_the_primary_is_held_in_apply_until_forced() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("mass-delete", &["primary"]).await;
    let primary = env.client("primary").await;
    configmaps(&primary, &ns, "cm", 61).await;
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);
    let replica = env.client("replica-1").await;

    // Within the limit (10% of 61, at least 10): pruned.
    for i in 0..5 {
        delete(&primary, &ns, "configmaps", &format!("cm-{i:03}")).await;
    }
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 56);

    // 30 of the remaining 56: none is pruned, all are held, the rest goes on.
    for i in 5..35 {
        delete(&primary, &ns, "configmaps", &format!("cm-{i:03}")).await;
    }
    create(&primary, &ns, configmap("new", json!({"n": "new"}))).await;
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-1"],
        &ns,
        &["-o", "json"],
    );
    run.expect_code(1);
    let report = &run.json()["replicas"][0];
    assert_eq!(
        (report["held"].as_u64(), report["pruned"].as_u64()),
        (Some(30), Some(0)),
        "{run}"
    );
    assert_eq!(report["created"], 1, "{run}");
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 57);
    assert_eq!(jobs(&dir, &["--status", "held"]).len(), 30);
    let diff = pass(&dir, &env, "diff", "primary", &["replica-1"], &ns, &["-q"]);
    diff.expect_code(1);
    assert!(
        diff.stdout().contains("30 prunes held over --max-prune"),
        "{diff}"
    );
    // Still held on the next run: a hold waits for an operator.
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(1);
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 57);

    let forced = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-1"],
        &ns,
        &["--force-prune"],
    );
    forced.expect_code(0);
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 27);
    let all = jobs(&dir, &[]);
    assert_eq!(count(&all, "held"), 0, "{all:?}");
}

#[tokio::test]
async fn a_claim_gone_from_the_primary_is_kept_unless_prune_pvcs() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("keep-pvc", &["primary"]).await;
    let primary = env.client("primary").await;
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    create(&primary, &ns, claim).await;
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);
    delete(&primary, &ns, "persistentvolumeclaims", "data").await;
    let replica = env.client("replica-1").await;
    let run = pass(
        &dir,
        &env,
        "apply",
        "primary",
        &["replica-1"],
        &ns,
        &["-o", "json"],
    );
    run.expect_code(0);
    let report = &run.json()["replicas"][0];
    assert_eq!(
        (report["kept"].as_u64(), report["pruned"].as_u64()),
        (Some(1), Some(0)),
        "{run}"
    );
    assert!(
        get(&replica, &ns, "persistentvolumeclaims", "data")
            .await
            .is_some()
    );
    let diff = pass(&dir, &env, "diff", "primary", &["replica-1"], &ns, &[]);
    diff.expect_code(0);
    assert!(diff.stdout().contains("1 kept"), "{diff}");
    let args = ["--prune-pvcs", "-o", "json"];
    let pruned = pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &args);
    pruned.expect_code(0);
    assert_eq!(pruned.json()["replicas"][0]["pruned"], 1, "{pruned}");
    assert!(
        get(&replica, &ns, "persistentvolumeclaims", "data")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn watch_holds_prunes_past_the_window_until_released_by_the_api_or_the_cli() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("watch-window", &["primary"]).await;
    let primary = env.client("primary").await;
    configmaps(&primary, &ns, "cm", 10).await;
    let dir = TestDir::new();
    let limits = ["--max-prune", "3", "--max-prune-window", "10m"];
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &limits,
    );
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    let replica = env.client("replica-1").await;
    converges(&env, "replica-1", &ns, "cm-009", json!({"n": "9"})).await;

    for i in 0..5 {
        delete(&primary, &ns, "configmaps", &format!("cm-{i:03}")).await;
    }
    let held = |api: &ApiServer| {
        sample(
            &api.get("/metrics").text(),
            "k8s_sync_prunes_held{replica=\"replica-1\"}",
        )
    };
    eventually(DEADLINE, "two prunes held", || {
        let seen = held(&api);
        async move { seen == Some(2.0) }
    })
    .await;
    assert_eq!(
        objects(&replica, &ns, "configmaps").await.len(),
        7,
        "three pruned"
    );
    let status = api.get("/api/status").json();
    assert_eq!(status["replicas"][0]["held"], 2, "{status}");
    let listed = api.get("/api/jobs?status=held").json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2, "{listed}");
    // The holds are on the replica's objects too, for any other copy to find.
    let marked = |objects: &std::collections::BTreeMap<String, Value>| -> Vec<String> {
        objects
            .iter()
            .filter(|(_, o)| !o["metadata"]["annotations"]["k8s-sync.io/prune-held"].is_null())
            .map(|(name, _)| name.clone())
            .collect()
    };
    let holds = marked(&objects(&replica, &ns, "configmaps").await);
    assert_eq!(holds.len(), 2, "{holds:?}");

    // One of them is back on the primary: its hold is cancelled and its mark taken off.
    let back = &holds[0];
    create(&primary, &ns, configmap(back, json!({"n": "back"}))).await;
    converges(&env, "replica-1", &ns, back, json!({"n": "back"})).await;
    eventually(DEADLINE, "one prune held, one mark left", || async {
        marked(&objects(&replica, &ns, "configmaps").await) == [holds[1].clone()]
            && held(&api) == Some(1.0)
    })
    .await;

    let released = api.request("POST", "/api/prunes/release?replica=replica-1", None);
    assert_eq!(released.status, 200, "{released}");
    assert_eq!(released.json()["report"]["pruned"], 1, "{released}");
    assert_eq!(objects(&replica, &ns, "configmaps").await.len(), 6);
    eventually(DEADLINE, "no prune held", || {
        let seen = held(&api);
        async move { seen == Some(0.0) }
    })
    .await;

    // The limit stays in force: the next deletion within the window is held too.
    delete(&primary, &ns, "configmaps", "cm-005").await;
    eventually(DEADLINE, "the next prune held", || {
        let seen = held(&api);
        async move { seen == Some(1.0) }
    })
    .await;
    let cli = dir.cmd(&[
        "jobs",
        "release",
        "replica-1",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
    ]);
    cli.expect_code(0);
    assert!(
        get(&replica, &ns, "configmaps", "cm-005").await.is_none(),
        "{cli}"
    );

    // Both releases are recorded, with who made them.
    let db = rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap();
    let mut statement = db
        .prepare("SELECT replica, released_by, jobs FROM releases ORDER BY id")
        .unwrap();
    let releases: Vec<(String, String, i64)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert_eq!(releases[0].0, "replica-1");
    assert_eq!(releases[0].1, "api (admin)");
    assert_eq!(releases[0].2, 1);
    assert!(releases[1].1.starts_with("cli"), "{releases:?}");
}

#[tokio::test]
async fn a_prune_delay_lets_a_deletion_on_the_primary_be_undone_first() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("prune-delay", &["primary"]).await;
    let primary = env.client("primary").await;
    configmaps(&primary, &ns, "cm", 3).await;
    let dir = TestDir::new();
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        &["--prune-delay", "6s"],
    );
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    converges(&env, "replica-1", &ns, "cm-002", json!({"n": "2"})).await;

    delete(&primary, &ns, "configmaps", "cm-000").await;
    delete(&primary, &ns, "configmaps", "cm-001").await;
    let delayed = || {
        let listed = api.get("/api/jobs?status=delayed").json();
        listed["jobs"].as_array().cloned().unwrap_or_default()
    };
    eventually(DEADLINE, "two delayed prunes", || {
        let seen = delayed().len();
        async move { seen == 2 }
    })
    .await;
    assert!(
        delayed().iter().all(|j| j["due_at"].is_string()),
        "{:?}",
        delayed()
    );
    let metrics = api.get("/metrics").text();
    assert_eq!(
        sample(&metrics, "k8s_sync_prunes_delayed{replica=\"replica-1\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "k8s_sync_replication_lag_seconds{replica=\"replica-1\"}"
        ),
        Some(0.0),
        "a delayed prune is no lag: {metrics}"
    );
    assert_eq!(api.get("/api/status").json()["replicas"][0]["delayed"], 2);
    // The accidental deletion is undone on the primary before the copies follow.
    create(&primary, &ns, configmap("cm-000", json!({"n": "0"}))).await;

    converges(&env, "replica-1", &ns, "cm-001", Value::Null).await;
    let replica = env.client("replica-1").await;
    assert!(get(&replica, &ns, "configmaps", "cm-000").await.is_some());
    let all = api.get("/api/jobs?status=cancelled").json();
    let cancelled = all["jobs"].as_array().unwrap();
    assert_eq!(cancelled.len(), 1, "{all}");
    assert_eq!(cancelled[0]["name"], "cm-000");
}

#[tokio::test]
async fn apply_records_a_delayed_prune_and_runs_it_once_due() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("apply-delay", &["primary"]).await;
    let primary = env.client("primary").await;
    configmaps(&primary, &ns, "cm", 2).await;
    let dir = TestDir::new();
    pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &[]).expect_code(0);
    delete(&primary, &ns, "configmaps", "cm-000").await;
    let delay = ["--prune-delay", "2s", "-o", "json"];
    let first = pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &delay);
    first.expect_code(0);
    assert_eq!(first.json()["replicas"][0]["delayed"], 1, "{first}");
    let replica = env.client("replica-1").await;
    assert!(get(&replica, &ns, "configmaps", "cm-000").await.is_some());
    let due = jobs(&dir, &["--status", "delayed"]);
    assert_eq!(due.len(), 1, "{due:?}");
    // Later runs keep the first due time, and prune once it passed.
    eventually(DEADLINE, "the delayed prune to run", || {
        let run = pass(&dir, &env, "apply", "primary", &["replica-1"], &ns, &delay);
        let pruned = run.json()["replicas"][0]["pruned"] == 1;
        async move { pruned }
    })
    .await;
    assert!(get(&replica, &ns, "configmaps", "cm-000").await.is_none());
}
