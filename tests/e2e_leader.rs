//! End-to-end leader election on the local control plane: two copies of `watch`, holding only
//! the credentials of `deploy/`'s ServiceAccounts, share a Lease on the primary; only the
//! holder writes. A `kill -9` of the leader hands over within the
//! lease duration, a graceful stop at once, a leader cut off from the primary stops writing at
//! its renew deadline, and shards split the replicas between copies.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::TestDir;
use support::deploy::Bases;
use support::http::ApiServer;
use support::objects::{create, patch};
use support::passes::{jobs, sample};
use support::proxy::{LossyProxy, token_of};
use support::testenv::{TestEnv, eventually};
use support::watch::{
    ADMIN_PASSWORD, DEADLINE, configmap, converges, data_of, start_watch_unready,
};

/// controller-runtime's lease duration, the default.
const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The flags of one copy: the election in `home`, as Pod `identity`.
fn election(home: &str, identity: &str) -> Vec<String> {
    [
        "--leader-elect",
        "--lease-namespace",
        home,
        "--lease-identity",
        identity,
        "--pod-name",
        identity,
        "--worker-count",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts a copy and logs in to its API.
fn copy(
    dir: &TestDir,
    env: &TestEnv,
    primary: &str,
    replicas: &[&str],
    ns: &str,
    extra: &[String],
) -> ApiServer {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let daemon = start_watch_unready(dir, env, primary, replicas, ns, "watch.log", &extra);
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    api
}

/// Two copies syncing `ns` to replica-1 with their Lease in the bases' namespace: `copy-a`, reaching the
/// primary through `primary_a` with `extra_a` flags too, leads; `copy-b` follows it.
async fn leader_and_follower(
    env: &TestEnv,
    bases: &Bases,
    primary_a: &str,
    ns: &str,
    extra_a: &[&str],
    dirs: (&TestDir, &TestDir),
) -> (ApiServer, ApiServer) {
    let mut flags = election(&bases.home, "copy-a");
    flags.extend(extra_a.iter().map(|f| f.to_string()));
    let replicas = bases.replica_args();
    let replicas: Vec<&str> = replicas.iter().map(String::as_str).collect();
    let a = copy(dirs.0, env, primary_a, &replicas, ns, &flags);
    eventually(DEADLINE, "copy-a leads", || async { leading(&a) }).await;
    let b = copy(
        dirs.1,
        env,
        &bases.primary_arg(),
        &replicas,
        ns,
        &election(&bases.home, "copy-b"),
    );
    eventually(DEADLINE, "copy-b knows copy-a leads", || async {
        leader(&b)["holder"] == "copy-a"
    })
    .await;
    (a, b)
}

fn leader(api: &ApiServer) -> Value {
    api.get("/api/status").json()["leader"].clone()
}

fn leading(api: &ApiServer) -> bool {
    leader(api)["leading"] == true
}

/// The Pods the copies run as: objects only (no kubelet runs here), for the leader's label.
async fn pods(env: &TestEnv, home: &str, names: &[&str]) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(env.client("primary").await, home);
    for name in names {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "k8s-sync", "image": "k8s-sync:test"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    pods
}

async fn labelled(pods: &Api<Pod>, name: &str) -> bool {
    let pod = pods.get(name).await.unwrap();
    pod.metadata
        .labels
        .is_some_and(|l| l.get("k8s-sync.io/leader").map(String::as_str) == Some("true"))
}

async fn holder(env: &TestEnv, home: &str, lease: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client("primary").await, home);
    leases.get_opt(lease).await.unwrap()?.spec?.holder_identity
}

#[tokio::test]
async fn one_copy_leads_and_after_kill_9_the_other_takes_over_within_the_lease_duration() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("lead", &["primary", "replica-1"]).await;
    let bases = Bases::install(&env, &["replica-1"]).await;
    let home = bases.home.clone();
    let pods = pods(&env, &home, &["copy-a", "copy-b"]).await;
    let primary = env.client("primary").await;
    let (dir_a, dir_b) = (TestDir::new(), TestDir::new());
    let through = bases.primary_arg();
    let (mut a, b) = leader_and_follower(&env, &bases, &through, &ns, &[], (&dir_a, &dir_b)).await;
    assert!(!leading(&b));
    let ready = b.get("/readyz");
    assert_eq!(ready.status, 503, "{ready}");
    assert!(ready.error().contains("copy-a"), "{ready}");
    assert_eq!(
        sample(&a.get("/metrics").text(), "k8s_sync_leader"),
        Some(1.0)
    );
    assert_eq!(
        sample(&b.get("/metrics").text(), "k8s_sync_leader"),
        Some(0.0)
    );
    assert_eq!(
        holder(&env, &home, "k8s-sync").await.as_deref(),
        Some("copy-a")
    );
    eventually(DEADLINE, "the leader's Pod labelled", || async {
        labelled(&pods, "copy-a").await && !labelled(&pods, "copy-b").await
    })
    .await;

    create(&primary, &ns, configmap("before", json!({"n": "1"}))).await;
    converges(&env, "replica-1", &ns, "before", json!({"n": "1"})).await;
    assert!(!jobs(&dir_a, &[]).is_empty(), "the leader records its jobs");
    assert!(jobs(&dir_b, &[]).is_empty(), "a follower records nothing");

    a.kill();
    let killed = Instant::now();
    create(&primary, &ns, configmap("meanwhile", json!({"n": "2"}))).await;
    let replica = env.client("replica-1").await;
    eventually(
        LEASE_DURATION + Duration::from_secs(5),
        "copy-b syncs the change",
        || async { data_of(&replica, &ns, "meanwhile").await == Some(json!({"n": "2"})) },
    )
    .await;
    assert!(killed.elapsed() < LEASE_DURATION + Duration::from_secs(5));
    assert!(leading(&b));
    assert_eq!(
        holder(&env, &home, "k8s-sync").await.as_deref(),
        Some("copy-b")
    );
    eventually(DEADLINE, "the label moved to the new leader", || async {
        labelled(&pods, "copy-b").await && !labelled(&pods, "copy-a").await
    })
    .await;
}

