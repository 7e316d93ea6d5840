//! Making one change on a replica: a server-side apply, a deletion, or (with `--recreate`) a
//! deletion and a new apply; each request retried as the policy says.

use std::time::{Duration, Instant};

use super::{ApplyOptions, Done, apply_body};
use crate::diff::{Action, Change};
use crate::endpoint::Cluster;
use crate::endpoint::cluster::Error as ClusterError;
use crate::kinds::Kind;
use crate::snapshot::Entry;

/// Why one change failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("immutable fields changed ({0}); rerun with --recreate to delete and re-create it")]
    NeedsRecreate(String),
    #[error(
        "immutable fields changed ({0}); PersistentVolumeClaims are never deleted to re-create them"
    )]
    NeverRecreated(String),
    #[error("Secret values were redacted in the source snapshot; they cannot be applied")]
    Redacted,
    #[error("still present {0:?} after its deletion")]
    DeletionStuck(Duration),
    #[error("{0}")]
    Unserved(String),
}

impl JobError {
    /// The replica does not serve `kind`: for a custom resource, its CRD is missing there.
    pub(super) fn unserved(kind: &Kind) -> Self {
        JobError::Unserved(if kind.in_table || !kind.group.contains('.') {
            format!(
                "the replica does not serve {}/{}",
                kind.api_version(),
                kind.plural
            )
        } else {
            format!(
                "the replica does not serve {}: the CustomResourceDefinition {} is missing there (--sync-crds copies it)",
                kind.api_version(),
                kind.resource()
            )
        })
    }
}

pub(super) async fn execute(
    cluster: &Cluster,
    change: &Change,
    want: Option<&Entry>,
    have: Option<&Entry>,
    source: &str,
    options: &ApplyOptions,
) -> (Result<Done, JobError>, u32) {
    let retry = options.retry;
    let transience = |e: &ClusterError| e.transience();
    let kind = change.kind;
    let identity = have.and_then(|h| h.identity.as_ref());
    // Gone already is what a deletion wants: a deletion whose answer was lost on the way and
    // that was sent again ends here too.
    let delete = || async {
        let (result, attempts) = retry
            .run(transience, || {
                cluster.delete(
                    kind,
                    &change.namespace,
                    &change.name,
                    identity,
                    options.dry_run,
                )
            })
            .await;
        match result {
            Err(e) if e.is_not_found() => (Ok(()), attempts),
            other => (other, attempts),
        }
    };
    if change.action == Action::Release {
        let (result, attempts) = retry
            .run(transience, || {
                cluster.release(kind, &change.namespace, &change.name, options.dry_run)
            })
            .await;
        return (
            result.map(|()| Done::Released).map_err(Into::into),
            attempts,
        );
    }
    if change.action == Action::Prune {
        let (result, attempts) = delete().await;
        return (result.map(|()| Done::Deleted).map_err(Into::into), attempts);
    }
    let want = want.expect("only prunes lack a desired object");
    if want.redacted {
        return (Err(JobError::Redacted), 0);
    }
    let body = apply_body(want, source);
    let mut attempts = 0;
    if change.action != Action::NeedsRecreate {
        let (result, tries) = retry
            .run(transience, || {
                cluster.apply_without_answer(kind, &body, options.dry_run)
            })
            .await;
        attempts += tries;
        match result {
            Ok(_) => return (Ok(Done::Applied), attempts),
            Err(e) if e.is_immutable() => {}
            Err(e) => return (Err(e.into()), attempts),
        }
    }
    let fields = if change.immutable_paths.is_empty() {
        "the server refused an in-place update".to_string()
    } else {
        change.immutable_paths.join(", ")
    };
    if !kind.recreatable {
        return (Err(JobError::NeverRecreated(fields)), attempts);
    }
    if !options.recreate {
        return (Err(JobError::NeedsRecreate(fields)), attempts);
    }
    let (result, tries) = delete().await;
    attempts += tries;
    if let Err(e) = result {
        return (Err(e.into()), attempts);
    }
    if options.dry_run {
        return (Ok(Done::Recreated), attempts);
    }
    if let Err(e) = wait_until_gone(cluster, change).await {
        return (Err(e), attempts);
    }
    let (result, tries) = retry
        .run(transience, || {
            cluster.apply_without_answer(kind, &body, false)
        })
        .await;
    (
        result.map(|_| Done::Recreated).map_err(Into::into),
        attempts + tries,
    )
}

/// Background deletion of an object without finalizers is immediate, but the apply must not
/// race it: wait (bounded) until the server no longer has it.
async fn wait_until_gone(cluster: &Cluster, change: &Change) -> Result<(), JobError> {
    const LIMIT: Duration = Duration::from_secs(30);
    let deadline = Instant::now() + LIMIT;
    let mut pause = Duration::from_millis(20);
    while cluster
        .exists(change.kind, &change.namespace, &change.name)
        .await?
    {
        if Instant::now() > deadline {
            return Err(JobError::DeletionStuck(LIMIT));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    Ok(())
}
