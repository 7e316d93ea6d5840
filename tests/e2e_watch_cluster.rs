//! End-to-end watch mode without `--sync-namespaces`: one watcher per kind for the whole
//! primary. It writes to the fault-test replica, which no other test of this binary uses, and
//! test binaries run one at a time.

mod support;

use serde_json::{Value, json};
use support::TestDir;
use support::objects::{create, delete};
use support::testenv::{FAULT_CLUSTER, TestEnv};
use support::watch::{configmap, converges, start_watch_with};

#[tokio::test]
async fn without_sync_namespaces_every_namespace_is_watched() {
    let Some(env) = TestEnv::get() else { return };
    let dir = TestDir::new();
    let daemon = start_watch_with(
        &dir,
        &env,
        "primary",
        &[FAULT_CLUSTER],
        "",
        "watch.log",
        &[],
    );
    // A namespace made after the start, so only the cluster-wide watchers can bring it.
    let ns = env.namespace("watch-all", &["primary"]).await;
    let primary = env.client("primary").await;
    create(&primary, &ns, configmap("everywhere", json!({"a": "1"}))).await;
    converges(&env, FAULT_CLUSTER, &ns, "everywhere", json!({"a": "1"})).await;
    delete(&primary, &ns, "configmaps", "everywhere").await;
    converges(&env, FAULT_CLUSTER, &ns, "everywhere", Value::Null).await;
    let log = daemon.output();
    assert!(!log.contains("kube-system"), "{log}");
}
