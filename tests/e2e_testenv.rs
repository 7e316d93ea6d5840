//! End-to-end checks of the local control plane itself: the clusters are independent, the API
//! server really defaults and validates, a stopped server keeps its data, RBAC is enforced.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::testenv::{FAULT_CLUSTER, TestEnv, client_from, eventually};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn clusters_are_isolated() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("isolation", &["primary", "replica-1"]).await;
    let primary: Api<ConfigMap> = Api::namespaced(env.client("primary").await, &ns);
    primary
        .create(&PostParams::default(), &configmap("only-here"))
        .await
        .unwrap();
    let replica: Api<ConfigMap> = Api::namespaced(env.client("replica-1").await, &ns);
    assert!(replica.get_opt("only-here").await.unwrap().is_none());
    assert!(primary.get_opt("only-here").await.unwrap().is_some());
}

#[tokio::test]
async fn the_server_defaults_a_deployment() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("defaults", &["primary"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client("primary").await, &ns);
    let minimal: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    }))
    .unwrap();
    let created =
        serde_json::to_value(api.create(&PostParams::default(), &minimal).await.unwrap()).unwrap();
    let spec = &created["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert!(
        !created["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn readonly_user_can_list_but_not_write() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("rbac", &["primary"]).await;
    let client = client_from(&env.readonly_kubeconfig("primary")).await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    api.list(&Default::default())
        .await
        .expect("read-only user lists");
    let err = api
        .create(&PostParams::default(), &configmap("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err}"
    );
}

#[tokio::test]
async fn a_stopped_cluster_keeps_its_data() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("restart", &[FAULT_CLUSTER]).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client(FAULT_CLUSTER).await, &ns);
    api.create(&PostParams::default(), &configmap("survivor"))
        .await
        .unwrap();

    env.script(&["stop-cluster", FAULT_CLUSTER]);
    let err = api.get("survivor").await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "no server answers: {err}"
    );

    env.script(&["start-cluster", FAULT_CLUSTER]);
    // start-cluster waits for /readyz; a fresh client connects to the same port.
    let api: Api<ConfigMap> = Api::namespaced(env.client(FAULT_CLUSTER).await, &ns);
    eventually(
        Duration::from_secs(30),
        "the restarted server to answer",
        || async { api.get_opt("survivor").await.is_ok_and(|cm| cm.is_some()) },
    )
    .await;
}
