//! The local control plane, as `scripts/testenv up` leaves it: where its kubeconfigs are, kube
//! clients for its clusters, and a fresh namespace per test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The cluster reserved for tests that stop and start an API server, so that they never pull
/// a cluster from under other tests running at the same time.
pub const FAULT_CLUSTER: &str = "replica-3";

/// The cluster that runs an older Kubernetes release (v1.34) than the others (v1.37), for the
/// tests across server versions.
pub const OLD_CLUSTER: &str = "replica-4";

/// Held by every test of a test binary that stops, starts or freezes an API server, so that
/// two of them never pull a cluster from under each other.
pub static FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running control plane.
pub struct TestEnv {
    dir: PathBuf,
}

impl TestEnv {
    /// The control plane named by `K8S_SYNC_TESTENV`. Without it, the test is skipped with a
    /// line saying how to start one; under CI (`CI` set) that is a failure instead.
    pub fn get() -> Option<Self> {
        match std::env::var_os("K8S_SYNC_TESTENV") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                assert!(
                    dir.join("primary.kubeconfig").is_file(),
                    "K8S_SYNC_TESTENV={} holds no primary.kubeconfig; is the control plane up?",
                    dir.display()
                );
                Some(TestEnv { dir })
            }
            None if std::env::var_os("CI").is_some() => {
                panic!(
                    "K8S_SYNC_TESTENV is not set: end-to-end tests need `eval \"$(scripts/testenv up)\"`"
                )
            }
            None => {
                eprintln!(
                    "skipped: no local control plane; run `eval \"$(scripts/testenv up)\"` (or scripts/test) to include end-to-end tests"
                );
                None
            }
        }
    }

    /// The admin kubeconfig of `primary` or `replica-N`.
    pub fn kubeconfig(&self, cluster: &str) -> PathBuf {
        if cluster == "primary" {
            self.dir.join("primary.kubeconfig")
        } else {
            self.dir
                .join("replicas")
                .join(format!("{cluster}.kubeconfig"))
        }
    }

    /// The read-only user's kubeconfig for a cluster.
    pub fn readonly_kubeconfig(&self, cluster: &str) -> PathBuf {
        self.dir
            .join("readonly")
            .join(format!("{cluster}.kubeconfig"))
    }

    /// `kubeconfig(cluster)` as a string, for command lines.
    pub fn arg(&self, cluster: &str) -> String {
        self.kubeconfig(cluster).display().to_string()
    }

    /// An admin client for a cluster.
    pub async fn client(&self, cluster: &str) -> kube::Client {
        client_from(&self.kubeconfig(cluster)).await
    }

    /// The source name k8s-sync gives objects from `cluster` by default: `cluster/` and the
    /// uid of its `kube-system` namespace.
    pub async fn identity(&self, cluster: &str) -> String {
        let api: Api<Namespace> = Api::all(self.client(cluster).await);
        let namespace = api.get("kube-system").await.expect("get kube-system");
        format!("cluster/{}", namespace.metadata.uid.expect("a uid"))
    }

    /// A namespace no other test uses, created on the given clusters.
    pub async fn namespace(&self, prefix: &str, clusters: &[&str]) -> String {
        let name = format!("{prefix}-{:08x}", fastrand::u32(..));
        for cluster in clusters {
            let api: Api<Namespace> = Api::all(self.client(cluster).await);
            let mut namespace = Namespace::default();
            namespace.metadata.name = Some(name.clone());
            api.create(&PostParams::default(), &namespace)
                .await
                .unwrap_or_else(|e| panic!("create namespace {name} on {cluster}: {e}"));
        }
        name
    }

    /// Pauses `cluster`'s API server (SIGSTOP) until the guard is dropped: connections are
    /// still accepted by the kernel, and no request gets an answer, as with a hung server.
    pub fn freeze(&self, cluster: &str) -> Frozen {
        let pid_file = self.dir.join("run").join(format!("{cluster}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
            .trim()
            .to_string();
        signal(&pid, "-STOP");
        Frozen { pid }
    }

    /// Stops `cluster`'s API server until the guard is dropped (which starts it again, also when
    /// the test panics).
    pub fn stop(&self, cluster: &str) -> Stopped<'_> {
        self.script(&["stop-cluster", cluster]);
        Stopped {
            env: self,
            cluster: cluster.to_string(),
            running: false,
        }
    }

    /// Runs `scripts/testenv ARGS` against this control plane and asserts it succeeded.
    pub fn script(&self, args: &[&str]) {
        let output = Command::new(super::repo_root().join("scripts/testenv"))
            .args(args)
            .env("K8S_SYNC_TESTENV", &self.dir)
            .output()
            .expect("run scripts/testenv");
        assert!(
            output.status.success(),
            "scripts/testenv {args:?} failed\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    kube::Client::try_from(config).expect("build client")
}

/// Polls `condition` every 50 ms until it holds or `limit` passes; panics with `what` then.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An API server stopped by [`TestEnv::stop`]; dropping this starts it again, so that the
/// other tests find it answering.
pub struct Stopped<'e> {
    env: &'e TestEnv,
    cluster: String,
    running: bool,
}

impl Stopped<'_> {
    /// Starts it again now.
    pub fn start(mut self) {
        self.env.script(&["start-cluster", &self.cluster]);
        self.running = true;
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if !self.running {
            let _ = Command::new(super::repo_root().join("scripts/testenv"))
                .args(["start-cluster", &self.cluster])
                .env("K8S_SYNC_TESTENV", &self.env.dir)
                .output();
        }
    }
}

/// An API server paused by [`TestEnv::freeze`]; dropping this resumes it, even when the test
/// panics, so that the other tests find it answering.
pub struct Frozen {
    pid: String,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // No assertion: this may run while a failed test unwinds.
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}

fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}
