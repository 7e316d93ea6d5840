//! What a cluster's answers (or their absence) mean to a pass.

use std::path::PathBuf;
use std::time::Duration;

use crate::retry::Transience;

/// A cluster that cannot be reached or refused a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig is missing, malformed, or lacks the context.
    #[error("{path}: cannot load kubeconfig: {reason}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong, on one line, with quoted text left out: a parser quoting the
        /// offending line could quote a token.
        reason: String,
    },
    /// The in-cluster configuration (a Pod's service account) is not there.
    #[error("in-cluster: no service account of a Pod here: {reason}")]
    InCluster {
        /// What is missing.
        reason: String,
    },
    /// The client could not be built from the kubeconfig.
    #[error("{path}: cannot build a client")]
    Client {
        /// The kubeconfig file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The server answered with an error status.
    #[error("{what}: {code} {reason}: {message}")]
    Rejected {
        /// The request, e.g. `apply shop/Deployment/web`.
        what: String,
        /// HTTP status code.
        code: u16,
        /// The server's machine-readable reason, e.g. `Invalid`.
        reason: String,
        /// The server's message.
        message: String,
        /// The server's `retryAfterSeconds`, if any.
        retry_after: Option<u32>,
    },
    /// The write was not sent: this process may not write now.
    #[error("{what}: not sent: {reason}")]
    Fenced {
        /// The request.
        what: String,
        /// Why not, e.g. another copy leads.
        reason: String,
    },
    /// The request did not get an answer (connection refused, TLS, timeout).
    #[error("{what}: no answer from the API server")]
    Unreachable {
        /// The request.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// `error` of the request `what`: the server's answer, or its absence.
    pub fn from_kube(what: String, error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Error::Rejected {
                what,
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
                retry_after: status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0),
            },
            other => Error::Unreachable {
                what,
                source: other,
            },
        }
    }

    /// Whether retrying may help: 429, 5xx, and no answer at all.
    pub fn transience(&self) -> Transience {
        match self {
            Error::Rejected {
                code, retry_after, ..
            } if *code == 429 || *code >= 500 => Transience::Transient {
                retry_after: retry_after.map(|s| Duration::from_secs(s.into())),
            },
            Error::Unreachable { .. } => Transience::Transient { retry_after: None },
            _ => Transience::Permanent,
        }
    }

    /// Whether the server refused to change a field in place.
    pub fn is_immutable(&self) -> bool {
        matches!(self, Error::Rejected { code: 422, message, .. }
            if message.contains("immutable") || message.contains("updates to statefulset spec for fields other than"))
    }

    /// Whether the server gave no answer at all (down, frozen, partitioned).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Whether the write was held back by the fence, unsent.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::Fenced { .. })
    }

    /// Whether the server refused the caller the request (401, 403).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Error::Rejected {
                code: 401 | 403,
                ..
            }
        )
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Rejected { code: 404, .. })
    }

    /// Whether the object already exists.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Rejected { code: 409, .. })
    }
}
