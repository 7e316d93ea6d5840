use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use k8s_sync::diff::render::{self, PlanView, TextOptions};
use k8s_sync::endpoint::{Connected, Endpoint};
use k8s_sync::pass::{self, Checked, Safety};
use k8s_sync::safety::{self, PruneBudget};
use k8s_sync::scope::Scope;
use k8s_sync::snapshot::Snapshot;
use k8s_sync::store::Store;
use serde_json::json;

use super::context::{endpoints, pass_options, resolve_kinds, source_snapshot};
use super::{Output, report_skipped};
use crate::cli::{DiffArgs, Format};

pub async fn run(args: &DiffArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let pass = &args.pass;
    let mut options = pass_options(pass, None, false);
    let (primary, replicas) = endpoints(pass)?;
    resolve_kinds(pass, &mut options.scope, &primary, &replicas).await?;
    let scope = &options.scope;
    // Held and delayed prunes are recorded by earlier passes; a diff only reads them.
    let store = Store::open_existing(&args.db)
        .with_context(|| format!("reading job database {}", args.db.display()))?;
    // The source first, then every replica at once: a replica's copies in step with the
    // source share its bytes, so memory grows with the source, not with source × replicas.
    let desired = source_snapshot(&primary, pass.source_name.as_deref(), scope).await?;
    let lives =
        futures::future::join_all(replicas.iter().map(|r| read_replica(r, scope, &desired))).await;
    report_skipped(output, "primary", &desired);

    let mut drift = false;
    let mut errors = Vec::new();
    let mut views = Vec::new();
    let stdout = std::io::stdout();
    for (replica, read) in replicas.iter().zip(lives) {
        let (connected, live) = match read {
            Ok(read) => read,
            Err(error) => {
                let error = anyhow::Error::new(error).context(format!("replica {}", replica.name));
                eprintln!("k8s-sync: {error:#}");
                errors.push(json!({"replica": replica.name, "error": format!("{error:#}")}));
                continue;
            }
        };
        report_skipped(output, &replica.name, &live);
        let budget = PruneBudget::default();
        let safety = Safety {
            authority: &safety::listed_in_full,
            budget: &budget,
            managed: None,
        };
        // The replica's server is asked about suspected drift; a diff records no verdict.
        let checked = Checked {
            cluster: connected.cluster(),
            store: store.as_ref(),
            remember: false,
        };
        let planned = pass::plan(
            &replica.name,
            &desired,
            &live,
            &options,
            pass::Focus::All,
            safety,
            checked,
        )
        .await?;
        // Said even with --quiet: the drift shown is then the subset check's alone.
        if let Some(reason) = &planned.confirmation.unavailable {
            eprintln!(
                "k8s-sync: {}: the server's verdict on {} suspected object(s) is not available, \
                 so drift is the subset check's: {reason}",
                replica.name, planned.confirmation.suspected
            );
        }
        let plan = planned.plan;
        for warning in &plan.warnings {
            eprintln!("k8s-sync: warning: {warning}");
        }
        drift |= plan.summary.drift() > 0;
        match output.format {
            Format::Text => {
                let options = TextOptions {
                    color: output.color,
                    detail: output.detail,
                };
                let text = render::text(&plan, &desired, &live, options);
                stdout.lock().write_all(text.as_bytes())?;
            }
            Format::Json => views.push(plan),
        }
        // The process ends right after the diff: freeing a snapshot of many objects one
        // allocation at a time would only add to its run time.
        std::mem::forget(live);
    }
    if output.format == Format::Json {
        let plans: Vec<PlanView> = views.iter().map(PlanView::from).collect();
        let document = json!({
            "primary": desired.source,
            "root_hash": desired.root_hash(),
            "replicas": plans,
            "errors": errors,
        });
        serde_json::to_writer_pretty(stdout.lock(), &document)?;
        println!();
    }
    std::mem::forget(desired);
    Ok(ExitCode::from(match (errors.is_empty(), drift) {
        (false, _) => 2,
        (true, true) => 1,
        (true, false) => 0,
    }))
}

/// Connects to a replica and reads it; the connection is kept to ask its server for verdicts.
async fn read_replica(
    replica: &Endpoint,
    scope: &Scope,
    desired: &Snapshot,
) -> Result<(Connected, Snapshot), k8s_sync::endpoint::Error> {
    let connected = replica.connect().await?;
    let live = connected
        .snapshot_against(&replica.name, scope, desired)
        .await?;
    Ok((connected, live))
}
