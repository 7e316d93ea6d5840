//! Passes from any cluster of the local control plane to others, and the bulk objects and
//! job listings the end-to-end tests of faults and safety rules read.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::objects::create;
use super::testenv::TestEnv;
use super::{Run, TestDir};

/// Runs `k8s-sync COMMAND` from `primary` to `replicas` over namespace `ns` (with the job
/// database `jobs.db`, but for `diff`), with `extra` arguments.
pub fn pass(
    dir: &TestDir,
    env: &TestEnv,
    command: &str,
    primary: &str,
    replicas: &[&str],
    ns: &str,
    extra: &[&str],
) -> Run {
    let mut args: Vec<String> = vec![command.into(), "--primary".into(), env.arg(primary)];
    for replica in replicas {
        args.extend(["--replica".into(), env.arg(replica)]);
    }
    args.extend(["--sync-namespaces".into(), ns.into()]);
    args.extend(["--db".into(), "jobs.db".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dir.cmd(&args)
}

/// Creates ConfigMaps `{prefix}-000`… in `ns`, `count` of them, with `data: {n: <i>}`.
pub async fn configmaps(client: &kube::Client, ns: &str, prefix: &str, count: usize) {
    for i in 0..count {
        let name = format!("{prefix}-{i:03}");
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"n": i.to_string()}});
        create(client, ns, object).await;
    }
}

/// Every object of a kind (by plural) in `ns`, by name.
pub async fn objects(client: &kube::Client, ns: &str, plural: &str) -> BTreeMap<String, Value> {
    let kind = k8s_sync::kinds::by_plural(plural).expect("a synced kind");
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    api.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list {plural} in {ns}: {e}"))
        .items
        .into_iter()
        .map(|o| {
            let name = o.metadata.name.clone().unwrap_or_default();
            (name, serde_json::to_value(o).unwrap())
        })
        .collect()
}

/// The jobs `jobs list -o json ARGS` prints, from `dir/jobs.db`.
pub fn jobs(dir: &TestDir, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "jobs", "list", "--db", "jobs.db", "-o", "json", "--limit", "10000",
    ];
    args.extend_from_slice(extra);
    let run = dir.cmd(&args);
    run.expect_code(0);
    run.json().as_array().cloned().unwrap_or_default()
}

/// The value of the sample whose line starts with `series` in Prometheus text, if any.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `apply` of `ns` from the primary (source name `primary`) to replica-2 as its read-only
/// user, under the replica name `ro`: every write is refused, so each object becomes a
/// failed job in `dir`'s `jobs.db`, for a retry to run later with other credentials.
pub fn apply_as_readonly(dir: &TestDir, env: &TestEnv, ns: &str) -> Run {
    let readonly = format!("ro={}", env.readonly_kubeconfig("replica-2").display());
    let primary = env.arg("primary");
    dir.cmd(&[
        "apply",
        "--primary",
        &primary,
        "--source-name",
        "primary",
        "--replica",
        &readonly,
        "--sync-namespaces",
        ns,
        "--db",
        "jobs.db",
    ])
}
