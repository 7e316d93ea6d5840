//! Offline command-line tests: the real binary on fixture and temporary directories.

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{TestDir, fixture};

const PRIMARY: &str = "fixtures/snapshots/primary";
const REPLICA: &str = "fixtures/snapshots/replica";

fn diff(dir: &TestDir, extra: &[&str]) -> support::Run {
    diff_with_env(dir, extra, &[])
}

fn diff_with_env(dir: &TestDir, extra: &[&str], vars: &[(&str, &str)]) -> support::Run {
    let primary = fixture("snapshots/primary");
    let replica = fixture("snapshots/replica");
    let mut args = vec![
        "diff",
        "--primary",
        primary.to_str().unwrap(),
        "--replica",
        replica.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dir.cmd_with_env(&args, vars)
}

/// Every Secret value in the fixtures, base64 as stored and decoded, including values only
/// found in `last-applied-configuration` annotations.
fn secret_values() -> Vec<String> {
    let mut values = Vec::new();
    for tree in [PRIMARY, REPLICA] {
        for entry in walkdir::WalkDir::new(support::repo_root().join(tree)) {
            let entry = entry.unwrap();
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if !text.contains("Secret") {
                continue;
            }
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let Ok(value) = <Value as serde::Deserialize>::deserialize(doc) else {
                    continue;
                };
                collect_secret_values(&value, &mut values);
            }
        }
    }
    values.sort();
    values.dedup();
    assert!(
        values.len() >= 10,
        "expected secret values in the fixtures, got {values:?}"
    );
    values
}

fn collect_secret_values(value: &Value, out: &mut Vec<String>) {
    if let Some(items) = value.get("items").and_then(Value::as_array) {
        items.iter().for_each(|i| collect_secret_values(i, out));
    }
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    if let Some(data) = value.get("data").and_then(Value::as_object) {
        // A token Secret's `namespace` entry is the namespace's name, not a secret.
        let values = data
            .iter()
            .filter(|(k, _)| *k != "namespace")
            .map(|(_, v)| v);
        for encoded in values.filter_map(Value::as_str) {
            out.push(encoded.to_string());
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap();
            out.push(String::from_utf8(decoded).unwrap());
        }
    }
    if let Some(last) =
        value.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
    {
        let last: Value = serde_json::from_str(last.as_str().unwrap()).unwrap();
        collect_secret_values(&last, out);
    }
}

#[track_caller]
fn assert_no_secret_values(text: &str) {
    for value in secret_values() {
        assert!(
            !text.contains(&value),
            "secret value {value:?} appears in:\n{text}"
        );
    }
}

