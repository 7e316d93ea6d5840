//! Cluster endpoints: a Kubernetes API server reached through a kubeconfig.
//!
//! A pass costs one paginated LIST per kind (cluster-wide, or per namespace with
//! `--sync-namespaces`) plus one of namespaces; never a GET per object.

use std::path::{Path, PathBuf};

use sha2::Digest as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use kubeconfig::kubeconfig_error;

mod discovery;
mod error;
mod kubeconfig;
mod objects;
mod page;
use crate::retry::RetryPolicy;
pub use error::Error;
pub use page::ServedObject;

/// The field manager k8s-sync applies as.
pub const FIELD_MANAGER: &str = "k8s-sync";

/// The field manager of the mark on an object whose prune is held.
pub const HOLD_FIELD_MANAGER: &str = "k8s-sync-prune-hold";
/// What a cluster's identity starts with; the uid of its `kube-system` namespace follows.
pub const IDENTITY_PREFIX: &str = "cluster/";
/// A kubeconfig file (its relative paths taken from its directory, as kube reads it) and
/// context as a client configuration.
async fn load_kubeconfig(path: &Path, context: Option<&str>) -> Result<kube::Config, Error> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(path, &e))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| kubeconfig_error(path, &e))
}

/// What tells one version of a kubeconfig file from another: the sha256 of its content.
fn fingerprint(path: &Path) -> Result<[u8; 32], Error> {
    let bytes = std::fs::read(path).map_err(|e| kubeconfig_error(path, &e))?;
    Ok(sha2::Sha256::digest(&bytes).into())
}

/// What errors of the in-cluster configuration name as its origin.
const IN_CLUSTER_ORIGIN: &str = "in-cluster service account";
/// Objects per LIST page.
const PAGE_SIZE: u32 = 500;

/// Decides, before every write, whether this process may write now: `Err` says why not.
/// Leader election fences the replicas with it ([`crate::lease::Leadership::fence`]).
pub type Fence = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A connection to one API server.
#[derive(Clone)]
pub struct Cluster {
    name: String,
    /// Shared by the clones: credentials re-read from the kubeconfig reach every user at once.
    credentials: Arc<std::sync::RwLock<Credentials>>,
    /// The kubeconfig and context it was made from, to re-read; none for in-cluster.
    origin: Option<(PathBuf, Option<String>)>,
    retry: RetryPolicy,
    requests: Arc<Requests>,
    fence: Option<Fence>,
}

/// A client and what is known of its credentials.
struct Credentials {
    client: kube::Client,
    token_expiry: Option<jiff::Timestamp>,
    /// The sha256 of the kubeconfig last read (whether or not a client came of it).
    read: Option<[u8; 32]>,
}

impl Credentials {
    /// A client for `config` (from `origin`, for errors), with k8s-sync's timeouts.
    fn from_config(mut config: kube::Config, origin: &Path) -> Result<Self, Error> {
        use secrecy::ExposeSecret as _;
        let token_expiry = config
            .auth_info
            .token
            .as_ref()
            .and_then(|t| crate::credentials::token_expiry(t.expose_secret()));
        // An unreachable replica must fail fast, not hang the pass.
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(60));
        // k8s-sync retries itself: it counts attempts into jobs, and a client-level retry
        // underneath would multiply them.
        config.default_retry = false;
        let client = kube::Client::try_from(config).map_err(|source| Error::Client {
            path: origin.to_path_buf(),
            source,
        })?;
        Ok(Credentials {
            client,
            token_expiry,
            read: None,
        })
    }
}

/// Requests sent to a cluster, counted as reads and writes.
#[derive(Debug, Default)]
pub struct Requests {
    /// LISTs, GETs.
    pub reads: AtomicU64,
    /// Applies, creates, deletes (dry-run ones included).
    pub writes: AtomicU64,
}

/// A listing that failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cluster did not answer, or refused.
    #[error(transparent)]
    Cluster(#[from] Error),
    /// An object it returned cannot be part of a snapshot.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::Error),
}

impl Cluster {
    /// Loads a kubeconfig (and context) into a client. Sends no request.
    pub async fn connect(name: &str, path: &Path, context: Option<&str>) -> Result<Self, Error> {
        let read = fingerprint(path)?;
        let config = load_kubeconfig(path, context).await?;
        let mut credentials = Credentials::from_config(config, path)?;
        credentials.read = Some(read);
        let mut cluster = Self::with_credentials(name, credentials);
        cluster.origin = Some((path.to_path_buf(), context.map(str::to_string)));
        Ok(cluster)
    }

    /// Reads the kubeconfig again if its content changed since it was last read (a Secret
    /// volume's update, a rotation): every clone of this cluster uses the new credentials from
    /// its next request. `Ok(true)` when they changed; a broken file is reported once and the
    /// credentials in use stay.
    pub async fn reread_credentials(&self) -> Result<bool, Error> {
        let Some((path, context)) = &self.origin else {
            return Ok(false);
        };
        let read = fingerprint(path)?;
        if self.lock().read == Some(read) {
            return Ok(false);
        }
        self.lock_mut().read = Some(read);
        // Changed while being read: the next check reads it again, which costs nothing more.
        let config = load_kubeconfig(path, context.as_deref()).await?;
        let mut fresh = Credentials::from_config(config, path)?;
        fresh.read = Some(read);
        *self.lock_mut() = fresh;
        Ok(true)
    }

