//! A TLS-terminating proxy on loopback in front of one API server of the local control plane,
//! with a certificate authority of its own, for one process's faults: it can lose the response
//! to the first DELETE it forwards (the server has done the deletion, and the client hears
//! nothing back), and it can be cut, after which it forwards nothing either way and every
//! connection hangs, as behind a partition.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; it stops with the test's runtime.
pub struct LossyProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    ca_pem: String,
    lost: Arc<AtomicUsize>,
    cut: Arc<AtomicBool>,
}

impl LossyProxy {
    /// A proxy to the API server of `kubeconfig` (its first cluster) that loses the response
    /// to the first DELETE.
    pub async fn start(kubeconfig: &Path) -> Self {
        Self::start_with(kubeconfig, true).await
    }

    /// A proxy that forwards everything faithfully until [`LossyProxy::cut`].
    pub async fn faithful(kubeconfig: &Path) -> Self {
        Self::start_with(kubeconfig, false).await
    }

    async fn start_with(kubeconfig: &Path, lose_first_delete: bool) -> Self {
        let config = read(kubeconfig);
        let cluster = &config["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().expect("a server");
        let upstream = server
            .strip_prefix("https://")
            .expect("an https server")
            .trim_end_matches('/')
            .to_string();
        let upstream_ca = base64::engine::general_purpose::STANDARD
            .decode(
                cluster["certificate-authority-data"]
                    .as_str()
                    .expect("CA data"),
            )
            .unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in pem_certificates(&upstream_ca) {
            roots.add(cert).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "k8s-sync test proxy CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let serving = params.signed_by(&key, &issuer).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![serving.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lost = Arc::new(AtomicUsize::new(0));
        // Marked as done already when nothing is to be lost.
        let first_delete = Arc::new(AtomicBool::new(!lose_first_delete));
        let cut = Arc::new(AtomicBool::new(false));
        let counter = lost.clone();
        let cutting = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, connector) = (acceptor.clone(), connector.clone());
                let (upstream, lost, first_delete, cut) = (
                    upstream.clone(),
                    counter.clone(),
                    first_delete.clone(),
                    cutting.clone(),
                );
                tokio::spawn(async move {
                    if cut.load(Ordering::SeqCst) {
                        // Held open, unanswered.
                        let _held = &tcp;
                        std::future::pending::<()>().await;
                    }
                    let Ok(client) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(tcp) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let name = ServerName::try_from("127.0.0.1").unwrap();
                    let Ok(server) = connector.connect(name, tcp).await else {
                        return;
                    };
                    relay(client, server, &first_delete, &lost, &cut).await;
                });
            }
        });
        LossyProxy {
            addr,
            ca_pem: ca.pem(),
            lost,
            cut,
        }
    }

    /// From now on nothing passes either way: requests and watch streams hang.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Writes a kubeconfig to the proxy (trusting its CA) with `token`, and returns its path.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let path = dir.join("through-proxy.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: proxy\nclusters:\n- name: proxy\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca}\ncontexts:\n- name: proxy\n  context: {{cluster: proxy, user: admin}}\nusers:\n- name: admin\n  user: {{token: {token}}}\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Responses it lost so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }
}

/// The token of the (first) user of a kubeconfig.
pub fn token_of(kubeconfig: &Path) -> String {
    read(kubeconfig)["users"][0]["user"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

fn read(kubeconfig: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(kubeconfig).expect("read kubeconfig");
    serde_yaml::from_str(&text).expect("a kubeconfig")
}

/// Copies bytes both ways; once the first DELETE of the proxy's life went upstream, its
/// response is read and thrown away, and the client's connection closed without a word.
async fn relay<C, S>(
    client: C,
    server: S,
    first_delete: &AtomicBool,
    lost: &AtomicUsize,
    cut: &AtomicBool,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let losing = AtomicBool::new(false);
    let requests = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if buffer[..n].starts_with(b"DELETE ")
                && first_delete
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                losing.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let responses = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if losing.load(Ordering::SeqCst) {
                lost.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}

fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    let text = String::from_utf8_lossy(pem);
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|block| block.split("-----END CERTIFICATE-----").next())
        .map(|body| {
            let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            CertificateDer::from(
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap(),
            )
        })
        .collect()
}
