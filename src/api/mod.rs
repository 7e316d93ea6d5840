//! The HTTP API: login and users, the job dashboard and list, cluster status, job retries,
//! Prometheus metrics and health checks.
//!
//! [`Server`] runs hyper on the process's runtime, and its requests are answered on a few
//! blocking threads that share one [`Api`]: the job database, the process's metrics, the
//! authenticator and, when the process has a primary and replicas, what drives passes over
//! them ([`Driver`]): the endpoints of `serve`, or the running watch. Async work (status
//! probes, retries, releases) runs on the tokio runtime whose
//! [`Handle`](tokio::runtime::Handle) the API was given; the handler threads are not runtime
//! worker threads, so they may block on it. Routes are data: [`routes()`].

pub mod auth;
pub mod dashboard;
pub mod http;
pub mod routes;
pub mod server;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

pub use auth::Authenticator;
pub use http::{Method, Reply, Request};
pub use routes::{Route, routes};
pub use server::{SHUTDOWN_GRACE, Served, Server, ServerError, ServerOptions};
pub use status::{Driver, PassContext};

use crate::accounts::Accounts;
use crate::metrics::Metrics;
use crate::store::Store;

/// Says whether the process is in step (`/readyz`), beyond the database answering; `Err` says
/// why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Everything the handlers share.
pub struct Api {
    store: Arc<Store>,
    accounts: Arc<dyn Accounts>,
    shared_accounts: bool,
    metrics: Arc<Metrics>,
    auth: Authenticator,
    driver: Option<Driver>,
    readiness: Readiness,
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
            accounts: store.clone(),
            shared_accounts: false,
            store,
            metrics,
            auth,
            driver: None,
            readiness: Arc::new(|| Ok(())),
            runtime,
            probes: status::ProbeCache::default(),
            dashboard: routes::DashboardCache::default(),
            access_log: false,
        }
    }

    /// Adds what drives passes over the primary and replicas, for `/api/status`, `/retry` and
    /// `/api/prunes/release`.
    pub fn with_driver(mut self, driver: Driver) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Keeps users, sessions and the audit trail in `accounts`, shared with other copies,
    /// instead of the job database (which keeps this copy's whole trail as well).
    pub fn with_accounts(mut self, accounts: Arc<dyn Accounts>) -> Self {
        self.accounts = accounts;
        self.shared_accounts = true;
        self
    }

    /// Adds a readiness condition to `/readyz` (default: ready once the database answers).
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Logs every request (method, path, status, time), never its query, headers or body.
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// The replicas the dashboard breaks counts down by.
    fn replica_names(&self) -> Vec<String> {
        match &self.driver {
            None => Vec::new(),
            Some(Driver::Endpoints(context)) => {
                context.replicas.iter().map(|r| r.name.clone()).collect()
            }
            Some(Driver::Watch(watch)) => watch.replica_names(),
        }
    }

    /// Answers one request.
    pub fn handle(&self, request: &mut Request<'_>) -> Reply {
        let started = Instant::now();
        let (route, mut reply) = routes::dispatch(self, request);
        let elapsed = started.elapsed();
        let route_label = route.map_or("unmatched", |r| r.path);
        self.metrics
            .observe_request(route_label, request.method.as_str(), reply.status, elapsed);
        // A 503 says "not now" (not in step, the primary not authoritative, logins busy): it
        // is an answer, logged as a warning, and from /readyz not at all, since probes ask
        // every few seconds and the outage is logged once where it is seen. Other 5xx are
        // failures.
        let readiness = route.is_some_and(|r| r.path == "/readyz") && reply.status == 503;
        if reply.status >= 500 && !readiness {
            let message = reply.body_json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if reply.status == 503 {
                tracing::warn!(method = %request.method, path = ?request.path, status = reply.status, "{message}");
            } else {
                tracing::error!(method = %request.method, path = ?request.path, status = reply.status, "{message}");
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

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
        let api = api(&runtime).with_readiness(Arc::new(move || {
            if flag.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("the first full pass is not done".into())
            }
        }));
        let reply = get(&api, "/readyz");
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.body_json()["error"],
            "not ready: the first full pass is not done"
        );
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
        api.accounts
            .add_user("ada", "unused hash", crate::store::Role::Viewer)
            .unwrap();
        api.accounts
            .add_session(&auth::token_digest("t"), "ada", i64::MAX, 0)
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
            options: None,
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
