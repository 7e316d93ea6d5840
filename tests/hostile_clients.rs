//! The HTTP API under hostile clients, on loopback: thousands of requests that declare a huge
//! body and go away, then thousands of connections that send their headers slowly (and come
//! back when closed). The server's descriptors and threads stay bounded by the connection cap,
//! a well-behaved request is answered within the header timeout plus a second meanwhile, and
//! everything is back to where it started once the clients stop.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::TestDir;
use support::http::ApiServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CAP: usize = 256;
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
const OVERSIZED: usize = 5_000;
const SLOW: usize = 2_000;
/// Descriptors and threads beyond the baseline and the cap that a burst may take: the
/// connection being accepted, the handlers' threads, the runtime's timers.
const DESCRIPTORS_SLACK: usize = 8;
const THREADS_MAX: usize = 40;
const PASSWORD: &str = "hostile clients test password";

/// Lets this process hold every client connection at once.
fn raise_descriptor_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= needed,
            "the hard limit of open files ({}) is below the {needed} this test needs",
            limit.rlim_max
        );
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// (descriptors, threads) of process `pid`.
fn usage(pid: u32) -> (usize, usize) {
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (descriptors, threads)
}

/// Samples the server's usage every 10 ms and keeps the highest, until `stop`.
fn sample_peaks(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let mut peak = (0, 0);
        while !stop.load(Ordering::SeqCst) {
            let (descriptors, threads) = usage(pid);
            peak = (peak.0.max(descriptors), peak.1.max(threads));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

/// One request that declares a 100 MB body, sends a little of it and goes away; every
/// `answer`th reads the answer instead.
async fn oversized(addr: std::net::SocketAddr, answer: bool) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{\"user";
    stream.write_all(head.as_bytes()).await.ok()?;
    if !answer {
        return None;
    }
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// A client that sends its headers one line a second, and comes back a second after the
/// server closes its connection, until `stop`.
async fn slow(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, closed: Arc<AtomicUsize>) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut line = b"GET /api/dashboard HTTP/1.1\r\nHost: x\r\n".to_vec();
        while !stop.load(Ordering::SeqCst) {
            if stream.write_all(&line).await.is_err() {
                break;
            }
            line = b"X-Slow: 1\r\n".to_vec();
            let mut byte = [0u8; 1];
            // The server closing the connection ends the read at once.
            if let Ok(read) =
                tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await
            {
                let _ = read;
                break;
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Times a well-behaved request on a connection of its own.
async fn timed(addr: std::net::SocketAddr, token: &str) -> (Duration, u16) {
    let started = Instant::now();
    let request = format!(
        "GET /api/dashboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await;
    let status = support::http::parse_response(&raw).map_or(0, |r| r.status);
    (started.elapsed(), status)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_under_oversized_bodies_and_slow_clients() {
    raise_descriptor_limit(SLOW as u64 + 512);
    let dir = TestDir::new();
    let cap = CAP.to_string();
    let mut server = ApiServer::start(
        &dir,
        &[
            "--max-connections",
            &cap,
            "--header-timeout",
            "3s",
            "--body-timeout",
            "3s",
        ],
        &[("K8S_SYNC_ADMIN_PASSWORD", PASSWORD)],
    );
    let token = server.login_as("admin", PASSWORD);
    let (addr, pid) = (server.addr, server.id());
    let baseline = usage(pid);

    // 5,000 bodies declared 100 MB: answered 413 and closed, never read.
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = sample_peaks(pid, stop.clone());
    let mut answers = Vec::new();
    for batch in 0..OVERSIZED / 100 {
        let requests = (0..100).map(|i| oversized(addr, i == 0));
        for answer in futures::future::join_all(requests)
            .await
            .into_iter()
            .flatten()
        {
            answers.push(answer);
        }
        if batch % 10 == 0 {
            let (latency, status) = timed(addr, &token).await;
            assert_eq!(status, 200);
            assert!(
                latency < HEADER_TIMEOUT + Duration::from_secs(1),
                "{latency:?}"
            );
        }
    }
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }

    // 2,000 slow clients for three header timeouts, and well-behaved requests meanwhile.
    let closed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(slow(addr, stop.clone(), closed.clone())))
        .collect();
    let mut latencies = Vec::new();
    let held = Instant::now();
    while held.elapsed() < HEADER_TIMEOUT * 3 {
        let (latency, status) = timed(addr, &token).await;
        assert_eq!(status, 200, "a well-behaved request under load");
        latencies.push(latency);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let (peak_descriptors, peak_threads) = peaks.join().unwrap();
    latencies.sort();
    let worst = *latencies.last().unwrap();
    eprintln!(
        "baseline {baseline:?}; peak descriptors {peak_descriptors}, threads {peak_threads}; \
         {} slow connections closed by the server; well-behaved latency over {} requests: \
         p50 {:?}, p99 {:?}, max {worst:?}",
        closed.load(Ordering::Relaxed),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    assert!(
        worst < HEADER_TIMEOUT + Duration::from_secs(1),
        "{latencies:?}"
    );
    assert!(
        peak_descriptors <= baseline.0 + CAP + DESCRIPTORS_SLACK,
        "descriptors peaked at {peak_descriptors} (baseline {}, cap {CAP})",
        baseline.0
    );
    assert!(
        peak_threads <= THREADS_MAX,
        "threads peaked at {peak_threads}"
    );
    assert!(
        closed.load(Ordering::Relaxed) >= SLOW,
        "the slow clients were let hold their connections"
    );

    // Nothing kept once they are gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = usage(pid);
        if now.0 <= baseline.0 && now.1 <= baseline.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {now:?} a minute after the clients stopped (baseline {baseline:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = server.get("/metrics").text();
    let evicted = support::passes::sample(
        &metrics,
        "k8s_sync_http_connections_closed_total{listener=\"api\",reason=\"evicted\"}",
    );
    assert!(evicted.is_some_and(|n| n > 0.0), "{metrics}");
    server.kill();
}
