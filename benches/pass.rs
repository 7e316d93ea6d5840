//! Benchmarks of the offline pass: normalize + change key per object, and a whole diff.
//!
//! Run with `cargo bench --bench pass`; figures are recorded in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use k8s_sync::diff::{Plan, PlanOptions};
use k8s_sync::endpoint::Endpoint;
use k8s_sync::kinds;
use k8s_sync::normalize::{ChangeKey, normalize};
use k8s_sync::scope::Scope;
use serde_json::{Value, json};

/// A Deployment as kube-apiserver returns it: defaults, managedFields, status.
fn deployment(i: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": format!("web-{i}"), "namespace": format!("ns-{}", i % 20),
            "uid": "0b6f2a7e-4f0e-4c8e-9d55-3c1b2f6d9a10", "resourceVersion": "48211", "generation": 3,
            "creationTimestamp": "2026-11-02T09:14:27Z",
            "labels": {"app": "web", "tier": "frontend", "app.kubernetes.io/part-of": "shop"},
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"}}"
            },
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
                 "time": "2026-11-02T09:14:27Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                 "time": "2026-11-02T09:15:01Z", "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:availableReplicas": {}, "f:replicas": {}}}}
            ]
        },
        "spec": {
            "replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web", "tier": "frontend"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "registry.example.com/shop/web:2.4.1",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                            "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
    })
}

fn configmap_1mib() -> Value {
    let data: serde_json::Map<String, Value> = (0..256)
        .map(|i| (format!("key-{i}"), Value::String("x".repeat(4096))))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "shop", "uid": "u", "resourceVersion": "9"},
        "data": data})
}

fn normalize_and_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize+change_key");
    group.throughput(Throughput::Elements(1));
    for (name, object) in [
        ("deployment", deployment(0)),
        ("configmap-1MiB", configmap_1mib()),
    ] {
        let kind = kinds::by_type(
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        )
        .unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(name), &object, |b, object| {
            b.iter(|| {
                let mut object = object.clone();
                normalize(&mut object, kind);
                black_box(ChangeKey::of(&object))
            })
        });
    }
    group.finish();
}

/// Writes `count` objects to a directory: half Deployments, half ConfigMaps, one per file.
fn write_tree(dir: &std::path::Path, count: usize, drift_every: usize) {
    for i in 0..count {
        let mut object = if i % 2 == 0 {
            deployment(i)
        } else {
            let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cfg-{i}"), "namespace": format!("ns-{}", i % 20)},
                "data": {"settings.yaml": "log: info\nregion: eu\n"}});
            cm["metadata"]["uid"] = "u".into();
            cm
        };
        if drift_every > 0 && i % drift_every == 0 {
            object["metadata"]["labels"] = json!({"drifted": "yes"});
        }
        let path = dir.join(format!("{i:05}.yaml"));
        std::fs::write(path, serde_yaml::to_string(&object).unwrap()).unwrap();
    }
}

fn offline_diff(c: &mut Criterion) {
    const OBJECTS: usize = 10_000;
    let primary = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    write_tree(primary.path(), OBJECTS, 0);
    write_tree(replica.path(), OBJECTS, 100);
    let scope = Scope::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let source = Endpoint::parse(primary.path().to_str().unwrap()).unwrap();
    let target = Endpoint::parse(replica.path().to_str().unwrap()).unwrap();

    let mut group = c.benchmark_group("offline diff");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(OBJECTS as u64));
    group.bench_function("10k objects, read+normalize+plan", |b| {
        b.iter(|| {
            let desired = runtime.block_on(source.snapshot(&scope)).unwrap();
            let live = runtime.block_on(target.snapshot(&scope)).unwrap();
            let plan = Plan::new("replica", &desired, &live, PlanOptions::default());
            assert_eq!(plan.summary.drift(), OBJECTS / 100);
            black_box(plan)
        })
    });
    let desired = runtime.block_on(source.snapshot(&scope)).unwrap();
    let live = runtime.block_on(target.snapshot(&scope)).unwrap();
    group.bench_function("10k objects, plan only", |b| {
        b.iter(|| {
            black_box(Plan::new(
                "replica",
                &desired,
                &live,
                PlanOptions::default(),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, normalize_and_key, offline_diff);
criterion_main!(benches);
