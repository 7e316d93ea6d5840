//! One request on a connection: its body read on the runtime (bounded in size and time, and
//! in how many are read at once), then answered by [`Api::handle`] on a blocking thread (the
//! handlers may block on the runtime and on bcrypt), at most [`HANDLERS`] at a time.

use std::convert::Infallible;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
};

use super::Shared;
use super::connections::Slot;
use crate::api::http::{Failure, MAX_BODY};
use crate::api::{Method, Reply, Request};

/// What is still read of a body past [`MAX_BODY`], and for how long, before the 413 goes
/// out: a client that sent a little too much then reads the answer instead of a reset. A
/// body declared too large is not read at all.
const DRAIN: (usize, std::time::Duration) = (64 << 10, std::time::Duration::from_millis(250));

/// Requests answered at once; the others wait without holding a thread.
pub const HANDLERS: usize = 8;

/// Request bodies read at once: each may hold [`MAX_BODY`] bytes.
pub const BODIES: usize = 8;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Every route.
    All,
    /// `/metrics`, `/healthz` and `/readyz` (`--metrics-listen`).
    Health,
}

impl Served {
    fn admits(self, path: &str) -> bool {
        self == Served::All || matches!(path, "/metrics" | "/healthz" | "/readyz")
    }
}

/// A body not sent within the body timeout.
struct TimedOut;

/// Reads a body of at most [`MAX_BODY`] bytes (one more byte says it was larger), waiting
/// for a turn among [`BODIES`] and for the bytes no longer than the body timeout in all.
/// Returns the bytes and whether the body was read to its end.
async fn read_body(shared: &Shared, mut body: Incoming) -> Result<(Vec<u8>, bool), TimedOut> {
    let deadline = tokio::time::Instant::now() + shared.options.body_timeout;
    let _turn = tokio::time::timeout_at(deadline, shared.bodies.acquire())
        .await
        .map_err(|_| TimedOut)?
        .expect("never closed");
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(TimedOut),
            Ok(None) => return Ok((bytes, true)),
            // The client broke the body off: what came is handed on, the connection closed.
            Ok(Some(Err(_))) => return Ok((bytes, false)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > MAX_BODY {
                        bytes.truncate(MAX_BODY + 1);
                        drain(body).await;
                        return Ok((bytes, false));
                    }
                }
            }
        }
    }
}

/// Reads and drops what is left of a body, at most [`DRAIN`].
async fn drain(mut body: Incoming) {
    let (limit, time) = DRAIN;
    let _ = tokio::time::timeout(time, async {
        let mut read = 0;
        while read < limit {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => return,
            }
        }
    })
    .await;
}

/// Answers one request of a connection held by `slot`.
pub(super) async fn exchange(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let _serving = slot.serving();
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let path = target.split('?').next().unwrap_or_default();
    if !shared.options.served.admits(path) {
        let reply = Failure::new(404, format!("no route {path} on this port")).into_reply();
        return Ok(response(reply, false));
    }
    let method = Method::parse(parts.method.as_str());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let chunked = parts.headers.contains_key(TRANSFER_ENCODING);
    // A body declared too large is never read: the handler answers 413 from the length,
    // and the connection is closed rather than drained.
    let (bytes, whole) = if declared.is_some_and(|n| n > MAX_BODY as u64) {
        (Vec::new(), false)
    } else if declared.unwrap_or(0) > 0 || chunked {
        match read_body(&shared, body).await {
            Ok(read) => read,
            Err(TimedOut) => {
                shared.closed("timeout");
                let reply = Failure::new(408, "the request body did not come in time");
                return Ok(response(reply.into_reply(), true));
            }
        }
    } else {
        (Vec::new(), true)
    };
    let turn = shared
        .handlers
        .clone()
        .acquire_owned()
        .await
        .expect("never closed");
    let api = shared.api.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut body = Cursor::new(bytes);
        let mut request = Request::new(method, &target, headers, Some(peer.ip()), &mut body);
        api.handle(&mut request)
    })
    .await;
    let reply = answered.unwrap_or_else(|_| {
        tracing::error!("a request handler panicked");
        Failure::new(500, "the request handler failed").into_reply()
    });
    Ok(response(reply, !whole))
}

/// The HTTP response of a reply; `close` ends the connection after it.
fn response(reply: Reply, close: bool) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if !reply.content_type.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    }
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
