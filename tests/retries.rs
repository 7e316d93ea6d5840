//! Retries against a scripted HTTP server standing in for an API server: an error path that a
//! real server cannot be made to take on demand. Not an end-to-end test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_sync::endpoint::Cluster;
use k8s_sync::scope::Scope;

/// Serves `responses` in order (status, body), then 200 with an empty list forever; counts
/// requests.
fn scripted(responses: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let address = format!("http://{}", server.server_addr().to_ip().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut script = responses.into_iter();
        for request in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            let (code, body) = script.next().unwrap_or((
                200,
                r#"{"kind":"List","apiVersion":"v1","metadata":{},"items":[]}"#,
            ));
            let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
            let _ = request.respond(
                tiny_http::Response::from_string(body)
                    .with_status_code(code)
                    .with_header(header),
            );
        }
    });
    (address, count)
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("scripted.kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: s\nclusters:\n- name: s\n  cluster: {{server: '{server}'}}\n\
         contexts:\n- name: s\n  context: {{cluster: s, user: s}}\nusers:\n- name: s\n  user: {{token: t}}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

const THROTTLED: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","reason":"TooManyRequests","code":429,"details":{"retryAfterSeconds":1}}"#;
const UNAVAILABLE: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd leader changed","reason":"ServiceUnavailable","code":503}"#;
const INVALID: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"bad","reason":"Invalid","code":422}"#;

#[tokio::test]
async fn lists_retry_throttling_and_unavailability_honouring_retry_after() {
    let (server, count) = scripted(vec![(429, THROTTLED), (503, UNAVAILABLE)]);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect("scripted", &kubeconfig(dir.path(), &server), None)
        .await
        .unwrap();
    let scope = Scope {
        kinds: k8s_sync::kinds::KindSet::of([k8s_sync::kinds::by_plural("configmaps").unwrap()]),
        ..Scope::default()
    };
    let started = Instant::now();
    let (listed, _) = cluster
        .snapshot("scripted", &scope, false, None)
        .await
        .expect("succeeds after retries");
    assert!(listed.objects.is_empty());
    // namespaces: 429, 503, 200; configmaps: 200.
    assert_eq!(count.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the server's Retry-After"
    );
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let (server, count) = scripted(vec![(422, INVALID)]);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect("scripted", &kubeconfig(dir.path(), &server), None)
        .await
        .unwrap();
    let error = cluster
        .snapshot("scripted", &Scope::default(), false, None)
        .await
        .unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(error.to_string(), "list namespaces: 422 Invalid: bad");
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let (server, count) = scripted(vec![(503, UNAVAILABLE); 10]);
    let dir = tempfile::tempdir().unwrap();
    let retry = k8s_sync::retry::RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };
    let cluster = Cluster::connect("scripted", &kubeconfig(dir.path(), &server), None)
        .await
        .unwrap()
        .with_retry(retry);
    let error = cluster
        .snapshot("scripted", &Scope::default(), false, None)
        .await
        .unwrap_err();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(error.to_string().contains("503"), "{error}");
}

#[tokio::test]
async fn a_write_is_retried_and_its_attempts_recorded_in_its_job() {
    use k8s_sync::apply::{self, ApplyOptions, Journal, Silent};
    use k8s_sync::diff::{Plan, PlanOptions};
    use k8s_sync::snapshot::{RawObject, Snapshot};
    use k8s_sync::store::{JobFilter, Status, Store};

    let (server, count) = scripted(vec![(503, UNAVAILABLE), (429, THROTTLED)]);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect("r", &kubeconfig(dir.path(), &server), None)
        .await
        .unwrap();
    let raw = RawObject {
        value: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "shop"}, "data": {"k": "v"}}),
        origin: "test".into(),
        archived: None,
    };
    let desired = Snapshot::build("primary", [raw], &Scope::default()).unwrap();
    let mut live = Snapshot::default();
    live.namespaces.insert("shop".into());
    let plan = Plan::new("r", &desired, &live, PlanOptions::default());
    let store = Store::in_memory().unwrap();
    let metrics = k8s_sync::metrics::Metrics::new();
    let journal = Journal {
        store: &store,
        metrics: &metrics,
        progress: &Silent,
        pass_options: None,
    };
    let options = ApplyOptions {
        retry: k8s_sync::retry::RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        ..ApplyOptions::default()
    };
    let started = Instant::now();
    let report = apply::apply(&cluster, &plan, &desired, &live, journal, &options)
        .await
        .unwrap();
    assert_eq!((report.created, report.failed), (1, 0));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After of the 429 honoured"
    );
    let jobs = store.jobs(&JobFilter::default()).unwrap();
    assert_eq!((jobs[0].status, jobs[0].attempts), (Status::Succeeded, 3));
}
