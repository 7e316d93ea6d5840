//! What a command line names for a pass, shared by the commands that run one: the primary and
//! replicas, the primary's snapshot, and the pass options.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use k8s_sync::apply::ApplyOptions;
use k8s_sync::diff::PlanOptions;
use k8s_sync::endpoint::Endpoint;
use k8s_sync::endpoint::served::{self, Selection};
use k8s_sync::pass::PassOptions;
use k8s_sync::retry::RetryPolicy;
use k8s_sync::safety::PruneRules;
use k8s_sync::scope::Scope;
use k8s_sync::snapshot::Snapshot;

use crate::cli::{PassArgs, RunArgs};

/// The source and replicas named on the command line, replicas' names unique.
pub fn endpoints(args: &PassArgs) -> anyhow::Result<(Endpoint, Vec<Endpoint>)> {
    endpoints_of(&args.primary, &args.replica, args.replica_dir.as_deref())
}

/// The source `primary` and the replicas `replica` and `replica_dir` name, names unique.
pub fn endpoints_of(
    primary: &str,
    replica: &[String],
    replica_dir: Option<&std::path::Path>,
) -> anyhow::Result<(Endpoint, Vec<Endpoint>)> {
    let primary = Endpoint::parse(primary).context("primary")?;
    let mut replicas = Vec::new();
    for spec in replica {
        replicas.push(Endpoint::parse(spec).context("replica")?);
    }
    if let Some(dir) = replica_dir {
        replicas.extend(Endpoint::all_in(dir).context("--replica-dir")?);
    }
    if replicas.is_empty() {
        bail!(
            "no replicas: give --replica or --replica-dir (a directory holding replica kubeconfigs)"
        );
    }
    let mut names = BTreeSet::new();
    for replica in &replicas {
        if !names.insert(&replica.name) {
            bail!(
                "two replicas are named {:?}; name one with --replica NAME=PATH",
                replica.name
            );
        }
    }
    Ok((primary, replicas))
}

/// Resolves `--kinds` and `--sync-crds` into `scope` against what the primary serves (one
/// discovery, when the kinds go beyond the kind table).
pub async fn resolve_kinds(
    pass: &PassArgs,
    scope: &mut Scope,
    primary: &Endpoint,
    replicas: &[Endpoint],
) -> anyhow::Result<()> {
    let selection = Selection {
        kinds: pass.scope.selection(),
        sync_crds: pass.scope.sync_crds,
    };
    let connected = primary
        .connect()
        .await
        .with_context(|| format!("primary {}", primary.name))?;
    served::resolve(scope, &selection, &connected, replicas)
        .await
        .with_context(|| format!("primary {}", primary.name))
}

/// The primary's snapshot, named by the primary's identity or as `--source-name` says.
pub async fn source_snapshot(
    primary: &Endpoint,
    source_name: Option<&str>,
    scope: &Scope,
) -> anyhow::Result<Snapshot> {
    let mut snapshot = primary
        .source_snapshot(scope)
        .await
        .with_context(|| format!("primary {}", primary.name))?;
    if let Some(name) = source_name {
        snapshot.source = name.to_string();
        snapshot.aliases.clear();
    }
    Ok(snapshot)
}

/// Pass options from the command line; `force_prune` only `apply` has.
pub fn pass_options(pass: &PassArgs, run: Option<&RunArgs>, force_prune: bool) -> PassOptions {
    let mut apply = ApplyOptions::default();
    if let Some(run) = run {
        apply = ApplyOptions {
            workers: run.worker_count.into(),
            dry_run: run.dry_run,
            recreate: run.recreate,
            retry: RetryPolicy {
                attempts: run.attempts,
                ..RetryPolicy::default()
            },
            pending_when_unreachable: false,
        };
    }
    PassOptions {
        scope: pass.scope.scope(),
        plan: PlanOptions {
            adopt: !pass.no_adopt,
            prune: !pass.no_prune,
            prune_pvcs: pass.prune.prune_pvcs,
        },
        apply,
        prune: PruneRules {
            max: pass.prune.max_prune,
            force: force_prune,
            delay: pass.prune.prune_delay,
        },
    }
}
