//! One pass against one replica: read it, plan against the source, apply. Every mode (`apply`,
//! `jobs retry`, a watch resync) runs this same path.

use crate::apply::{self, ApplyOptions, Report, Sinks};
use crate::diff::{Plan, PlanOptions};
use crate::endpoint::{Connected, Endpoint};
use crate::scope::Scope;
use crate::snapshot::{ObjectRef, Snapshot};
use crate::store;

/// Everything that shapes a pass.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// What to look at.
    pub scope: Scope,
    /// Adoption and pruning.
    pub plan: PlanOptions,
    /// Workers, dry run, recreate, retries.
    pub apply: ApplyOptions,
}

/// Reads `replica`, plans it against `desired` and applies the plan. A replica that cannot be
/// read fails alone: its objects are recorded as failed jobs and the report carries the error.
/// With `only`, the plan is cut down to that one object.
pub async fn sync_replica(
    replica: &Endpoint,
    desired: &Snapshot,
    options: &PassOptions,
    sinks: Sinks<'_>,
    only: Option<&ObjectRef>,
) -> Result<Report, store::Error> {
    // A failure before planning is recorded against the objects this pass is about.
    let narrowed;
    let about = match only {
        Some(only) => {
            narrowed = Snapshot {
                objects: desired
                    .objects
                    .iter()
                    .filter(|(r, _)| *r == only)
                    .map(|(r, e)| (r.clone(), e.clone()))
                    .collect(),
                ..Snapshot::default()
            };
            &narrowed
        }
        None => desired,
    };
    let fail = |error: String| apply::fail_unreachable(&replica.name, about, &error, sinks);
    let connected = match replica.connect().await {
        Ok(connected) => connected,
        Err(e) => return fail(crate::error_chain(&e)),
    };
    let Connected::Cluster(cluster) = &connected else {
        return fail("a directory replica is read-only: apply needs a kubeconfig".into());
    };
    let live = match connected.snapshot(&replica.name, &options.scope).await {
        Ok(live) => live,
        Err(e) => return fail(crate::error_chain(&e)),
    };
    let mut plan = Plan::new(&replica.name, desired, &live, options.plan);
    if let Some(only) = only {
        plan.changes.retain(|c| &c.reference() == only);
        plan.missing_namespaces.retain(|ns| *ns == only.namespace);
    }
    apply::apply(cluster, &plan, desired, &live, sinks, &options.apply).await
}
