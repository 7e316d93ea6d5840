//! Watch mode in end-to-end tests: starting `k8s-sync watch` on the local control plane and
//! waiting for ConfigMaps to arrive.

use std::time::Duration;

use serde_json::{Value, json};

use super::TestDir;
use super::daemon::Daemon;
use super::objects::get;
use super::testenv::{TestEnv, eventually};

/// How long a change may take to arrive.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// The first user's password (user `admin`).
pub const ADMIN_PASSWORD: &str = "watch-admin-password";

/// `k8s-sync watch` from the primary to `replicas` over `namespaces`, 4 workers, ready.
pub fn start_watch(
    dir: &TestDir,
    env: &TestEnv,
    replicas: &[&str],
    namespaces: &str,
    log: &str,
) -> Daemon {
    start_watch_with(
        dir,
        env,
        "primary",
        replicas,
        namespaces,
        log,
        &["--worker-count", "4"],
    )
}

/// `k8s-sync watch` from `primary` (a cluster's name or a kubeconfig's path) with `extra`
/// arguments, started and ready. An empty `namespaces` watches them all.
pub fn start_watch_with(
    dir: &TestDir,
    env: &TestEnv,
    primary: &str,
    replicas: &[&str],
    namespaces: &str,
    log: &str,
    extra: &[&str],
) -> Daemon {
    let mut daemon = start_watch_unready(dir, env, primary, replicas, namespaces, log, extra);
    daemon.wait_for("ready: first pass done", DEADLINE);
    daemon
}

/// `k8s-sync watch` as [`start_watch_with`] starts it, listening but not necessarily ready: for
/// tests that start it while a cluster is down.
pub fn start_watch_unready(
    dir: &TestDir,
    env: &TestEnv,
    primary: &str,
    replicas: &[&str],
    namespaces: &str,
    log: &str,
    extra: &[&str],
) -> Daemon {
    start_watch_in(dir, env, primary, replicas, namespaces, log, extra, &[])
}

/// [`start_watch_unready`] with environment `vars` too (a Pod's downward API, say). A
/// replica is a cluster's name or a kubeconfig's path.
#[allow(clippy::too_many_arguments)]
pub fn start_watch_in(
    dir: &TestDir,
    env: &TestEnv,
    primary: &str,
    replicas: &[&str],
    namespaces: &str,
    log: &str,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> Daemon {
    // A cluster of the control plane by name, or a kubeconfig by path.
    let primary = if primary.contains('/') {
        primary.to_string()
    } else {
        env.arg(primary)
    };
    let mut args: Vec<String> = vec!["watch".into(), "--primary".into(), primary];
    for replica in replicas {
        let replica = if replica.contains('/') {
            replica.to_string()
        } else {
            env.arg(replica)
        };
        args.extend(["--replica".into(), replica]);
    }
    if !namespaces.is_empty() {
        args.extend(["--sync-namespaces".into(), namespaces.into()]);
    }
    // The database in the test directory, unless the test names one.
    if !extra.contains(&"--db") {
        args.extend(["--db", "jobs.db"].map(String::from));
    }
    args.extend(["--listen", "127.0.0.1:0"].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut vars = vars.to_vec();
    vars.push(("K8S_SYNC_ADMIN_PASSWORD", ADMIN_PASSWORD));
    let mut daemon = Daemon::start(dir, log, &args, &vars);
    daemon.wait_for("(api)", DEADLINE);
    daemon
}

/// A ConfigMap manifest.
pub fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// The data of ConfigMap `name`, if it exists.
pub async fn data_of(client: &kube::Client, ns: &str, name: &str) -> Option<Value> {
    get(client, ns, "configmaps", name)
        .await
        .map(|cm| cm["data"].clone())
}

/// Waits until `cluster` has ConfigMap `name` with `data` (or none, for `Value::Null`).
pub async fn converges(env: &TestEnv, cluster: &str, ns: &str, name: &str, data: Value) {
    let client = env.client(cluster).await;
    let what = format!("{cluster}: {ns}/{name} = {data}");
    eventually(DEADLINE, &what, || async {
        data_of(&client, ns, name).await.unwrap_or(Value::Null) == data
    })
    .await;
}

/// The sum of the samples whose line starts with `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
