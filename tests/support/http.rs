//! `k8s-sync serve` started in a test directory, and a small HTTP/1.1 client for it over
//! `std::net::TcpStream` (one connection per request, `Connection: close`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use super::daemon::Daemon;

use serde_json::Value;

/// The bcrypt cost tests use: the lowest bcrypt accepts.
pub const TEST_COST: &str = "4";

/// A running `k8s-sync serve`.
pub struct ApiServer {
    daemon: Daemon,
    pub addr: SocketAddr,
    /// The token of the last `login_as`.
    pub token: Option<String>,
}

impl ApiServer {
    /// Starts `k8s-sync serve --listen 127.0.0.1:0 --db jobs.db ARGS` in `dir` with the test
    /// bcrypt cost and `env`, and waits for the address it prints.
    pub fn start(dir: &super::TestDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--db", "jobs.db"];
        all.extend_from_slice(args);
        let log = format!("serve-{:08x}.log", fastrand::u32(..));
        Self::attach(Daemon::start(dir, &log, &all, env))
    }

    /// Talks to the API of a daemon already started (`serve` or `watch`).
    pub fn attach(mut daemon: Daemon) -> Self {
        let addr = daemon.address(Duration::from_secs(20));
        ApiServer {
            daemon,
            addr,
            token: None,
        }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.daemon.output()
    }

    /// A request with the current token, if any.
    pub fn request(&self, method: &str, target: &str, body: Option<&str>) -> Response {
        let mut headers = Vec::new();
        if let Some(token) = &self.token {
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
        }
        send(self.addr, method, target, &headers, body.map(str::as_bytes))
    }

    /// `GET` with the current token.
    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, None)
    }

    /// `POST` of a JSON value with the current token.
    pub fn post(&self, target: &str, body: &Value) -> Response {
        self.request("POST", target, Some(&body.to_string()))
    }

    /// Logs in and keeps the token for the next requests; a 503 (accounts not read yet, logins
    /// busy) is asked again for a few seconds.
    #[track_caller]
    pub fn login_as(&mut self, user: &str, password: &str) -> String {
        let started = std::time::Instant::now();
        let body = serde_json::json!({"username": user, "password": password});
        let mut response = self.post("/api/login", &body);
        while response.status == 503 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            response = self.post("/api/login", &body);
        }
        assert_eq!(response.status, 200, "login as {user}: {response}");
        let token = response.json()["token"].as_str().unwrap().to_string();
        self.token = Some(token.clone());
        token
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.daemon.terminate();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        self.daemon.wait(limit)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.daemon.id()
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value; names compare case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON: {e}\n{self}"))
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "status {}", self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        write!(f, "\n{}", self.text())
    }
}

/// Sends one request on a new connection and reads the whole response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        stream.write_all(body).unwrap();
    }
    read_response(&mut stream)
}

/// Reads a response from a connection the server closes after it.
pub fn read_response(stream: &mut impl Read) -> Response {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(&raw)
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)))
}

/// Parses a response (status line, headers, body up to its Content-Length).
pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(length) = length {
        body.truncate(length);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Runs `k8s-sync ARGS` in `dir` with `stdin` as standard input and the test bcrypt cost.
pub fn run_with_stdin(dir: &super::TestDir, args: &[&str], stdin: &str) -> super::Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_k8s-sync"))
        .current_dir(dir.path())
        .args(args)
        .env("K8S_SYNC_BCRYPT_COST", TEST_COST)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run k8s-sync");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    super::Run {
        args: format!("k8s-sync {}", args.join(" ")),
        output,
    }
}

/// Adds a user through the CLI and asserts it worked.
#[track_caller]
pub fn add_user(dir: &super::TestDir, name: &str, password: &str) {
    run_with_stdin(
        dir,
        &["users", "add", name, "--password-stdin", "--db", "jobs.db"],
        &format!("{password}\n"),
    )
    .expect_code(0);
}
