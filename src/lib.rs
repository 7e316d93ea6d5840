//! k8s-sync keeps replica Kubernetes clusters in step with a primary.
//!
//! A pass reads the source's objects, normalizes each into canonical form with a change key
//! ([`normalize`]), gathers them into a [`snapshot::Snapshot`], compares it with each replica's
//! snapshot into a [`diff::Plan`], and (in later stages) applies the plan. The same snapshot can be
//! archived for audits ([`archive`]).

pub mod accounts;
pub mod api;
pub mod apply;
pub mod archive;
pub mod credentials;
pub mod diff;
pub mod endpoint;
pub mod kinds;
pub mod lease;
pub mod metrics;
pub mod normalize;
pub mod pass;
pub mod rbac;
pub mod references;
pub mod report;
pub mod retry;
pub mod safety;
pub mod scope;
pub mod secret;
pub mod shard;
pub mod snapshot;
pub mod store;
pub mod verdict;
pub mod watch;
pub mod yaml;

/// An error and its causes on one line, joined by `: ` (as anyhow's `{:#}` prints them).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