    fn lock(&self) -> std::sync::RwLockReadGuard<'_, Credentials> {
        self.credentials.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_mut(&self) -> std::sync::RwLockWriteGuard<'_, Credentials> {
        self.credentials.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A client from the service account of the Pod this process runs in (kube's in-cluster
    /// configuration: `KUBERNETES_SERVICE_HOST`, the mounted token and CA). Sends no request.
    pub fn in_cluster(name: &str) -> Result<Self, Error> {
        let origin = Path::new(IN_CLUSTER_ORIGIN);
        let config = kube::Config::incluster().map_err(|e| match kubeconfig_error(origin, &e) {
            Error::Kubeconfig { reason, .. } => Error::InCluster { reason },
            other => other,
        })?;
        Ok(Self::with_credentials(
            name,
            Credentials::from_config(config, origin)?,
        ))
    }

    fn with_credentials(name: &str, credentials: Credentials) -> Self {
        Cluster {
            name: name.to_string(),
            credentials: Arc::new(std::sync::RwLock::new(credentials)),
            origin: None,
            retry: RetryPolicy::default(),
            requests: Arc::default(),
            fence: None,
        }
    }

    /// Asks `fence` before every write (dry-run ones included) and sends none it refuses.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the bearer token of its credentials expires, when that is known (a ServiceAccount
    /// token's `exp`).
    pub fn token_expiry(&self) -> Option<jiff::Timestamp> {
        self.lock().token_expiry
    }

    /// How long its token has left (negative once expired), when its expiry is known.
    pub fn token_left(&self) -> Option<jiff::SignedDuration> {
        self.token_expiry()
            .map(|expiry| expiry.duration_since(jiff::Timestamp::now()))
    }

    /// Requests sent so far.
    pub fn requests(&self) -> &Arc<Requests> {
        &self.requests
    }

    /// The server's version, e.g. `v1.36.3`.
    pub async fn version(&self) -> Result<String, Error> {
        self.requests.reads.fetch_add(1, Ordering::Relaxed);
        self.probe().await
    }

    /// Whether the server answers, and its version: [`Cluster::version`], once, not counted
    /// among the requests (a probe is not work sent to the cluster).
    pub async fn probe(&self) -> Result<String, Error> {
        self.client()
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|e| Error::from_kube("get /version".into(), e))
    }

    /// The cluster's own identity, as the source name of objects applied from it: `cluster/`
    /// and the uid of its `kube-system` namespace. The same through any URL, context or
    /// credentials; different for two clusters, even two in-cluster primaries that both call
    /// themselves `kubernetes.default.svc`.
    pub async fn identity(&self) -> Result<String, Error> {
        let request = kube::core::Request::new("/api/v1/namespaces")
            .get("kube-system", &Default::default())
            .expect("get requests always build");
        let namespace = self
            .send(
                "get namespace kube-system (the cluster's identity)",
                request,
                false,
            )
            .await?;
        match namespace.pointer("/metadata/uid").and_then(Value::as_str) {
            Some(uid) if !uid.is_empty() => Ok(format!("{IDENTITY_PREFIX}{uid}")),
            _ => Err(Error::Rejected {
                what: "get namespace kube-system (the cluster's identity)".into(),
                code: 200,
                reason: "NoUid".into(),
                message: "the namespace has no uid; name the source with --source-name".into(),
                retry_after: None,
            }),
        }
    }

    /// Sends a request. Reads are retried here; writes are retried by their caller, which
    /// records the attempts in its job.
    async fn send(
        &self,
        what: &str,
        request: http::Request<Vec<u8>>,
        write: bool,
    ) -> Result<Value, Error> {
        self.send_as(what, request, write).await
    }

    /// [`Cluster::send`], the answer parsed as a `T`.
    async fn send_as<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: http::Request<Vec<u8>>,
        write: bool,
    ) -> Result<T, Error> {
        if let (true, Some(fence)) = (write, &self.fence)
            && let Err(reason) = fence()
        {
            return Err(Error::Fenced {
                what: what.to_string(),
                reason,
            });
        }
        let (counter, retry) = if write {
            (&self.requests.writes, RetryPolicy::none())
        } else {
            (&self.requests.reads, self.retry)
        };
        let (result, _) = retry
            .run(Error::transience, || {
                counter.fetch_add(1, Ordering::Relaxed);
                let request = clone_request(&request);
                async {
                    self.client()
                        .request::<T>(request)
                        .await
                        .map_err(|e| Error::from_kube(what.to_string(), e))
                }
            })
            .await;
        result
    }

    /// The kube client, with the credentials in use now (for watches: they restart with a
    /// new one when the credentials change).
    pub fn client(&self) -> kube::Client {
        self.lock().client.clone()
    }
}

fn clone_request(request: &http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[cfg(test)]
mod tests;
