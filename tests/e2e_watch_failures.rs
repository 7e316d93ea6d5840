//! End-to-end watch mode when writes fail or hang, on the local control plane: bounded
//! automatic retries then `/retry`, the resync pass, and shutdown with writes in flight.
//! Every wait polls with a deadline.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use serde_json::{Value, json};
use support::TestDir;
use support::http::ApiServer;
use support::objects::create;
use support::testenv::{FAULT_CLUSTER, TestEnv, eventually};
use support::watch::{ADMIN_PASSWORD, DEADLINE, configmap, converges, start_watch_with};

/// A quota of no ConfigMaps in `ns` on `cluster`: creating one there is forbidden until the
/// quota is deleted.
async fn forbid_configmaps(env: &TestEnv, cluster: &str, ns: &str) -> kube::Api<ResourceQuota> {
    let api = kube::Api::namespaced(env.client(cluster).await, ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-configmaps"},
        "spec": {"hard": {"configmaps": "0"}}
    }))
    .unwrap();
    api.create(&Default::default(), &quota).await.unwrap();
    // No controller-manager runs to count what the namespace holds: admission enforces a
    // quota only once its status says so.
    let status = json!({"status": {"hard": {"configmaps": "0"}, "used": {"configmaps": "0"}}});
    api.patch_status(
        "no-configmaps",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(status),
    )
    .await
    .unwrap();
    api
}

/// The jobs `GET /api/jobs?QUERY` lists.
fn jobs(api: &ApiServer, query: &str) -> Vec<Value> {
    let reply = api.get(&format!("/api/jobs?{query}"));
    assert_eq!(reply.status, 200, "{reply}");
    reply.json()["jobs"].as_array().unwrap().clone()
}

/// Waits until `GET /api/jobs?QUERY` lists `count` jobs, and returns them.
async fn wait_for_jobs(api: &ApiServer, query: &str, count: usize) -> Vec<Value> {
    let what = format!("{count} job(s) for {query}\n{}", api.log());
    eventually(DEADLINE, &what, || {
        let listed = jobs(api, query).len();
        async move { listed == count }
    })
    .await;
    jobs(api, query)
}

/// Watch mode over a fresh namespace (named from `prefix`) whose ConfigMaps replica-1
/// forbids, started with `extra` arguments and logged in to.
struct Forbidden {
    ns: String,
    quota: kube::Api<ResourceQuota>,
    api: ApiServer,
    _dir: TestDir,
}

async fn watch_forbidden(env: &TestEnv, prefix: &str, extra: &[&str]) -> Forbidden {
    let ns = env.namespace(prefix, &["primary", "replica-1"]).await;
    let quota = forbid_configmaps(env, "replica-1", &ns).await;
    let dir = TestDir::new();
    let daemon = start_watch_with(
        &dir,
        env,
        "primary",
        &["replica-1"],
        &ns,
        "watch.log",
        extra,
    );
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    Forbidden {
        ns,
        quota,
        api,
        _dir: dir,
    }
}

#[tokio::test]
async fn failed_changes_are_retried_a_bounded_number_of_times_then_wait_for_retry() {
    let Some(env) = TestEnv::get() else { return };
    let extra = ["--auto-retries", "2", "--resync-interval", "1h"];
    let Forbidden {
        ns,
        quota,
        api,
        _dir,
    } = watch_forbidden(&env, "watch-retries", &extra).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("blocked", json!({"a": "1"}))).await;
    eventually(DEADLINE, "automatic retries to end", || {
        let gave_up = api.log().contains("giving up after automatic retries");
        async move { gave_up }
    })
    .await;
    let failed = wait_for_jobs(&api, "status=failed&replica=replica-1", 1).await;
    assert_eq!(failed[0]["name"], "blocked", "{failed:?}");
    assert_eq!(
        failed[0]["runs"], 3,
        "the first run and 2 retries: {failed:?}"
    );
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("forbidden"), "{error}");

    // The cause goes away; the job waits for /retry (the quota's removal may take a moment to
    // reach the server's admission, so a retry that fails again is tried again).
    quota
        .delete("no-configmaps", &Default::default())
        .await
        .unwrap();
    let target = format!("/retry?jobid={}&replica=replica-1", failed[0]["id"]);
    eventually(DEADLINE, "a retry to succeed", || {
        let reply = api.request("POST", &target, None);
        assert_eq!(reply.status, 200, "{reply}");
        let succeeded = reply.json()["job"]["status"] == "succeeded";
        async move { succeeded }
    })
    .await;
    converges(&env, "replica-1", &ns, "blocked", json!({"a": "1"})).await;
}

#[tokio::test]
async fn a_resync_brings_in_what_failed_for_good() {
    // Nothing but the resync can: automatic retries are off, and no event comes after the
    // failure (the primary's object does not change, and the replica has no copy to watch).
    let Some(env) = TestEnv::get() else { return };
    let extra = ["--auto-retries", "0", "--resync-interval", "2s"];
    let Forbidden {
        ns,
        quota,
        api,
        _dir,
    } = watch_forbidden(&env, "watch-resync", &extra).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("late", json!({"a": "1"}))).await;
    wait_for_jobs(&api, "status=failed&replica=replica-1", 1).await;
    quota
        .delete("no-configmaps", &Default::default())
        .await
        .unwrap();
    converges(&env, "replica-1", &ns, "late", json!({"a": "1"})).await;
    assert!(api.log().contains("resync: full pass"), "{}", api.log());
}

