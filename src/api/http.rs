//! Requests and replies of the API apart from the socket: the request target split into path
//! segments and query parameters, a body read with a size limit, JSON replies and errors.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// The request methods the API knows; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `HEAD`
    Head,
    /// `OPTIONS`
    Options,
    /// Any other method.
    Other,
}

impl Method {
    /// Parses a request method (case-sensitive, as HTTP says).
    pub fn parse(text: &str) -> Self {
        match text {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request body comes from; asked for only when a handler reads the body, so that a
/// client waiting for `100 Continue` is not told to send a body nobody reads.
pub trait BodySource {
    /// The body's bytes.
    fn reader(&mut self) -> &mut dyn Read;
}

impl BodySource for std::io::Cursor<Vec<u8>> {
    fn reader(&mut self) -> &mut dyn Read {
        self
    }
}

/// One request, as the router sees it.
pub struct Request<'a> {
    /// Its method.
    pub method: Method,
    /// The path, percent-decoded segment by segment (`/api/users/ada` → `["api", "users", "ada"]`).
    pub segments: Vec<String>,
    /// The raw path, for logs and errors.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub remote: Option<IpAddr>,
    /// The body.
    pub body: &'a mut dyn BodySource,
}

impl<'a> Request<'a> {
    /// A request from its parts; `target` is the request target (`/path?query`).
    pub fn new(
        method: Method,
        target: &str,
        headers: Vec<(String, String)>,
        remote: Option<IpAddr>,
        body: &'a mut dyn BodySource,
    ) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments = path
            .split('/')
            .skip(1)
            .map(|s| percent_decode(s, false))
            .collect();
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name, true), percent_decode(value, true))
            })
            .collect();
        let headers = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        Request {
            method,
            segments,
            path: path.to_string(),
            query,
            headers,
            remote,
            body,
        }
    }

    /// A header's value (the first, when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value (the first, when repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The declared body length, when the client sent `Content-Length`.
    pub fn content_length(&self) -> Result<Option<u64>, Failure> {
        match self.header("content-length") {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Failure::new(400, "invalid Content-Length")),
        }
    }

    /// Reads the body (at most [`MAX_BODY`] bytes) and parses it as JSON.
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, Failure> {
        if self
            .content_length()?
            .is_some_and(|length| length > MAX_BODY as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        self.body
            .reader()
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::new(400, format!("cannot read the request body: {e}")))?;
        if bytes.len() > MAX_BODY {
            return Err(too_large());
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::new(400, format!("the request body is not valid JSON: {e}")))
    }
}

/// The reply to a body over [`MAX_BODY`].
pub fn too_large() -> Failure {
    Failure::new(
        413,
        format!("the request body is larger than {MAX_BODY} bytes"),
    )
}

/// Decodes `%XX` escapes (and, in query strings, `+` as a space). Invalid escapes are kept as
/// they are; bytes that do not form UTF-8 are replaced.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A reply: status, content type, extra headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, when there is a body.
    pub content_type: &'static str,
    /// Further headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).expect("API values serialize"),
        }
    }

    /// A reply without a body.
    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            content_type: "",
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A plain-text (or other non-JSON) reply.
    pub fn text(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body parsed as JSON (for tests).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A request that cannot be served: a status, a message for the client, and headers.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The status code.
    pub status: u16,
    /// What went wrong, for the client.
    pub message: String,
    /// Further headers (`Allow`, `Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl Failure {
    /// A failure with a status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The `{"error": ...}` reply.
    pub fn into_reply(self) -> Reply {
        let mut reply = Reply::json(self.status, &json!({ "error": self.message }));
        reply.headers = self.headers;
        reply
    }
}

impl From<crate::accounts::Error> for Failure {
    fn from(error: crate::accounts::Error) -> Self {
        let message = crate::error_chain(&error);
        if error.is_unavailable() {
            Failure::new(503, message).with_header("Retry-After", "1")
        } else {
            Failure::new(500, message)
        }
    }
}

impl From<crate::store::Error> for Failure {
    fn from(error: crate::store::Error) -> Self {
        Failure::new(500, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn splits_the_target_and_decodes_it() {
        let mut body = Cursor::new(Vec::new());
        let request = Request::new(
            Method::Get,
            "/api/users/a%2Eb?replica=prod%23admin&status=failed&x&q=a+b",
            vec![("Content-Type".into(), "application/json".into())],
            None,
            &mut body,
        );
        assert_eq!(request.segments, ["api", "users", "a.b"]);
        assert_eq!(request.path, "/api/users/a%2Eb");
        assert_eq!(request.param("replica"), Some("prod#admin"));
        assert_eq!(request.param("status"), Some("failed"));
        assert_eq!(request.param("x"), Some(""));
        assert_eq!(request.param("q"), Some("a b"));
        assert_eq!(request.header("content-type"), Some("application/json"));
    }

    #[test]
    fn keeps_invalid_escapes() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%41%42", false), "AB");
    }

    fn request_with(body: &mut Cursor<Vec<u8>>, length: Option<usize>) -> Request<'_> {
        let headers = length
            .map(|l| vec![("Content-Length".to_string(), l.to_string())])
            .unwrap_or_default();
        Request::new(Method::Post, "/api/login", headers, None, body)
    }

    #[test]
    fn limits_and_parses_bodies() {
        let mut body = Cursor::new(br#"{"a": 1}"#.to_vec());
        let value: serde_json::Value = request_with(&mut body, Some(8)).json().unwrap();
        assert_eq!(value["a"], 1);

        let mut body = Cursor::new(b"{nope".to_vec());
        let error = request_with(&mut body, None)
            .json::<serde_json::Value>()
            .unwrap_err();
        assert_eq!(error.status, 400);

        // Declared too large: refused before reading.
        let mut body = Cursor::new(Vec::new());
        let error = request_with(&mut body, Some(MAX_BODY + 1))
            .json::<serde_json::Value>()
            .unwrap_err();
        assert_eq!(error.status, 413);

        // Sent too large without a length (chunked): refused while reading.
        let mut body = Cursor::new(vec![b' '; MAX_BODY + 10]);
        let error = request_with(&mut body, None)
            .json::<serde_json::Value>()
            .unwrap_err();
        assert_eq!(error.status, 413);
        assert_eq!(body.position(), MAX_BODY as u64 + 1, "reads one byte past");
    }
}
