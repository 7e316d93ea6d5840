//! Endpoints: where a pass reads objects from (the source) and compares them to (replicas).
//!
//! An endpoint is a directory of manifests (or a snapshot archive), a kubeconfig file,
//! optionally `FILE#CONTEXT`, or `in-cluster`: the service account of the Pod k8s-sync runs
//! in. Either way it yields a [`Snapshot`].

pub mod cluster;
pub mod directory;
pub mod served;

use std::io;
use std::path::{Path, PathBuf};

pub use cluster::{Cluster, Fence, ListError, ServedObject};

use crate::archive;
use crate::scope::Scope;
use crate::snapshot::{self, Snapshot};

/// Where an endpoint's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A tree of manifests, or a snapshot archive.
    Directory(PathBuf),
    /// A kubeconfig file and, optionally, a context in it.
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context; the file's current context when absent.
        context: Option<String>,
    },
    /// The cluster this process runs in, through its Pod's service account.
    InCluster,
}

/// What names the in-cluster endpoint on the command line.
pub const IN_CLUSTER: &str = "in-cluster";

/// Where a Pod's service account namespace is mounted.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace this process runs in, when it runs in a Pod: `POD_NAMESPACE` (the
/// downward API), else its service account's. k8s-sync never syncs it: it holds the replicas'
/// write credentials, and its own workload must not start on a replica.
pub fn own_namespace() -> Option<String> {
    let from_env = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.trim().is_empty());
    from_env
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
}

/// A named source or replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The name used in output, jobs and metrics: `NAME=` when given, else the file stem
    /// or directory name (and `#CONTEXT`).
    pub name: String,
    /// Where it lives.
    pub location: Location,
}

/// An endpoint that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist.
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    /// A file or directory could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A manifest is not valid YAML (or JSON).
    #[error("{path}{}: invalid YAML: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    InvalidYaml {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error, when known.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A snapshot archive's manifest is broken.
    #[error(transparent)]
    Archive(Box<archive::Error>),
    /// An object cannot be part of a snapshot.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// A cluster cannot be reached or refused a request.
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    /// `--kinds` names what the primary does not serve, or cannot be synced.
    #[error(transparent)]
    Select(#[from] crate::kinds::SelectError),
}

impl From<cluster::ListError> for Error {
    fn from(error: cluster::ListError) -> Self {
        match error {
            cluster::ListError::Cluster(e) => Error::Cluster(e),
            cluster::ListError::Snapshot(e) => Error::Snapshot(e),
        }
    }
}

/// An endpoint ready to be read: a directory, or a cluster client.
#[derive(Clone)]
pub enum Connected {
    /// A tree of manifests, or a snapshot archive.
    Directory(PathBuf),
    /// An API server.
    Cluster(Cluster),
}

impl Connected {
    /// Reads a replica's objects within `scope` into a snapshot. A cluster's snapshot is
    /// named `name`, and records the kinds it does not serve; a directory's is named after its
    /// manifest's source, or itself.
    pub async fn snapshot(&self, name: &str, scope: &Scope) -> Result<Snapshot, Error> {
        self.read(name, scope, true, None).await
    }

    /// Reads a replica as [`Connected::snapshot`] does, a cluster's copies that are
    /// `desired`'s objects byte for byte sharing their bytes with them: a replica in step costs
    /// little memory beyond the source's state. (A directory, read by `diff` only, is read as
    /// it is.)
    pub async fn snapshot_against(
        &self,
        name: &str,
        scope: &Scope,
        desired: &Snapshot,
    ) -> Result<Snapshot, Error> {
        self.read(name, scope, true, Some(desired)).await
    }

    async fn read(
        &self,
        name: &str,
        scope: &Scope,
        unserved_ok: bool,
        shared: Option<&Snapshot>,
    ) -> Result<Snapshot, Error> {
        match self {
            Connected::Directory(dir) => {
                let (dir, scope) = (dir.clone(), scope.clone());
                tokio::task::spawn_blocking(move || {
                    let listing = directory::read(&dir)?;
                    let mut snapshot = Snapshot::build(listing.source, listing.objects, &scope)?;
                    snapshot.aliases = listing.aliases;
                    Ok(snapshot)
                })
                .await
                .expect("directory reading does not panic")
            }
            Connected::Cluster(cluster) => {
                let (snapshot, _) = cluster.snapshot(name, scope, unserved_ok, shared).await?;
                Ok(snapshot)
            }
        }
    }

    /// The cluster client, when the endpoint is a cluster.
    pub fn cluster(&self) -> Option<&Cluster> {
        match self {
            Connected::Cluster(cluster) => Some(cluster),
            Connected::Directory(_) => None,
        }
    }
}

