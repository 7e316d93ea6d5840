//! The API over HTTPS (`--tls-cert`, `--tls-key`): a client that trusts the CA is served, a
//! plain-HTTP client is not, a certificate replaced on disk is presented from the next
//! handshake without a restart, and a key file that does not load stops the server with a
//! one-line error naming it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use support::TestDir;
use support::daemon::Daemon;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A CA and a way to make serving certificates for 127.0.0.1 signed by it.
struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    root: CertificateDer<'static>,
}

impl Authority {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "k8s-sync test API CA");
        let root = params.self_signed(&key).unwrap().der().clone();
        Authority {
            issuer: rcgen::Issuer::new(params, key),
            root,
        }
    }

    /// Writes a new serving certificate and its key into `dir` (each replaced atomically);
    /// returns the certificate.
    fn issue(&self, dir: &TestDir, name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        for (file, text) in [("tls.key", key.serialize_pem()), ("tls.crt", cert.pem())] {
            let staged = dir.write(&format!("{file}.new"), &text);
            std::fs::rename(staged, dir.path().join(file)).unwrap();
        }
        cert.der().clone()
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every handshake a full one: a resumed session presents no certificate anew.
        config.resumption = rustls::client::Resumption::disabled();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// `GET /healthz` over TLS: the certificate the server presented and the answer.
async fn healthz(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> (CertificateDer<'static>, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake");
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    (presented, String::from_utf8_lossy(&raw).into_owned())
}

fn start(dir: &TestDir) -> Daemon {
    Daemon::start(
        dir,
        "serve.log",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "jobs.db",
            "--tls-cert",
            "tls.crt",
            "--tls-key",
            "tls.key",
        ],
        &[],
    )
}

#[tokio::test]
async fn serves_https_and_reads_a_replaced_certificate_at_the_next_handshake() {
    let dir = TestDir::new();
    let authority = Authority::new();
    let first = authority.issue(&dir, "first");
    let mut daemon = start(&dir);
    daemon.wait_for("listening on https://", Duration::from_secs(20));
    let addr = daemon.address(Duration::from_secs(1));
    let connector = authority.connector();

    let (presented, answer) = healthz(&connector, addr).await;
    assert_eq!(presented, first);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Plain HTTP on the TLS port gets no answer of the API.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut raw)).await;
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );

    let second = authority.issue(&dir, "second");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (presented, answer) = healthz(&connector, addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        if presented == second {
            break;
        }
        assert!(Instant::now() < deadline, "still the first certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        daemon.output().contains("TLS certificate read again"),
        "{}",
        daemon.output()
    );
    daemon.kill();
}

#[test]
fn a_key_that_does_not_load_stops_the_server_naming_the_file() {
    let dir = TestDir::new();
    Authority::new().issue(&dir, "broken");
    dir.write("tls.key", "not a key\n");
    let mut daemon = start(&dir);
    let status = daemon.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{}", daemon.output());
    let errors: Vec<String> = daemon
        .output()
        .lines()
        .filter(|l| l.starts_with("k8s-sync:"))
        .map(str::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("tls.key"), "{errors:?}");
}
