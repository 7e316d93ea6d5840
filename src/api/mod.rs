//! The HTTP API: login and users, the job dashboard and list, cluster status, job retries,
//! Prometheus metrics and health checks.
//!
//! [`Server`] runs tiny_http with a few worker threads that share one [`Api`]: the job database,
//! the process's metrics, the authenticator and, when the process has a primary and replicas,
//! their [`PassContext`]. Async work (status probes, retries) runs on the tokio runtime whose
//! [`Handle`](tokio::runtime::Handle) the API was given; the worker threads are not runtime
//! threads, so they may block on it. Routes are data: [`routes()`].

pub mod auth;
pub mod http;
pub mod routes;
pub mod status;

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use auth::Authenticator;
pub use http::{Method, Reply, Request};
pub use routes::{Route, routes};
pub use status::PassContext;

use crate::metrics::Metrics;
use crate::store::Store;

/// Says whether the process is ready for traffic (`/readyz`), beyond the database answering.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// Reports the state of a process's watchers for `/api/status` (watch mode).
pub type Watchers = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Everything the handlers share.
pub struct Api {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    auth: Authenticator,
    pass: Option<PassContext>,
    readiness: Readiness,
    watchers: Option<Watchers>,
    runtime: tokio::runtime::Handle,
    probes: status::ProbeCache,
    dashboard: routes::DashboardCache,
    access_log: bool,
}

impl Api {
    /// An API over a job database and metrics, running async work on `runtime`.
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        auth: Authenticator,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Api {
            store,
            metrics,
            auth,
            pass: None,
            readiness: Arc::new(|| true),
            watchers: None,
            runtime,
            probes: status::ProbeCache::default(),
            dashboard: routes::DashboardCache::default(),
            access_log: false,
        }
    }

    /// Adds the primary and replicas, for `/api/status` and `/retry`.
    pub fn with_pass(mut self, pass: PassContext) -> Self {
        self.pass = Some(pass);
        self
    }

    /// Adds a readiness condition to `/readyz` (default: ready once the database answers).
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Adds the watchers' states to `/api/status`.
    pub fn with_watchers(mut self, watchers: Watchers) -> Self {
        self.watchers = Some(watchers);
        self
    }

    /// Logs every request (method, path, status, time), never its query, headers or body.
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// The replicas the dashboard breaks counts down by.
    fn replica_names(&self) -> Vec<&String> {
        self.pass
            .iter()
            .flat_map(|p| p.replicas.iter().map(|r| &r.name))
            .collect()
    }

    /// Answers one request.
    pub fn handle(&self, request: &mut Request<'_>) -> Reply {
        let started = Instant::now();
        let (route, mut reply) = routes::dispatch(self, request);
        let elapsed = started.elapsed();
        let route_label = route.map_or("unmatched", |r| r.path);
        self.metrics
            .observe_request(route_label, request.method.as_str(), reply.status, elapsed);
        if reply.status >= 500 {
            let message = reply.body_json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            tracing::error!(
                method = %request.method,
                path = ?request.path,
                status = reply.status,
                "{message}"
            );
        } else if self.access_log {
            tracing::info!(
                method = %request.method,
                path = ?request.path,
                status = reply.status,
                ms = format_args!("{:.1}", elapsed.as_secs_f64() * 1000.0),
                "request"
            );
        }
        if route.is_some_and(|r| r.path.starts_with("/api") || r.path == "/retry") {
            reply.headers.push(("Cache-Control", "no-store".into()));
        }
        reply
    }
}

impl http::BodySource for tiny_http::Request {
    fn reader(&mut self) -> &mut dyn io::Read {
        self.as_reader()
    }
}

/// Worker threads a server usually runs: requests without a body are answered on them.
pub const WORKERS: usize = 4;

/// Declared bodies larger than this are never drained. tiny_http 0.12 discards an unread body
/// when the request is dropped by allocating one buffer as large as what is left of the
/// declared length, and the process aborts when that allocation fails; such a request is
/// therefore never dropped (see [`serve`]).
pub const DRAIN_LIMIT: usize = 64 << 20;

/// How long [`Server::shutdown`] waits for requests served on threads of their own (within
/// the 30 s Kubernetes gives a pod to stop by default).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}

