//! The API servers' own floor under a pass, for `scripts/bench scale`: what the same requests
//! cost through kube's client (the HTTP and TLS stack k8s-sync uses) with none of k8s-sync's
//! work on top. Prints one JSON line.
//!
//! ```sh
//! # Paginated LISTs (500 a page) of the namespaces and the five default kinds, bodies read
//! # and dropped: the first kubeconfig's cluster, then all the others at once.
//! cargo run --release --example server_floor -- list PRIMARY.kubeconfig REPLICA.kubeconfig...
//! # Server-side apply PATCHes (field manager, force) of the first COUNT objects of DIR's
//! # multi-document files, into namespaces `PREFIX<namespace>` of every cluster at once,
//! # CONCURRENCY requests in flight per cluster.
//! cargo run --release --example server_floor -- apply DIR COUNT CONCURRENCY PREFIX KUBECONFIG...
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, stream};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

const LISTED: [&str; 6] = [
    "/api/v1/namespaces",
    "/api/v1/configmaps",
    "/api/v1/secrets",
    "/api/v1/persistentvolumeclaims",
    "/apis/apps/v1/deployments",
    "/apis/apps/v1/statefulsets",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, rest)) if command == "list" && !rest.is_empty() => list(rest).await,
        Some((command, rest)) if command == "apply" && rest.len() >= 5 => apply(rest).await,
        _ => {
            eprintln!(
                "usage: server_floor list KUBECONFIG...\n       \
                 server_floor apply DIR COUNT CONCURRENCY PREFIX KUBECONFIG..."
            );
            std::process::exit(2);
        }
    }
}

async fn client(kubeconfig: &str) -> anyhow::Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// Every page of every listed collection; returns (pages, bytes).
async fn list_all(client: &Client) -> anyhow::Result<(usize, usize)> {
    let (mut pages, mut bytes) = (0, 0);
    for path in LISTED {
        let mut token = String::new();
        loop {
            let mut uri = format!("{path}?limit=500");
            if !token.is_empty() {
                uri.push_str(&format!("&continue={token}"));
            }
            let request = http::Request::get(uri).body(Vec::new())?;
            let body = client.request_text(request).await?;
            pages += 1;
            bytes += body.len();
            // The continue token is in the list's metadata, at the start of the body.
            let head = &body[..body.len().min(4096)];
            token = head
                .split_once("\"continue\":\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(token, _)| token.to_string())
                .unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
    }
    Ok((pages, bytes))
}

async fn list(kubeconfigs: &[String]) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for kubeconfig in kubeconfigs {
        clients.push(client(kubeconfig).await?);
    }
    let started = Instant::now();
    let (mut pages, mut bytes) = list_all(&clients[0]).await?;
    let primary_seconds = started.elapsed().as_secs_f64();
    for result in futures::future::join_all(clients[1..].iter().map(list_all)).await {
        let (p, b) = result?;
        pages += p;
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"seconds": seconds, "primary_seconds": primary_seconds, "pages": pages, "bytes": bytes})
    );
    Ok(())
}

/// The collection path of an object of the bench's kinds.
fn collection(object: &Value) -> Option<String> {
    let namespace = object.pointer("/metadata/namespace")?.as_str()?;
    let (api, plural) = match object.get("kind")?.as_str()? {
        "ConfigMap" => ("/api/v1", "configmaps"),
        "Secret" => ("/api/v1", "secrets"),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "StatefulSet" => ("/apis/apps/v1", "statefulsets"),
        "PersistentVolumeClaim" => ("/api/v1", "persistentvolumeclaims"),
        _ => return None,
    };
    Some(format!("{api}/namespaces/{namespace}/{plural}"))
}

fn read_objects(dir: &Path, count: usize) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    files.sort_by_key(|f| f.file_name());
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file.path())?;
        for part in text.split("---\n").filter(|p| !p.trim().is_empty()) {
            let object: Value = serde_json::from_str(part)?;
            if collection(&object).is_some() {
                objects.push(object);
            }
        }
    }
    objects.truncate(count);
    Ok(objects)
}

async fn apply(args: &[String]) -> anyhow::Result<()> {
    let [dir, count, concurrency, prefix, kubeconfigs @ ..] = args else {
        unreachable!("checked by main");
    };
    let count: usize = count.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let mut objects = read_objects(Path::new(dir), count)?;
    let mut namespaces = std::collections::BTreeSet::new();
    for object in &mut objects {
        let namespace = format!(
            "{prefix}{}",
            object["metadata"]["namespace"].as_str().unwrap()
        );
        object["metadata"]["namespace"] = namespace.clone().into();
        namespaces.insert(namespace);
    }
    let objects = Arc::new(objects);
    let mut clients = Vec::new();
    for kubeconfig in kubeconfigs {
        let client = client(kubeconfig).await?;
        for namespace in &namespaces {
            let body =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            let request = http::Request::post("/api/v1/namespaces")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?)?;
            match client.request_text(request).await {
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                other => drop(other?),
            }
        }
        clients.push(client);
    }
    let started = Instant::now();
    let writes = clients.iter().map(|client| {
        let objects = objects.clone();
        async move {
            stream::iter(0..objects.len())
                .map(|i| {
                    let object = &objects[i];
                    let name = object["metadata"]["name"].as_str().unwrap();
                    let uri = format!(
                        "{}/{name}?fieldManager=bench&force=true",
                        collection(object).unwrap()
                    );
                    let request = http::Request::patch(uri)
                        .header("content-type", "application/apply-patch+yaml")
                        .body(serde_json::to_vec(object).unwrap())
                        .unwrap();
                    client.request_text(request)
                })
                .buffer_unordered(concurrency)
                .filter_map(|result| async move { result.err() })
                .collect::<Vec<_>>()
                .await
        }
    });
    let failed: usize = futures::future::join_all(writes)
        .await
        .iter()
        .map(Vec::len)
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let writes = objects.len() * clients.len();
    println!(
        "{}",
        json!({"concurrency": concurrency, "writes": writes, "failed": failed, "seconds": seconds,
               "writes_per_second": (writes as f64 / seconds).round()})
    );
    Ok(())
}
