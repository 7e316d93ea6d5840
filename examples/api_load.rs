//! A small load generator for the HTTP API: THREADS clients, each on one keep-alive connection,
//! sending `GET PATH` until REQUESTS requests were made in all; prints requests per second and
//! latency percentiles. Standard library only.
//!
//! ```sh
//! K8S_SYNC_TOKEN=... cargo run --release --example api_load -- 127.0.0.1:8080 /api/dashboard 8 20000
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, path, threads, requests] = args.as_slice() else {
        eprintln!("usage: api_load ADDR PATH THREADS REQUESTS   (token in K8S_SYNC_TOKEN)");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS is a number");
    let requests: usize = requests.parse().expect("REQUESTS is a number");
    let token = std::env::var("K8S_SYNC_TOKEN").unwrap_or_default();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if !token.is_empty() {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let head = Arc::new(head);
    let left = Arc::new(AtomicUsize::new(requests));

    // Connect one by one, each with a first request (not counted) answered before the next
    // connects: the measurement is of connections already being served.
    let connections: Vec<Connection> = (0..threads)
        .map(|_| {
            let mut connection = Connection::open(addr);
            connection.request(&head);
            connection
        })
        .collect();
    let started = Instant::now();
    let clients: Vec<_> = connections
        .into_iter()
        .map(|connection| {
            let (head, left) = (head.clone(), left.clone());
            std::thread::spawn(move || client(connection, &head, &left))
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(requests);
    let mut errors = 0;
    for client in clients {
        let (times, failed) = client.join().expect("client thread");
        latencies.extend(times);
        errors += failed;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(index).copied().unwrap_or_default()
    };
    println!(
        "{} requests ({errors} not 200) in {:.2}s with {threads} connections: {:.0} requests/s",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2}ms  p90 {:.2}ms  p99 {:.2}ms  max {:.2}ms",
        ms(percentile(0.50)),
        ms(percentile(0.90)),
        ms(percentile(0.99)),
        ms(percentile(1.0))
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A keep-alive connection.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Connection {
            writer: stream.try_clone().expect("clone the socket"),
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request and reads its response; the status.
    fn request(&mut self, head: &str) -> u16 {
        self.writer.write_all(head.as_bytes()).expect("send");
        let (status, length) = read_head(&mut self.reader);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("read the body");
        status
    }
}

/// Sends requests on one connection until none are left; their latencies and how many did
/// not answer 200.
fn client(mut connection: Connection, head: &str, left: &AtomicUsize) -> (Vec<Duration>, usize) {
    let mut times = Vec::new();
    let mut failed = 0;
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let sent = Instant::now();
        let status = connection.request(head);
        times.push(sent.elapsed());
        if status != 200 {
            failed += 1;
        }
    }
    (times, failed)
}

/// Reads a status line and headers; the status and the Content-Length.
fn read_head(reader: &mut impl BufRead) -> (u16, usize) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("read a header");
        let header = line.trim_end();
        if header.is_empty() {
            return (status, length);
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a Content-Length");
        }
    }
}