/// Whether the client sends a body (whose reading, or discarding, may wait on the client).
fn carries_body(raw: &tiny_http::Request) -> bool {
    raw.body_length().is_some_and(|n| n > 0)
        || raw
            .headers()
            .iter()
            .any(|h| h.field.equiv("Transfer-Encoding"))
}

/// Whether a request may take long: it reads a body (which may wait on the client), or its
/// route waits on clusters (`/retry`, `/api/status`) or on bcrypt (`/api/login`). Those are
/// served on threads of their own, so that the workers stay free for the rest.
fn runs_long(raw: &tiny_http::Request) -> bool {
    let path = raw.url().split('?').next().unwrap_or_default();
    carries_body(raw) || matches!(path, "/retry" | "/api/status" | "/api/login")
}

/// Serves one tiny_http request.
fn serve(api: &Api, mut raw: tiny_http::Request) {
    if let Some(declared) = raw.body_length().filter(|n| *n > DRAIN_LIMIT) {
        // Answering would drop the request, and dropping it would abort the process (see
        // DRAIN_LIMIT). The connection stays open without an answer, as an idle client's does.
        tracing::warn!(
            method = %raw.method(),
            path = ?raw.url().split('?').next().unwrap_or_default(),
            "refused a body declared as {declared} bytes; connection left open"
        );
        std::mem::forget(raw);
        return;
    }
    let method = Method::parse(raw.method().as_str());
    let target = raw.url().to_string();
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| (h.field.to_string(), h.value.as_str().to_string()))
        .collect();
    let remote = raw.remote_addr().map(|a| a.ip());
    let reply = {
        let mut request = Request::new(method, &target, headers, remote, &mut raw);
        api.handle(&mut request)
    };
    let length = reply.body.len();
    let mut response = tiny_http::Response::new(
        tiny_http::StatusCode(reply.status),
        Vec::new(),
        io::Cursor::new(reply.body),
        Some(length),
        None,
    )
    // The whole body is at hand: send its length rather than chunks.
    .with_chunked_threshold(usize::MAX);
    if !reply.content_type.is_empty() {
        response.add_header(header("Content-Type", reply.content_type));
    }
    for (name, value) in &reply.headers {
        response.add_header(header(name, value));
    }
    // The client went away: nothing to tell it.
    let _ = raw.respond(response);
}

/// Serves a request; a handler that panics answers 500 (the request's drop does) and the thread
/// lives on.
fn serve_guarded(api: &Api, raw: tiny_http::Request) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| serve(api, raw))).is_err() {
        tracing::error!("a request handler panicked");
    }
}

/// Requests being served on threads of their own (see [`runs_long`]).
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        InFlightGuard(self.clone())
    }

    /// Waits until none is left, or `limit` passed; the number left.
    fn wait(&self, limit: Duration) -> usize {
        let count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) = self
            .idle
            .wait_timeout_while(count, limit, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// What the worker threads share.
struct Shared {
    http: tiny_http::Server,
    api: Arc<Api>,
    stopping: AtomicBool,
    in_flight: Arc<InFlight>,
    failure: Mutex<Option<String>>,
    failed: tokio::sync::Notify,
}

/// A running HTTP server.
pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    address: SocketAddr,
}

impl Server {
    /// Binds `listen` and starts `workers` threads answering requests with `api`. Requests
    /// that may take long (a body to read, clusters to ask) are served on threads of their
    /// own, so that a client sending its body slowly, or a retry, never holds a worker.
    pub fn start(listen: SocketAddr, workers: usize, api: Arc<Api>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        // Accepted connections inherit TCP_NODELAY from the listener. tiny_http leaves Nagle's
        // algorithm on and writes a response larger than its 1 KiB buffer in two writes, so a
        // keep-alive client would wait for its own delayed ACK (40 ms) on every such response.
        socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
        let http = tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?;
        let address = http
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("the server is not listening on TCP"))?;
        let shared = Arc::new(Shared {
            http,
            api,
            stopping: AtomicBool::new(false),
            in_flight: Arc::default(),
            failure: Mutex::new(None),
            failed: tokio::sync::Notify::new(),
        });
        let mut handles = Vec::new();
        for index in 0..workers.max(1) {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("http-{index}"))
                .spawn(move || work(&shared))?;
            handles.push(handle);
        }
        Ok(Server {
            shared,
            workers: handles,
            address,
        })
    }

    /// The address the server listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Resolves when the server can no longer accept connections (tiny_http stops accepting
    /// after an error such as running out of file descriptors), with the reason.
    pub async fn failed(&self) -> String {
        loop {
            if let Some(reason) = self
                .shared
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return reason;
            }
            self.shared.failed.notified().await;
        }
    }

    /// Stops taking requests, lets the workers finish the requests already received, waits
    /// up to [`SHUTDOWN_GRACE`] for those served on threads of their own, and closes the
    /// listener.
    pub fn shutdown(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.shared.http.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
        let left = self.shared.in_flight.wait(SHUTDOWN_GRACE);
        if left > 0 {
            tracing::warn!("{left} request(s) still in flight; not waiting for them");
        }
    }
}

