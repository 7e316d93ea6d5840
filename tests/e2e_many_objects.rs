//! End-to-end passes over more objects than a LIST page holds (the local control plane): the
//! replica's copies in step share the primary's bytes, and what is not in step must still be
//! found — a hand edit that leaves k8s-sync's annotations as they were, and a copy made by
//! hand to adopt. `scripts/bench scale` checks the same at 100,000 objects.

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use support::objects::{create, get, patch};
use support::testenv::TestEnv;
use support::{Run, TestDir};

/// Objects on the primary: over two LIST pages of 500.
const OBJECTS: usize = 1_200;

fn configmap(name: &str, level: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"LOG_LEVEL": level, "settings": "x".repeat(600)}})
}

fn sync(dir: &TestDir, env: &TestEnv, command: &str, namespace: &str, extra: &[&str]) -> Run {
    let (primary, replica) = (env.arg("primary"), env.arg("replica-1"));
    let mut args = vec![
        command,
        "--primary",
        &primary,
        "--replica",
        &replica,
        "--sync-namespaces",
        namespace,
    ];
    if command != "diff" {
        args.extend(["--db", "jobs.db"]);
    }
    args.extend(extra);
    dir.cmd(&args)
}

#[tokio::test]
async fn over_several_pages_a_hand_edit_and_a_copy_made_by_hand_are_found_and_mended() {
    let Some(env) = TestEnv::get() else { return };
    let ns = env.namespace("many", &["primary"]).await;
    let (primary, replica) = (env.client("primary").await, env.client("replica-1").await);
    futures::stream::iter(0..OBJECTS)
        .map(|i| create(&primary, &ns, configmap(&format!("cm-{i:04}"), "info")))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let dir = TestDir::new();
    let run = sync(&dir, &env, "apply", &ns, &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.json()["replicas"][0]["created"], OBJECTS, "{run}");
    sync(&dir, &env, "diff", &ns, &["-q"]).expect_code(0);

    // A hand edit of a managed copy (its change-key annotation unchanged), on the second
    // page; and a copy made by hand of an object then created on the primary.
    patch(
        &replica,
        &ns,
        "configmaps",
        "cm-0700",
        json!({"data": {"LOG_LEVEL": "debug"}}),
    )
    .await;
    create(&replica, &ns, configmap("adopt-me", "made-by-hand")).await;
    create(&primary, &ns, configmap("adopt-me", "info")).await;

    let run = sync(&dir, &env, "diff", &ns, &["-o", "json"]);
    run.expect_code(1);
    let plan = &run.json()["replicas"][0];
    let reasons: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (field("name"), field("reason"))
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("adopt-me".to_string(), "adopt".to_string()),
            ("cm-0700".to_string(), "edited_on_replica".to_string()),
        ],
        "{run}"
    );
    assert_eq!(plan["summary"]["in_sync"], OBJECTS - 1, "{run}");

    sync(&dir, &env, "apply", &ns, &[]).expect_code(0);
    for name in ["cm-0700", "adopt-me"] {
        let object = get(&replica, &ns, "configmaps", name).await.unwrap();
        assert_eq!(object["data"]["LOG_LEVEL"], "info", "{name}");
        assert_eq!(
            object["metadata"]["labels"]["k8s-sync.io/managed"], "true",
            "{name}"
        );
    }
    sync(&dir, &env, "diff", &ns, &["-q"]).expect_code(0);
}
