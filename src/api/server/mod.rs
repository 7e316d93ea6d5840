//! [`Server`]: the API over HTTP/1.1 (or HTTPS), hyper on the process's tokio runtime.
//!
//! Bounded under hostile clients: a connection has [`ServerOptions::header_timeout`] to send
//! its headers (and its TLS handshake), a body has [`ServerOptions::body_timeout`]; a listener
//! holds at most [`ServerOptions::max_connections`], and when full the oldest connection still
//! sending its request makes room ([`connections`]); a body declared over the limit is
//! answered 413 and its connection closed, never read. Requests are answered on a bounded
//! number of blocking threads ([`exchange::HANDLERS`]); nothing is kept once a client goes.
//!
//! tiny_http, which this replaces, could not be bounded: it accepts every connection on a
//! thread of its own (its task pool adds a thread whenever none is idle), sets no read
//! timeout on any socket, offers no hook between accept and that thread, and stops accepting
//! after one accept error.
//!
//! The listener never takes the process down: an accept error (no file descriptor left) is
//! logged, counted and retried, and [`Server::start`] with `retry_bind` keeps trying to bind
//! an address that is taken, while the process goes on (`watch` replicates meanwhile).

mod connections;
mod exchange;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use super::Api;
use connections::{Admission, Connections, Slot};
pub use exchange::{BODIES, HANDLERS, Served};
use tls::{ReloadingCert, TlsError, TlsFiles};

/// How long [`Server::shutdown`] waits for the requests in flight (within the 30 s
/// Kubernetes gives a Pod to stop by default).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// The longest pause between attempts to bind a taken address.
const BIND_RETRY_MAX: Duration = Duration::from_secs(30);

/// How a listener treats its clients.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The listener's name in logs and metrics (`api`, `metrics`).
    pub name: &'static str,
    /// Connections held at most (`--max-connections`).
    pub max_connections: usize,
    /// Time for a connection's TLS handshake and for each request's headers.
    pub header_timeout: Duration,
    /// Time for a request's body.
    pub body_timeout: Duration,
    /// HTTPS with this certificate and key, read again when they change.
    pub tls: Option<TlsFiles>,
    /// Which routes it serves.
    pub served: Served,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: "api",
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            tls: None,
            served: Served::All,
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("listening on {listen}")]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error("the TLS certificate")]
    Tls(#[source] TlsError),
}

/// What the connections of a listener share.
struct Shared {
    api: Arc<Api>,
    options: ServerOptions,
    connections: Arc<Connections>,
    handlers: Arc<tokio::sync::Semaphore>,
    bodies: tokio::sync::Semaphore,
    tls: Option<TlsAcceptor>,
}

impl Shared {
    /// Counts a connection closed by the server.
    fn closed(&self, reason: &str) {
        self.api
            .metrics
            .http_connections_closed
            .with_label_values(&[self.options.name, reason])
            .inc();
    }

    fn set_listening(&self, listening: bool) {
        self.api
            .metrics
            .http_listening
            .with_label_values(&[self.options.name])
            .set(i64::from(listening));
    }

    fn listener_error(&self) {
        self.api
            .metrics
            .http_listener_errors
            .with_label_values(&[self.options.name])
            .inc();
    }
}

/// A running listener.
pub struct Server {
    address: Option<SocketAddr>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and serves `api` there; with `retry_bind`, an address that cannot be
    /// bound is logged and tried again in the background (with growing pauses), and the
    /// server starts once it binds. Logs `listening on http(s)://ADDRESS` when it does.
    pub async fn start(
        listen: SocketAddr,
        options: ServerOptions,
        api: Arc<Api>,
        retry_bind: bool,
    ) -> Result<Server, ServerError> {
        let tls = match &options.tls {
            None => None,
            Some(files) => {
                let cert = Arc::new(ReloadingCert::new(files.clone()).map_err(ServerError::Tls)?);
                Some(TlsAcceptor::from(Arc::new(cert.server_config())))
            }
        };
        let shared = Arc::new(Shared {
            connections: Connections::new(options.max_connections),
            handlers: Arc::new(tokio::sync::Semaphore::new(HANDLERS)),
            bodies: tokio::sync::Semaphore::new(BODIES),
            api,
            options,
            tls,
        });
        shared.set_listening(false);
        let stop = CancellationToken::new();
        let first = TcpListener::bind(listen).await;
        let address = first.as_ref().ok().and_then(|l| l.local_addr().ok());
        let listener = match first {
            Ok(listener) => Some(listener),
            Err(source) if !retry_bind => return Err(ServerError::Bind { listen, source }),
            Err(error) => {
                shared.listener_error();
                tracing::error!(
                    listener = shared.options.name,
                    "cannot listen on {listen}: {error}; trying again (everything else goes on)"
                );
                None
            }
        };
        if let Some(address) = address {
            listening(&shared, address);
        }
        let task = tokio::spawn(run(shared, listen, listener, stop.clone()));
        Ok(Server {
            address,
            stop,
            task,
        })
    }