#[tokio::test]
async fn a_graceful_stop_hands_the_lease_over_at_once() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("handover", &["primary", "replica-1"]).await;
    let bases = Bases::install(&env, &["replica-1"]).await;
    let (dir_a, dir_b) = (TestDir::new(), TestDir::new());
    let through = bases.primary_arg();
    let (mut a, b) = leader_and_follower(&env, &bases, &through, &ns, &[], (&dir_a, &dir_b)).await;
    a.terminate();
    assert!(a.wait(DEADLINE).success(), "{}", a.log());
    assert!(a.log().contains("lease given up"), "{}", a.log());
    let stopped = Instant::now();
    eventually(DEADLINE, "copy-b leads", || async { leading(&b) }).await;
    // Given up, the Lease is free at the next retry (2 s), not after its duration (15 s).
    assert!(
        stopped.elapsed() < LEASE_DURATION / 2,
        "took {:?}",
        stopped.elapsed()
    );
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("after", json!({"n": "1"}))).await;
    converges(&env, "replica-1", &ns, "after", json!({"n": "1"})).await;
}

// Multi-threaded: the proxy runs on the test's runtime while the test waits on the copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_primary_writes_nothing_after_its_renew_deadline() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("cutoff", &["primary", "replica-1"]).await;
    let bases = Bases::install(&env, &["replica-1"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("settings", json!({"n": "1"}))).await;
    let (dir_a, dir_b) = (TestDir::new(), TestDir::new());
    let proxy = LossyProxy::faithful(&env.kubeconfig("primary")).await;
    let through = proxy.kubeconfig(dir_a.path(), &token_of(&bases.primary));
    // Probes far apart: copy-a's watch streams hang without an error, so its state of the
    // primary still looks whole, and only the lease keeps it from writing.
    let through = through.display().to_string();
    let slow = ["--probe-interval", "120s"];
    let (a, b) = leader_and_follower(&env, &bases, &through, &ns, &slow, (&dir_a, &dir_b)).await;
    converges(&env, "replica-1", &ns, "settings", json!({"n": "1"})).await;

    proxy.cut();
    let cut = Instant::now();
    let renew_deadline = Duration::from_secs(10);
    eventually(
        renew_deadline + Duration::from_secs(3),
        "copy-a stops leading",
        || async { !leading(&a) },
    )
    .await;
    let writes = |api: &ApiServer| {
        sample(
            &api.get("/metrics").text(),
            "k8s_sync_cluster_requests_total{cluster=\"replica-1\",type=\"write\"}",
        )
    };
    let written = writes(&a);
    let recorded = jobs(&dir_a, &[]).len();
    // A hand edit on the replica: copy-a sees it (its replica watcher still runs) and would
    // revert it if it wrote.
    let replica = env.client("replica-1").await;
    patch(
        &replica,
        &ns,
        "configmaps",
        "settings",
        json!({"data": {"n": "edited"}}),
    )
    .await;
    eventually(
        LEASE_DURATION + DEADLINE,
        "copy-b takes over and reverts the edit",
        || async { data_of(&replica, &ns, "settings").await == Some(json!({"n": "1"})) },
    )
    .await;
    assert_eq!(writes(&a), written, "copy-a wrote after its renew deadline");
    assert_eq!(
        jobs(&dir_a, &[]).len(),
        recorded,
        "copy-a recorded jobs after its deadline"
    );
    assert!(leading(&b));
    assert!(cut.elapsed() >= renew_deadline);
    assert!(leader(&a)["leading"] == false, "{}", leader(&a));
}

