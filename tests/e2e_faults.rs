//! End-to-end behaviour when a replica's API server is down, and Secret hygiene across every
//! output, on the local control plane. The fault tests stop and start the cluster reserved
//! for them.

mod support;

use serde_json::{Value, json};
use support::objects::{create, get, patch};
use support::testenv::{FAULT_CLUSTER, TestEnv};
use support::{Run, TestDir};

fn apply(dir: &TestDir, env: &TestEnv, replicas: &[&str], ns: &str, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["apply".into(), "--primary".into(), env.arg("primary")];
    for replica in replicas {
        args.extend(["--replica".into(), env.arg(replica)]);
    }
    args.extend([
        "--sync-namespaces".into(),
        ns.into(),
        "--db".into(),
        "jobs.db".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    dir.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn jobs(dir: &TestDir, extra: &[&str]) -> Value {
    let mut args = vec!["jobs", "list", "--db", "jobs.db", "-o", "json"];
    args.extend_from_slice(extra);
    let run = dir.cmd(&args);
    run.expect_code(0);
    run.json()
}

#[tokio::test]
async fn a_stopped_replica_fails_alone_and_catches_up_after_restart() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("outage", &["primary"]).await;
    let primary = env.client("primary").await;
    for name in ["a", "b"] {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}});
        create(&primary, &ns, cm).await;
    }
    let dir = TestDir::new();
    env.script(&["stop-cluster", FAULT_CLUSTER]);
    let run = apply(
        &dir,
        &env,
        &["replica-1", FAULT_CLUSTER],
        &ns,
        &["--attempts", "2"],
    );
    env.script(&["start-cluster", FAULT_CLUSTER]);

    run.expect_code(1);
    assert!(
        get(&env.client("replica-1").await, &ns, "configmaps", "a")
            .await
            .is_some(),
        "{run}"
    );
    let error_lines: Vec<_> = run
        .stderr()
        .lines()
        .filter(|l| l.starts_with(&format!("{FAULT_CLUSTER}: list namespaces")))
        .map(str::to_string)
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "one line names the replica and what failed\n{run}"
    );
    let failed = jobs(&dir, &["--status", "failed", "--replica", FAULT_CLUSTER]);
    assert_eq!(failed.as_array().unwrap().len(), 2, "{failed}");

    let run = apply(&dir, &env, &["replica-1", FAULT_CLUSTER], &ns, &[]);
    run.expect_code(0);
    let replica = env.client(FAULT_CLUSTER).await;
    for name in ["a", "b"] {
        assert!(
            get(&replica, &ns, "configmaps", name).await.is_some(),
            "{run}"
        );
    }
    let failed = jobs(&dir, &["--status", "failed"]);
    assert_eq!(failed, json!([]), "every failed job completed");
}

#[tokio::test]
async fn no_secret_value_appears_in_any_output() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("secrets", &["primary"]).await;
    let primary = env.client("primary").await;
    let values = ["Pr1mary-Only-Value-7781", "Second-Key-Value-3302"];
    create(
        &primary,
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
            format!("{{\"stringData\":{{\"password\":\"{}\"}}}}", values[0])}},
        "stringData": {"password": values[0], "token": values[1]}}),
    )
    .await;
    let dir = TestDir::new();
    let mut output = String::new();
    let mut record = |run: &Run| output.push_str(&format!("{}{}", run.stdout(), run.stderr()));
    record(&apply(&dir, &env, &["replica-1"], &ns, &["-v"]));
    patch(
        &primary,
        &ns,
        "secrets",
        "db",
        json!({"stringData": {"password": "Rotated-Value-5519"}}),
    )
    .await;
    let diff = [
        "diff",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &env.arg("replica-1"),
        "--sync-namespaces",
        &ns,
    ];
    for format in ["text", "json"] {
        let mut args = diff.to_vec();
        args.extend(["-v", "-o", format]);
        record(&dir.cmd(&args));
    }
    record(&apply(&dir, &env, &["replica-1"], &ns, &["-o", "json"]));
    record(&dir.cmd(&["jobs", "list", "--db", "jobs.db", "-o", "json"]));
    record(&dir.cmd(&[
        "snapshot",
        "--source",
        &env.arg("primary"),
        "--sync-namespaces",
        &ns,
        "--out",
        "snap",
    ]));
    for entry in walkdir::WalkDir::new(dir.path()) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            output.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).unwrap(),
            ));
        }
    }
    use base64::Engine as _;
    for value in values.iter().chain(&["Rotated-Value-5519"]) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        assert!(!output.contains(value), "{value} leaked");
        assert!(!output.contains(&encoded), "{encoded} leaked");
    }
    assert!(
        output.contains("secret keys changed: password"),
        "the rotation was reported"
    );
}

// Multi-threaded: the proxy runs on the test's runtime while the test waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_whose_answer_was_lost_and_that_is_answered_404_when_sent_again_succeeded() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("lost-delete", &["primary"]).await;
    let primary = env.client("primary").await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}, "data": {"k": "v"}});
    create(&primary, &ns, cm).await;
    let dir = TestDir::new();
    apply(&dir, &env, &["replica-1"], &ns, &[]).expect_code(0);
    support::objects::delete(&primary, &ns, "configmaps", "gone").await;

    let replica = env.kubeconfig("replica-1");
    let proxy = support::proxy::LossyProxy::start(&replica).await;
    let through = proxy.kubeconfig(dir.path(), &support::proxy::token_of(&replica));
    let named = format!("replica-1={}", through.display());
    let run = dir.cmd(&[
        "apply",
        "--primary",
        &env.arg("primary"),
        "--replica",
        &named,
        "--sync-namespaces",
        &ns,
        "--db",
        "jobs.db",
    ]);
    run.expect_code(0);
    assert_eq!(proxy.lost(), 1, "the first DELETE's answer was lost\n{run}");
    assert!(
        get(&env.client("replica-1").await, &ns, "configmaps", "gone")
            .await
            .is_none()
    );
    let prunes: Vec<Value> = jobs(&dir, &[])
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["action"] == "prune")
        .cloned()
        .collect();
    assert_eq!(prunes.len(), 1, "{prunes:?}");
    assert_eq!(prunes[0]["status"], "succeeded", "{prunes:?}");
    assert!(prunes[0]["attempts"].as_u64().unwrap() >= 2, "{prunes:?}");
}