    /// The address it listens on (the real port when asked for port 0), once bound at start.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Stops accepting, lets the requests in flight finish (idle connections are closed)
    /// within [`SHUTDOWN_GRACE`], and closes the listener.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Says where a listener listens, and that it does.
fn listening(shared: &Shared, address: SocketAddr) {
    let scheme = if shared.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        "listening on {scheme}://{address} ({})",
        shared.options.name
    );
    shared.set_listening(true);
}

/// Binds (again, with pauses, until it can), serves until `stop`, then shuts down gracefully.
async fn run(
    shared: Arc<Shared>,
    listen: SocketAddr,
    mut listener: Option<TcpListener>,
    stop: CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    let listener = loop {
        if let Some(listener) = listener.take() {
            break listener;
        }
        shared.set_listening(false);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        pause = (pause * 2).min(BIND_RETRY_MAX);
        match TcpListener::bind(listen).await {
            Ok(bound) => {
                if let Ok(address) = bound.local_addr() {
                    listening(&shared, address);
                }
                listener = Some(bound);
            }
            Err(error) => {
                shared.listener_error();
                tracing::warn!(
                    listener = shared.options.name,
                    "cannot listen on {listen}: {error}; trying again"
                );
            }
        }
    };
    let graceful = GracefulShutdown::new();
    accept(&shared, &listener, &graceful, &stop).await;
    drop(listener);
    shared.set_listening(false);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = shared.options.name,
            "requests still in flight; not waiting for them"
        );
    }
}

/// Accepts connections until `stop`, each once there is room for it.
async fn accept(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    graceful: &GracefulShutdown,
    stop: &CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            () = shared.connections.room() => {}
            () = stop.cancelled() => return,
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures = 0;
                let (slot, admission) = shared.connections.admit().await;
                if admission == Admission::Evicted {
                    shared.closed("evicted");
                }
                let watcher = graceful.watcher();
                tokio::spawn(connection(shared.clone(), stream, peer, slot, watcher));
            }
            Err(error) => {
                // Out of file descriptors, say: wait a little, as the clients holding them
                // time out or are evicted, and go on.
                shared.listener_error();
                if failures == 0 {
                    tracing::warn!(
                        listener = shared.options.name,
                        "accepting a connection: {error}; trying again"
                    );
                }
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(10 << failures.min(7));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Serves one connection until it ends, times out, or is evicted.
async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let gauge = shared
        .api
        .metrics
        .http_connections
        .with_label_values(&[shared.options.name]);
    gauge.inc();
    let slot = Arc::new(slot);
    let timeout = shared.options.header_timeout;
    let served = async {
        let io = match &shared.tls {
            None => Either::Left(stream),
            Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Either::Right(tls),
                Ok(Err(_)) => return,
                Err(_) => return shared.closed("timeout"),
            },
        };
        let service = {
            let (shared, slot) = (shared.clone(), slot.clone());
            hyper::service::service_fn(move |request| {
                exchange::exchange(shared.clone(), slot.clone(), peer, request)
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(timeout);
        let connection = http.serve_connection(TokioIo::new(io), service);
        if let Err(error) = watcher.watch(connection).await
            && error.is_timeout()
        {
            shared.closed("timeout");
        }
    };
    tokio::select! {
        () = served => {}
        () = slot.evicted() => {}
    }
    gauge.dec();
}
