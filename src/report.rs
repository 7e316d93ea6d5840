//! What a pass did to one replica, in numbers: the output of `apply`, the input of metrics.

use serde::Serialize;

/// What happened on one replica.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The replica's name.
    pub replica: String,
    /// Namespaces created.
    pub namespaces_created: usize,
    /// Objects created.
    pub created: usize,
    /// Objects updated (adoptions and reverted edits included).
    pub updated: usize,
    /// Objects deleted and re-created.
    pub recreated: usize,
    /// Objects deleted because they are gone from the source.
    pub pruned: usize,
    /// Copies released to a synced kind's controller: markers removed, object left.
    pub released: usize,
    /// Objects already in step.
    pub unchanged: usize,
    /// Objects left alone: the replica has its own copy and adoption is off.
    pub conflicts: usize,
    /// Objects whose change failed.
    pub failed: usize,
    /// Prunes held over `--max-prune`.
    pub held: usize,
    /// Prunes waiting for `--prune-delay`.
    pub delayed: usize,
    /// PVCs gone from the source and kept (no `--prune-pvcs`).
    pub kept: usize,
    /// Changes left out: the primary's state of their kind is not authoritative.
    pub waiting: usize,
    /// Changes cut off because the replica stopped answering; their jobs are pending.
    pub interrupted: usize,
    /// Dry run: objects in namespaces the replica lacks, which its server cannot validate
    /// before the namespace exists; counted as created.
    pub unvalidated: usize,
    /// Write requests sent to the replica.
    pub writes: u64,
    /// Dry-run applies sent to ask the replica's server whether suspected drift is drift.
    pub verdicts_asked: usize,
    /// Wall time.
    pub duration_ms: u64,
    /// The objects whose change failed or was cut off.
    #[serde(skip)]
    pub unfinished: Vec<crate::snapshot::ObjectRef>,
    /// Why the whole replica failed, when it did (unreachable, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Cluster-scoped objects that synced ones refer to and the replica lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the pass did everything it set out to: the replica answered, no change failed
    /// or was cut off, and no kind waited for the primary.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.failed == 0 && self.interrupted == 0 && self.waiting == 0
    }

    /// Changes written (created, updated, recreated, pruned, released).
    pub fn applied(&self) -> usize {
        self.created + self.updated + self.recreated + self.pruned + self.released
    }
}
