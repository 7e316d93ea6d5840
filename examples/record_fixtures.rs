//! Records what a real kube-apiserver returns for each synced kind into `fixtures/apiserver/`,
//! so the normalization tests run on the server's shapes (defaults, managedFields, status)
//! rather than on guesses.
//!
//! ```sh
//! eval "$(scripts/testenv up)"
//! cargo run --example record_fixtures
//! ```

use std::path::PathBuf;

use anyhow::Context;
use k8s_sync::endpoint::Cluster;
use k8s_sync::kinds;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = std::env::var("K8S_SYNC_TESTENV")
        .context("K8S_SYNC_TESTENV is not set; run: eval \"$(scripts/testenv up)\"")?;
    let kubeconfig = PathBuf::from(env).join("primary.kubeconfig");
    let cluster = Cluster::connect("primary", &kubeconfig, None).await?;
    let version = cluster.version().await?;
    let namespace = format!("fixtures-{:06x}", fastrand::u32(..0xffffff));
    cluster.ensure_namespace(&namespace, false).await?;

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/apiserver");
    std::fs::create_dir_all(&out)?;
    for object in objects(&namespace) {
        let kind = kinds::by_type(
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        )
        .expect("a synced kind");
        // As `kubectl apply` leaves objects: last-applied-configuration plus a second manager.
        let mut applied = object.clone();
        applied["metadata"]["annotations"] = json!({
            "kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&object)?,
        });
        cluster.apply(kind, &applied, false).await?;
        let name = object["metadata"]["name"].as_str().unwrap();
        let mut recorded = cluster
            .get(kind, &namespace, name)
            .await?
            .context("just created")?;
        // Namespaces differ per run; record them under a stable name.
        recorded["metadata"]["namespace"] = "shop".into();
        let path = out.join(format!("{}.yaml", kind.plural));
        std::fs::write(&path, k8s_sync::normalize::to_yaml(&recorded))?;
        println!("recorded {}", path.display());
    }
    std::fs::write(
        out.join("VERSION"),
        format!(
            "Recorded from kube-apiserver {version} by `cargo run --example record_fixtures`.\n"
        ),
    )?;
    Ok(())
}

fn objects(namespace: &str) -> Vec<Value> {
    let meta = |name: &str| json!({"name": name, "namespace": namespace, "labels": {"app": name}});
    let template = |app: &str, image: &str| {
        json!({"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": app, "image": image,
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("web-config"),
            "data": {"LOG_LEVEL": "info", "FEATURE": "off", "nginx.conf": "server {\n  listen 8080;\n}\n"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("db-credentials"), "type": "Opaque",
            "stringData": {"username": "shop_app", "password": "fixture-only-password"}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("uploads"),
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                "resources": {"requests": {"storage": "5Gi"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": template("web", "registry.example.com/shop/web:2.4.1")}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                "template": template("db", "postgres:17"),
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}}),
    ]
}
