//! [`Server`]: tiny_http with a few worker threads answering requests with one [`Api`].

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Api, Method, Request, http};

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
        report_listener_panics(&shared);
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
                shared.fail(error.to_string());
            }
        }
    }
}

impl Shared {
    fn fail(&self, reason: String) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.failed.notify_one();
    }
}

/// The servers of this process, told when tiny_http's code panics.
static SERVERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Makes a panic in tiny_http's code fail `shared`'s server. tiny_http 0.12 unwraps the clone
/// of each socket it accepts, so when the process has one file descriptor left, its accept
/// thread panics instead of reporting an error, the listener closes, and nothing else tells.
/// The panic hook is the one place that sees it. A panic on one of tiny_http's connection
/// threads counts too: the process cannot tell them apart, and a restart is the safe answer.
fn report_listener_panics(shared: &Arc<Shared>) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if !info
                .location()
                .is_some_and(|l| l.file().contains("tiny_http"))
            {
                return;
            }
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            let reason = format!("the listener thread panicked: {message}");
            let servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
            for server in servers.iter().filter_map(Weak::upgrade) {
                server.fail(reason.clone());
            }
        }));
    });
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    servers.retain(|s| s.strong_count() > 0);
    servers.push(Arc::downgrade(shared));
}