impl Endpoint {
    /// Parses `[NAME=]PATH[#CONTEXT]` or `[NAME=]in-cluster`. A directory is a directory
    /// endpoint; a file is a kubeconfig (a file called `in-cluster` is `./in-cluster`).
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let (name, rest) = match spec.split_once('=') {
            Some((name, rest)) if !name.is_empty() && !name.contains('/') => {
                (Some(name.to_string()), rest)
            }
            _ => (None, spec),
        };
        if rest == IN_CLUSTER {
            return Ok(Endpoint {
                name: name.unwrap_or_else(|| IN_CLUSTER.to_string()),
                location: Location::InCluster,
            });
        }
        let (path, context) = match rest.rsplit_once('#') {
            Some((path, context)) if !context.is_empty() => (path, Some(context.to_string())),
            _ => (rest, None),
        };
        let path = PathBuf::from(path);
        if path.is_dir() && context.is_none() {
            let name = name.unwrap_or_else(|| directory::dir_name(&path));
            return Ok(Endpoint {
                name,
                location: Location::Directory(path),
            });
        }
        if !path.exists() {
            return Err(Error::Missing(path));
        }
        let name = name.unwrap_or_else(|| {
            let stem = file_stem(&path);
            match &context {
                Some(context) => format!("{stem}#{context}"),
                None => stem,
            }
        });
        Ok(Endpoint {
            name,
            location: Location::Kubeconfig { path, context },
        })
    }

    /// Every regular, non-hidden file in `dir` is one replica kubeconfig, named after its stem.
    pub fn all_in(dir: &Path) -> Result<Vec<Self>, Error> {
        let read_error = |source| Error::Read {
            path: dir.to_path_buf(),
            source,
        };
        if !dir.exists() {
            return Err(Error::Missing(dir.to_path_buf()));
        }
        let mut endpoints = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden || !path.is_file() {
                continue;
            }
            endpoints.push(Endpoint {
                name: file_stem(&path),
                location: Location::Kubeconfig {
                    path,
                    context: None,
                },
            });
        }
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(endpoints)
    }

    /// Prepares the endpoint for reading: loads a kubeconfig into a client (no request yet).
    pub async fn connect(&self) -> Result<Connected, Error> {
        match &self.location {
            Location::Directory(dir) => Ok(Connected::Directory(dir.clone())),
            Location::Kubeconfig { path, context } => Ok(Connected::Cluster(
                Cluster::connect(&self.name, path, context.as_deref()).await?,
            )),
            Location::InCluster => Ok(Connected::Cluster(Cluster::in_cluster(&self.name)?)),
        }
    }

    /// Connects and reads the endpoint's objects within `scope` as a replica's, into a snapshot.
    pub async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, Error> {
        self.connect().await?.snapshot(&self.name, scope).await
    }

    /// Connects and reads the endpoint as the source of a pass: its objects as replicas are to
    /// have them ([`Snapshot::for_replicas`]), named by the source's own identity. A cluster is named by [`Cluster::identity`], the same however it
    /// is reached, with the endpoint's name (its kubeconfig's stem, as objects applied by
    /// earlier versions carry it) as an alias; a directory by its manifest's source or its
    /// path.
    pub async fn source_snapshot(&self, scope: &Scope) -> Result<Snapshot, Error> {
        Ok(self.read_source(scope).await?.for_replicas(scope))
    }

    /// Connects and reads the endpoint as a source, its objects as it has them: what
    /// `snapshot` archives. Named as [`Endpoint::source_snapshot`] names it.
    pub async fn read_source(&self, scope: &Scope) -> Result<Snapshot, Error> {
        let connected = self.connect().await?;
        if let Connected::Cluster(cluster) = &connected {
            let identity = cluster.identity().await?;
            let mut snapshot = connected.read(&self.name, scope, false, None).await?;
            snapshot.source = identity;
            snapshot.aliases = vec![self.name.clone()];
            return Ok(snapshot);
        }
        connected.read(&self.name, scope, false, None).await
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_contexts_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("prod.kubeconfig");
        std::fs::write(&kubeconfig, "").unwrap();
        let spec = kubeconfig.display().to_string();

        let e = Endpoint::parse(&spec).unwrap();
        assert_eq!(e.name, "prod");
        let e = Endpoint::parse(&format!("{spec}#admin")).unwrap();
        assert_eq!(e.name, "prod#admin");
        assert_eq!(
            e.location,
            Location::Kubeconfig {
                path: kubeconfig.clone(),
                context: Some("admin".into())
            }
        );
        let e = Endpoint::parse(&format!("dr={spec}")).unwrap();
        assert_eq!(e.name, "dr");

        let e = Endpoint::parse(&dir.path().display().to_string()).unwrap();
        assert_eq!(e.location, Location::Directory(dir.path().to_path_buf()));

        let e = Endpoint::parse("in-cluster").unwrap();
        assert_eq!(
            (e.name.as_str(), &e.location),
            ("in-cluster", &Location::InCluster)
        );
        let e = Endpoint::parse("prod=in-cluster").unwrap();
        assert_eq!(
            (e.name.as_str(), &e.location),
            ("prod", &Location::InCluster)
        );

        let missing = Endpoint::parse("/no/such/place").unwrap_err().to_string();
        assert_eq!(missing, "/no/such/place: no such file or directory");
    }

    #[test]
    fn lists_replica_kubeconfigs_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.kubeconfig", "a.yaml", ".hidden"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let names: Vec<_> = Endpoint::all_in(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