fn actions(json: &Value) -> BTreeMap<String, String> {
    json["replicas"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = format!(
                "{}/{}/{}",
                c["namespace"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            (name, c["action"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn diff_of_the_fixtures_shows_every_action() {
    let dir = TestDir::new();
    let run = diff(&dir, &["--color", "never"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(
        out.starts_with("replica: 5 in sync, 3 to create, 4 to update, 1 to prune, 0 conflicts\n"),
        "{run}"
    );
    for line in [
        "+ create         shop/ConfigMap/feature-flags",
        "~ update         shop/Deployment/api (changed on the source)",
        "~ update         shop/ConfigMap/web-config (edited on the replica)",
        "~ update         shop/ConfigMap/nginx-conf (not created by k8s-sync; will be adopted)",
        "- prune          shop/ConfigMap/old-banner",
        "    secret keys added: api-token",
        "    secret keys removed: legacy-password",
        "    secret keys changed: password",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{run}");
    }
    let diff_line = |sign: char, text: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(sign) && l.trim_end().ends_with(text))
    };
    assert!(
        diff_line('-', "image: registry.example.com/shop/api:1.8.1"),
        "{run}"
    );
    assert!(
        diff_line('+', "image: registry.example.com/shop/api:1.8.2"),
        "{run}"
    );
    assert!(
        !out.contains("local-notes"),
        "unmanaged replica-only objects are not drift\n{run}"
    );
    assert!(!out.contains('\u{1b}'), "{run}");
    assert_no_secret_values(&out);
    assert_no_secret_values(&run.stderr());
}

#[test]
fn diff_json_lists_each_drifted_object() {
    let dir = TestDir::new();
    let run = diff(&dir, &["-o", "json"]);
    run.expect_code(1);
    let json = run.json();
    let expected: BTreeMap<String, String> = [
        ("billing/Deployment/invoicer", "create"),
        ("billing/PersistentVolumeClaim/ledger", "create"),
        ("shop/ConfigMap/feature-flags", "create"),
        ("shop/ConfigMap/nginx-conf", "update"),
        ("shop/ConfigMap/old-banner", "prune"),
        ("shop/ConfigMap/web-config", "update"),
        ("shop/Deployment/api", "update"),
        ("shop/Secret/db-credentials", "update"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions(&json), expected, "{run}");
    assert_eq!(json["replicas"][0]["summary"]["in_sync"], 5);
    let api = json["replicas"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(
        api["changed_paths"][0],
        "spec.template.spec.containers[0].image"
    );
    for key in ["desired_key", "live_key", "applied_key"] {
        assert!(
            api[key].as_str().unwrap().starts_with("sha256:"),
            "{key}: {api}"
        );
    }
    let secret = json["replicas"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "Secret")
        .unwrap();
    for key in ["desired_key", "live_key", "applied_key"] {
        assert!(
            secret[key].is_null(),
            "no change key of a Secret is shown: {secret}"
        );
    }
    assert_no_secret_values(&run.stdout());
}

#[test]
fn no_adopt_turns_adoption_into_a_conflict() {
    let dir = TestDir::new();
    let run = diff(&dir, &["--no-adopt", "-q"]);
    run.expect_code(1);
    assert_eq!(
        run.stdout(),
        "replica: 5 in sync, 3 to create, 3 to update, 1 to prune, 1 conflicts\n",
        "{run}"
    );
}

#[test]
fn no_prune_keeps_objects_gone_from_the_primary() {
    let dir = TestDir::new();
    let run = diff(&dir, &["--no-prune", "-q"]);
    assert!(run.stdout().contains("0 to prune"), "{run}");
}

#[test]
fn a_source_compared_with_itself_is_in_sync() {
    let dir = TestDir::new();
    let primary = fixture("snapshots/primary");
    let p = primary.to_str().unwrap();
    let run = dir.cmd(&["diff", "--primary", p, "--replica", &format!("copy={p}")]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .starts_with("copy: 12 in sync, 0 to create, 0 to update, 0 to prune, 0 conflicts"),
        "{run}"
    );
}

#[test]
fn verbose_reports_what_was_skipped() {
    let dir = TestDir::new();
    let run = diff(&dir, &["-v"]);
    let err = run.stderr();
    for reason in [
        "kube-* namespace",
        "cluster CA bundle",
        "service account token",
    ] {
        assert!(err.contains(reason), "missing {reason:?}\n{run}");
    }
    assert!(
        run.stdout()
            .contains("= in sync        shop/Deployment/web"),
        "{run}"
    );
}

#[test]
fn scope_flags_restrict_kinds_and_namespaces() {
    let dir = TestDir::new();
    let run = diff(
        &dir,
        &[
            "-o",
            "json",
            "--kinds",
            "secrets,deployments",
            "--sync-namespaces",
            "shop",
        ],
    );
    let names: Vec<_> = actions(&run.json()).into_keys().collect();
    assert_eq!(
        names,
        ["shop/Deployment/api", "shop/Secret/db-credentials"],
        "{run}"
    );

    let run = diff(
        &dir,
        &[
            "-o",
            "json",
            "--allow-sensitive-namespaces",
            "--sync-namespaces",
            "kube-system",
        ],
    );
    let json = run.json();
    assert!(
        json["replicas"][0]["summary"]["update"].as_u64().unwrap() > 0,
        "{run}"
    );
}

#[test]
fn excluded_namespaces_are_left_out_whatever_else_names_them() {
    let dir = TestDir::new();
    let all = diff(&dir, &["-o", "json"]);
    assert!(
        actions(&all.json())
            .keys()
            .any(|k| k.starts_with("billing/")),
        "{all}"
    );
    for vars in [vec![], vec![("POD_NAMESPACE", "billing")]] {
        let args = if vars.is_empty() {
            vec!["-o", "json", "--exclude-namespaces", "billing"]
        } else {
            vec!["-o", "json", "--sync-namespaces", "billing,shop"]
        };
        let run = diff_with_env(&dir, &args, &vars);
        let names: Vec<_> = actions(&run.json()).into_keys().collect();
        assert!(!names.is_empty(), "{run}");
        assert!(
            names.iter().all(|n| !n.starts_with("billing/")),
            "{vars:?}: {names:?}"
        );
    }
}

#[test]
fn an_in_cluster_primary_outside_a_cluster_is_a_one_line_error() {
    let dir = TestDir::new();
    let replica = fixture("snapshots/replica");
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "in-cluster",
        "--replica",
        replica.to_str().unwrap(),
    ]);
    run.expect_code(2);
    let stderr = run.stderr();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "k8s-sync: primary in-cluster: in-cluster: no service account of a Pod here:"
        ),
        "{stderr}"
    );
}

#[test]
fn invalid_yaml_is_an_error_naming_file_and_line() {
    let dir = TestDir::new();
    dir.write(
        "src/ok.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    dir.write(
        "src/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
    );
    dir.write("dst/x.yaml", "");
    let run = dir.cmd(&["diff", "--primary", "src", "--replica", "dst"]);
    run.expect_code(2);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "one line\n{run}");
    assert!(
        err.starts_with("k8s-sync: primary src: src/bad.yaml:"),
        "{run}"
    );
    assert!(err.contains("invalid YAML"), "{run}");
}

#[test]
fn a_broken_replica_fails_alone() {
    let dir = TestDir::new();
    dir.write(
        "src/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    dir.write(
        "good/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    dir.write("bad/cm.yaml", ": :\n  - [");
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "src",
        "--replica",
        "bad",
        "--replica",
        "good",
    ]);
    run.expect_code(2);
    assert!(run.stdout().contains("good: 1 in sync"), "{run}");
    assert!(run.stderr().contains("replica bad: bad/cm.yaml"), "{run}");
    let run = dir.cmd(&["diff", "--primary", "src", "--replica", "missing"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr(),
        "k8s-sync: replica: missing: no such file or directory\n",
        "{run}"
    );
}

#[test]
fn reads_lists_json_and_defaults_the_namespace() {
    let dir = TestDir::new();
    dir.write(
        "src/list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n  data: {k: v}\n",
    );
    dir.write(
        "src/pod.json",
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}"#,
    );
    dir.write("src/readme.txt", "not yaml: [");
    dir.write(
        "dst/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\ndata: {k: v}\n",
    );
    let run = dir.cmd(&["diff", "--primary", "src", "--replica", "dst", "-v"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("= in sync        default/ConfigMap/a"),
        "{run}"
    );
    assert!(
        run.stderr().contains("skipped 1 (unknown kind v1/Pod)"),
        "{run}"
    );
}

#[test]
fn snapshot_writes_a_redacted_archive_that_verifies() {
    let dir = TestDir::new();
    let primary = fixture("snapshots/primary");
    let run = dir.cmd(&[
        "snapshot",
        "--source",
        primary.to_str().unwrap(),
        "--out",
        "snap",
    ]);
    run.expect_code(0);
    assert!(
        run.stderr().contains("wrote 12 objects of primary to snap"),
        "{run}"
    );
    let secret =
        std::fs::read_to_string(dir.path().join("snap/shop/secrets/db-credentials.yaml")).unwrap();
    assert!(secret.contains("<redacted>"), "{secret}");
    let mut all = String::new();
    for entry in walkdir::WalkDir::new(dir.path().join("snap")) {
        all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert_no_secret_values(&all);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("snap/manifest.json")).unwrap(),
    )
    .unwrap();
    for entry in manifest["objects"].as_array().unwrap() {
        // A hash of a weak Secret value could be reversed by guessing: redacted archives have none.
        let is_secret = entry["kind"] == "Secret";
        assert_eq!(entry.get("change_key").is_none(), is_secret, "{entry}");
        assert_eq!(entry["redacted"], is_secret, "{entry}");
    }

    dir.cmd(&["snapshot", "verify", "snap"]).expect_code(0);
}

#[test]
fn snapshot_verify_names_every_tampered_file() {
    let dir = TestDir::new();
    let primary = fixture("snapshots/primary");
    dir.cmd(&[
        "snapshot",
        "--source",
        primary.to_str().unwrap(),
        "--out",
        "snap",
    ])
    .expect_code(0);
    let cm = dir.path().join("snap/shop/configmaps/web-config.yaml");
    let text = std::fs::read_to_string(&cm).unwrap();
    std::fs::write(&cm, text + "# edited\n").unwrap();
    std::fs::remove_file(dir.path().join("snap/billing/secrets/stripe.yaml")).unwrap();
    dir.write("snap/shop/configmaps/planted.yaml", "kind: ConfigMap\n");
    let run = dir.cmd(&["snapshot", "verify", "snap"]);
    run.expect_code(1);
    assert_eq!(
        run.stdout(),
        "snap: removed: billing/secrets/stripe.yaml\n\
         snap: changed: shop/configmaps/web-config.yaml\n\
         snap: added: shop/configmaps/planted.yaml\n",
        "{run}"
    );
    dir.cmd(&["snapshot", "verify", "nowhere"]).expect_code(2);
}

#[test]
fn a_snapshot_is_a_valid_source() {
    let dir = TestDir::new();
    let primary = fixture("snapshots/primary");
    let replica = fixture("snapshots/replica");
    for (out, extra) in [("redacted", None), ("clear", Some("--include-secret-data"))] {
        let mut args = vec![
            "snapshot",
            "--source",
            primary.to_str().unwrap(),
            "--out",
            out,
        ];
        args.extend(extra);
        dir.cmd(&args).expect_code(0);
        let run = dir.cmd(&[
            "diff",
            "--primary",
            out,
            "--replica",
            replica.to_str().unwrap(),
            "-q",
        ]);
        run.expect_code(1);
        assert_eq!(
            run.stdout(),
            "replica: 5 in sync, 3 to create, 4 to update, 1 to prune, 0 conflicts\n",
            "{out}: {run}"
        );
    }
    // The snapshot keeps the source's name (a directory's path) and the name its objects
    // carried before (the directory's own), so a replica's managed objects still count as its.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("clear/manifest.json")).unwrap(),
    )
    .unwrap();
    let path = primary.canonicalize().unwrap().display().to_string();
    assert_eq!(manifest["source"], path.as_str());
    assert_eq!(manifest["aliases"], serde_json::json!(["primary"]));
}

#[test]
fn snapshot_refuses_names_that_escape_the_directory() {
    let dir = TestDir::new();
    dir.write(
        "src/evil.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../escaped, namespace: shop}\n",
    );
    let run = dir.cmd(&["snapshot", "--source", "src", "--out", "out/snap"]);
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("\"../../escaped\" is not a valid Kubernetes name"),
        "{run}"
    );
    assert!(!dir.path().join("escaped.yaml").exists() && !dir.path().join("out").exists());
}

#[test]
fn snapshot_refuses_a_non_empty_output_directory() {
    let dir = TestDir::new();
    dir.write(
        "src/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    dir.write("out/keep.txt", "mine");
    let run = dir.cmd(&["snapshot", "--source", "src", "--out", "out"]);
    run.expect_code(2);
    assert!(run.stderr().contains("directory is not empty"), "{run}");
}

#[test]
fn help_explains_each_command_with_an_example() {
    let dir = TestDir::new();
    for command in [
        &["diff", "--help"][..],
        &["snapshot", "--help"],
        &["snapshot", "verify", "--help"],
        &["--help"],
    ] {
        let run = dir.cmd(command);
        run.expect_code(0);
        assert!(
            run.stdout().contains("Exit codes") || run.stdout().contains("Example"),
            "{run}"
        );
    }
    let run = dir.cmd(&[]);
    run.expect_code(2);
    assert!(run.stderr().contains("Usage"), "{run}");
    dir.cmd(&["diff", "--kinds", "pods", "--primary", "x"])
        .expect_code(2);
}

#[test]
fn an_archive_of_format_v1_is_still_verified_and_read() {
    let dir = TestDir::new();
    let v1 = fixture("archives/v1");
    let run = dir.cmd(&["snapshot", "verify", v1.to_str().unwrap()]);
    run.expect_code(0);
    // The same manifests archived now: v2, resources named by `plural.group`.
    dir.write(
        "src/app.yaml",
        &std::fs::read_to_string(v1.join("shop/deployments/web.yaml")).unwrap(),
    );
    dir.write(
        "src/cm.yaml",
        &std::fs::read_to_string(v1.join("shop/configmaps/settings.yaml")).unwrap(),
    );
    dir.cmd(&["snapshot", "--source", "src", "--out", "v2"])
        .expect_code(0);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("v2/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["format"], "k8s-sync-snapshot/v2");
    assert!(
        dir.path()
            .join("v2/shop/deployments.apps/web.yaml")
            .is_file()
    );
    assert!(
        dir.path()
            .join("v2/shop/configmaps/settings.yaml")
            .is_file()
    );
    let web = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "web")
        .unwrap();
    assert_eq!(
        (&web["kind"], &web["api_version"], &web["resource"]),
        (
            &json!("Deployment"),
            &json!("apps/v1"),
            &json!("deployments.apps")
        )
    );
    // A v1 archive as the primary of a pass: its objects compare with today's.
    let run = dir.cmd(&[
        "diff",
        "--primary",
        v1.to_str().unwrap(),
        "--replica",
        "v2",
        "--kinds",
        "configmaps,deployments",
    ]);
    run.expect_code(0);
}

#[test]
fn kinds_beyond_the_table_come_from_a_directorys_files() {
    let dir = TestDir::new();
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\nspec:\n  size: 1\n";
    dir.write("primary/widget.yaml", widget);
    dir.write("replica/widget.yaml", &widget.replace("size: 1", "size: 2"));
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "primary",
        "--replica",
        "replica",
        "--kinds",
        "all",
        "-o",
        "json",
    ]);
    run.expect_code(1);
    assert_eq!(
        actions(&run.json())
            .get("shop/Widget.example.com/w")
            .map(String::as_str),
        Some("update"),
        "{run}"
    );
    // Not named, not synced: the default five kinds leave it out.
    dir.cmd(&["diff", "--primary", "primary", "--replica", "replica"])
        .expect_code(0);
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "primary",
        "--replica",
        "replica",
        "--kinds",
        "widget",
    ]);
    run.expect_code(1);
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "primary",
        "--replica",
        "replica",
        "--kinds",
        "gadgets",
    ]);
    run.expect_code(2);
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{run}");
    assert!(
        stderr.contains("--kinds: the primary serves no resource \"gadgets\""),
        "{run}"
    );
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "primary",
        "--replica",
        "replica",
        "--kinds",
        "pods",
    ]);
    run.expect_code(2);
    assert!(run.stderr().contains("pods is never synced"), "{run}");
}

#[test]
fn a_manifest_at_another_version_holds_its_kind_rather_than_prune_its_copies() {
    let dir = TestDir::new();
    // An HPA written at autoscaling/v1; k8s-sync reads HPAs at v2, so this one is not compared.
    dir.write(
        "primary/hpa.yaml",
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  maxReplicas: 3\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n",
    );
    // The replica's copy, written by k8s-sync from this primary before.
    dir.write(
        "replica/hpa.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    k8s-sync.io/source: primary\n    k8s-sync.io/change-key: sha256:0000000000000000000000000000000000000000000000000000000000000000\nspec:\n  maxReplicas: 3\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n",
    );
    let run = dir.cmd(&[
        "diff",
        "--primary",
        "primary",
        "--replica",
        "replica",
        "--kinds",
        "horizontalpodautoscalers",
        "-o",
        "json",
    ]);
    run.expect_code(1);
    let json = run.json();
    let replica = &json["replicas"][0];
    assert_eq!(replica["summary"]["prune"], 0, "{run}");
    let waiting = replica["waiting"].to_string();
    assert!(
        waiting.contains("at autoscaling/v1, which k8s-sync reads at autoscaling/v2"),
        "{run}"
    );
}
