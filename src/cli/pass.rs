//! What a pass looks at, where it reads and writes, and how it prunes: the flags every
//! pass-running command shares.

use std::path::PathBuf;

use clap::Args;
use k8s_sync::kinds::{KindSelection, KindSet};
use k8s_sync::safety::MaxPrune;
use k8s_sync::scope::Scope;

use super::parse_duration;

/// What a pass looks at.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Sync only these namespaces (comma-separated). Default: every namespace.
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    pub sync_namespaces: Vec<String>,
    /// Also sync kube-* namespaces (kube-system, kube-public, ...), which are skipped by default.
    #[arg(long)]
    pub allow_sensitive_namespaces: bool,
    /// Never sync these namespaces (comma-separated). The namespace k8s-sync runs in (the
    /// Pod's, from POD_NAMESPACE or its service account) is always excluded: it holds the
    /// replicas' write credentials.
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    pub exclude_namespaces: Vec<String>,
    /// Kinds to sync (comma-separated), any resource the primary serves: by plural
    /// (services), plural.group (widgets.example.com), Kind or Kind.group. `all`: every
    /// namespaced resource that can be listed, watched and patched, but runtime state (Pods,
    /// Events, Endpoints, EndpointSlices, ReplicaSets, ControllerRevisions, Leases, ...) and
    /// Jobs. An object whose controller is of a synced kind is left to that controller.
    /// Default: configmaps, secrets, persistentvolumeclaims, deployments, statefulsets.
    #[arg(long, value_name = "KIND,...|all")]
    pub kinds: Option<KindSelection>,
    /// Also copy the CustomResourceDefinitions of the synced custom resources, before them.
    /// They are never pruned: deleting a CRD deletes every object of it.
    #[arg(long)]
    pub sync_crds: bool,
    /// Let CronJobs run on the replicas. Without it their copies are suspended
    /// (spec.suspend: true), so that a warm standby does not run the primary's schedules twice.
    #[arg(long)]
    pub run_cronjobs: bool,
}

impl ScopeArgs {
    /// What `--kinds` asks for.
    pub fn selection(&self) -> KindSelection {
        self.kinds.clone().unwrap_or_default()
    }

    /// The scope, with the kinds that need no discovery (the default five and rows of the kind
    /// table); [`Selection`](k8s_sync::discovery::Selection) resolves the rest.
    pub fn scope(&self) -> Scope {
        Scope {
            kinds: self
                .selection()
                .without_discovery()
                .unwrap_or_else(KindSet::empty),
            crds: Default::default(),
            run_cronjobs: self.run_cronjobs,
            owners: None,
            namespaces: (!self.sync_namespaces.is_empty())
                .then(|| self.sync_namespaces.iter().cloned().collect()),
            allow_sensitive_namespaces: self.allow_sensitive_namespaces,
            excluded: self
                .exclude_namespaces
                .iter()
                .cloned()
                .chain(k8s_sync::endpoint::own_namespace())
                .collect(),
        }
    }
}

/// The source and replicas of a pass.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// The source: a directory of manifests or snapshot, or a kubeconfig (FILE#CONTEXT).
    #[arg(long, value_name = "SRC")]
    pub primary: String,
    /// A replica: a directory or kubeconfig, optionally named NAME=PATH. Repeatable.
    #[arg(long, value_name = "DST")]
    pub replica: Vec<String>,
    /// A directory in which every regular, non-hidden file is a replica kubeconfig, named
    /// after its file stem.
    #[arg(long, value_name = "DIR")]
    pub replica_dir: Option<PathBuf>,
    /// The name recorded in the k8s-sync.io/source annotation of every object applied, and
    /// used to recognise this primary's objects when pruning. Default: the primary's name (its
    /// kubeconfig's file stem, or the source recorded in a snapshot).
    #[arg(long, value_name = "NAME")]
    pub source_name: Option<String>,
    /// Report replica objects k8s-sync did not create, and that differ, as conflicts instead of
    /// adopting them.
    #[arg(long)]
    pub no_adopt: bool,
    /// Keep objects k8s-sync created that are gone from the primary.
    #[arg(long)]
    pub no_prune: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// How far pruning may go: the guards between a deletion on the primary and the replicas.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Prune at most this many objects of one replica in one pass (in watch mode, within
    /// --max-prune-window): a count, or a percentage of the objects the primary manages there
    /// (a percentage allows at least 10). A pass that would prune more prunes none of them and
    /// records them as held.
    #[arg(long, value_name = "N|P%", default_value = "10%")]
    pub max_prune: MaxPrune,
    /// Also prune PersistentVolumeClaims gone from the primary. Without it they are kept:
    /// they hold the data.
    #[arg(long)]
    pub prune_pvcs: bool,
    /// Prune a replica's copy only once the object has stayed deleted on the primary this
    /// long (e.g. 10m), so that an accidental deletion can be undone before the copies follow.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub prune_delay: std::time::Duration,
}