fn work(shared: &Arc<Shared>) {
    loop {
        match shared.http.recv() {
            Ok(request) if runs_long(&request) => {
                let guard = shared.in_flight.enter();
                let api = shared.api.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("http-long".into())
                        .spawn(move || {
                            let _guard = guard;
                            serve_guarded(&api, request);
                        });
                if let Err(error) = spawned {
                    tracing::error!("no thread for a request: {error}");
                }
            }
            Ok(request) => serve_guarded(&shared.api, request),
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                // tiny_http reports an accept error once, then accepts no more.
                tracing::error!("the HTTP listener stopped: {error}");
                *shared.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
                shared.failed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn api(runtime: &tokio::runtime::Runtime) -> Api {
        Api::new(
            Arc::new(Store::in_memory().unwrap()),
            Arc::new(Metrics::new()),
            Authenticator::new(4, Duration::from_secs(60)).unwrap(),
            runtime.handle().clone(),
        )
    }

    fn get(api: &Api, target: &str) -> Reply {
        let mut body = io::Cursor::new(Vec::new());
        api.handle(&mut Request::new(
            Method::Get,
            target,
            Vec::new(),
            None,
            &mut body,
        ))
    }

    #[test]
    fn readiness_is_pluggable() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            get(&api(&runtime), "/readyz").status,
            200,
            "ready by default"
        );
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        let api = api(&runtime).with_readiness(Arc::new(move || flag.load(Ordering::SeqCst)));
        let reply = get(&api, "/readyz");
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body_json()["error"], "not ready");
        ready.store(true, Ordering::SeqCst);
        assert_eq!(get(&api, "/readyz").status, 200);
        assert_eq!(get(&api, "/healthz").status, 200);
    }

    #[test]
    fn dashboard_counts_are_at_most_a_second_old() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let api = api(&runtime);
        api.store.add_user("ada", "unused hash").unwrap();
        api.store
            .add_session(&auth::token_digest("t"), "ada", i64::MAX)
            .unwrap();
        let total = || {
            let mut body = io::Cursor::new(Vec::new());
            let headers = vec![("Authorization".to_string(), "Bearer t".to_string())];
            let mut request = Request::new(Method::Get, "/api/dashboard", headers, None, &mut body);
            let reply = api.handle(&mut request);
            assert_eq!(reply.status, 200);
            reply.body_json()["total"].as_u64().unwrap()
        };
        assert_eq!(total(), 0);
        let job = crate::store::NewJob {
            replica: "r",
            kind: "ConfigMap",
            namespace: "ns",
            name: "a",
            operation: crate::store::Operation::Apply,
            change_key: "sha256:1",
            action: "create",
        };
        api.store.begin(&job).unwrap();
        let counted = Instant::now();
        let mut seen = total();
        while seen == 0 {
            assert!(counted.elapsed() < routes::DASHBOARD_TTL * 3, "still stale");
            std::thread::sleep(Duration::from_millis(50));
            seen = total();
        }
        assert_eq!(seen, 1);
    }

    #[test]
    fn api_replies_are_not_cached() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let api = api(&runtime);
        let reply = get(&api, "/api/dashboard");
        assert_eq!(reply.status, 401);
        assert!(
            reply
                .headers
                .contains(&("Cache-Control", "no-store".into()))
        );
        assert!(
            !get(&api, "/metrics")
                .headers
                .iter()
                .any(|(n, _)| *n == "Cache-Control")
        );
    }
}