#[tokio::test]
async fn shutdown_cuts_off_hung_writes_after_the_timeout_and_a_second_signal_at_once() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("watch-hung", &["primary"]).await;
    let primary = env.client("primary").await;
    let dir = TestDir::new();
    let start = |log: &str, timeout: &str| {
        let daemon = start_watch_with(
            &dir,
            &env,
            "primary",
            &[FAULT_CLUSTER],
            &ns,
            log,
            &["--shutdown-timeout", timeout],
        );
        let mut api = ApiServer::attach(daemon);
        api.login_as("admin", ADMIN_PASSWORD);
        api
    };
    let running = format!("status=running&replica={FAULT_CLUSTER}");

    // A write to a replica that stops answering is cut off after --shutdown-timeout; the
    // process still exits 0, and the job is left for the next start.
    let mut api = start("first.log", "2s");
    let frozen = env.freeze(FAULT_CLUSTER);
    create(&primary, &ns, configmap("hung-1", json!({"a": "1"}))).await;
    wait_for_jobs(&api, &running, 1).await;
    api.terminate();
    let status = api.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", api.log());
    assert!(api.log().contains("were cut off"), "{}", api.log());
    drop(frozen);

    let mut api = start("second.log", "30s");
    converges(&env, FAULT_CLUSTER, &ns, "hung-1", json!({"a": "1"})).await;
    wait_for_jobs(
        &api,
        &format!("status=succeeded&replica={FAULT_CLUSTER}"),
        1,
    )
    .await;

    // While writes drain, a second signal ends the process at once (exit 130), well before
    // the 30 s the writes were given.
    let _frozen = env.freeze(FAULT_CLUSTER);
    create(&primary, &ns, configmap("hung-2", json!({"a": "2"}))).await;
    wait_for_jobs(&api, &running, 1).await;
    api.terminate();
    eventually(DEADLINE, "the drain to begin", || {
        let draining = api.log().contains("shutting down");
        async move { draining }
    })
    .await;
    api.terminate();
    let status = api.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", api.log());
}

/// The address a daemon's listener `name` printed it listens on.
fn listening(daemon: &support::daemon::Daemon, name: &str) -> Option<std::net::SocketAddr> {
    daemon.output().lines().find_map(|line| {
        let rest = line.split("listening on http://").nth(1)?;
        let (address, listener) = rest.split_once(' ')?;
        (listener.trim() == format!("({name})"))
            .then(|| address.parse().ok())
            .flatten()
    })
}

#[tokio::test]
async fn watch_replicates_while_its_address_is_taken_and_listens_once_it_is_free() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("taken-port", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("settings", json!({"n": "1"}))).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();
    let dir = TestDir::new();
    let (primary_arg, replica_arg, listen) =
        (env.arg("primary"), env.arg("replica-1"), port.to_string());
    let mut daemon = support::daemon::Daemon::start(
        &dir,
        "watch.log",
        &[
            "watch",
            "--primary",
            &primary_arg,
            "--replica",
            &replica_arg,
            "--sync-namespaces",
            &ns,
            "--db",
            "jobs.db",
            "--listen",
            &listen,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[("K8S_SYNC_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    daemon.wait_for(&format!("cannot listen on {port}"), DEADLINE);
    // Replication goes on without the API.
    converges(&env, "replica-1", &ns, "settings", json!({"n": "1"})).await;
    daemon.wait_for("(metrics)", DEADLINE);
    let metrics = listening(&daemon, "metrics").expect("the metrics listener's address");
    let scrape = support::http::send(metrics, "GET", "/metrics", &[], None).text();
    assert_eq!(
        support::passes::sample(&scrape, "k8s_sync_http_listening{listener=\"api\"}"),
        Some(0.0),
        "{scrape}"
    );
    assert!(
        support::passes::sample(
            &scrape,
            "k8s_sync_http_listener_errors_total{listener=\"api\"}"
        )
        .is_some_and(|n| n >= 1.0)
    );
    eventually(DEADLINE, "ready, on the metrics port", || async {
        support::http::send(metrics, "GET", "/readyz", &[], None).status == 200
    })
    .await;
    let api_route = support::http::send(metrics, "GET", "/api/dashboard", &[], None);
    assert_eq!(api_route.status, 404, "{api_route}");

    // The address is free again: the API listens there, and the process never stopped.
    drop(taken);
    eventually(
        Duration::from_secs(45),
        "the API listens once the port is free",
        || async {
            std::net::TcpStream::connect(port).is_ok()
                && support::http::send(port, "GET", "/healthz", &[], None).status == 200
        },
    )
    .await;
    let mut api = ApiServer::attach(daemon);
    api.login_as("admin", ADMIN_PASSWORD);
    assert_eq!(api.get("/api/dashboard").status, 200);
}