#[tokio::test]
async fn two_shards_split_three_replicas_and_each_is_synced_by_exactly_one_copy() {
    let Some(env) = TestEnv::get() else { return };
    let replicas = ["replica-1", "replica-2", "replica-3"];
    let ns = env
        .namespace(
            "shards",
            &["primary", "replica-1", "replica-2", "replica-3"],
        )
        .await;
    let bases = Bases::install(&env, &replicas).await;
    let home = bases.home.clone();
    let (dir_one, dir_two) = (TestDir::new(), TestDir::new());
    let mut one = election(&home, "shard-one");
    one.extend(["--shard", "1/2"].map(String::from));
    let mut two = election(&home, "shard-two");
    two.extend(["--shard", "2/2"].map(String::from));
    let kubeconfigs = bases.replica_args();
    let kubeconfigs: Vec<&str> = kubeconfigs.iter().map(String::as_str).collect();
    let one = copy(
        &dir_one,
        &env,
        &bases.primary_arg(),
        &kubeconfigs,
        &ns,
        &one,
    );
    let two = copy(
        &dir_two,
        &env,
        &bases.primary_arg(),
        &kubeconfigs,
        &ns,
        &two,
    );
    eventually(DEADLINE, "each shard leads its own lease", || async {
        leading(&one) && leading(&two)
    })
    .await;
    assert_eq!(
        holder(&env, &home, "k8s-sync-shard-1-of-2")
            .await
            .as_deref(),
        Some("shard-one")
    );
    assert_eq!(
        holder(&env, &home, "k8s-sync-shard-2-of-2")
            .await
            .as_deref(),
        Some("shard-two")
    );
    let names = |api: &ApiServer| -> Vec<String> {
        api.get("/api/status").json()["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (mine, theirs) = (names(&one), names(&two));
    let mut all: Vec<String> = mine.iter().chain(&theirs).cloned().collect();
    all.sort();
    assert_eq!(
        all, replicas,
        "every replica in exactly one shard: {mine:?} {theirs:?}"
    );

    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("fleet", json!({"n": "1"}))).await;
    for replica in replicas {
        converges(&env, replica, &ns, "fleet", json!({"n": "1"})).await;
    }
    for (dir, shard) in [(&dir_one, &mine), (&dir_two, &theirs)] {
        for job in jobs(dir, &[]) {
            let replica = job["replica"].as_str().unwrap().to_string();
            assert!(
                shard.contains(&replica),
                "{replica} synced by the other shard"
            );
        }
    }
}
