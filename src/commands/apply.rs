use std::process::ExitCode;

use anyhow::Context;
use k8s_sync::apply::Journal;
use k8s_sync::archive;
use k8s_sync::metrics::Metrics;
use k8s_sync::pass;
use k8s_sync::report::Report;
use serde_json::json;

use super::Output;
use super::context::{endpoints, pass_options, resolve_kinds, source_snapshot};
use super::progress::{Reporter, summary};
use crate::cli::{ApplyArgs, Format};

pub async fn run(args: &ApplyArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let mut options = pass_options(&args.pass, Some(&args.run), args.force_prune);
    let (primary, replicas) = endpoints(&args.pass)?;
    resolve_kinds(&args.pass, &mut options.scope, &primary, &replicas).await?;
    let store = super::open_store(&args.run.db)?;
    let settled = store.settle_abandoned()?;
    if settled > 0 {
        output.note(format_args!(
            "{settled} job(s) left running by a process that is gone are pending again"
        ));
    }
    let desired =
        source_snapshot(&primary, args.pass.source_name.as_deref(), &options.scope).await?;
    if let Some(root) = &args.archive {
        match archive::write_if_changed(&desired, root)
            .with_context(|| format!("archiving to {}", root.display()))?
        {
            Some(dir) => output.note(format_args!(
                "archived the primary's snapshot to {}",
                dir.display()
            )),
            None => output.detail("the primary's snapshot is unchanged since the newest archive"),
        }
    }
    let pass_id = store.begin_pass(
        &desired.source,
        desired.root_hash().as_str(),
        desired.objects.len(),
    )?;

    let names: Vec<String> = replicas.iter().map(|r| r.name.clone()).collect();
    let reporter = Reporter::new(output, &names);
    let metrics = Metrics::new();
    let recorded = options.recorded(&desired);
    let journal = Journal {
        store: &store,
        metrics: &metrics,
        progress: &reporter,
        pass_options: Some(&recorded),
    };
    let timer = metrics.pass_seconds.start_timer();
    let passes = replicas
        .iter()
        .map(|replica| pass::sync_replica(replica, &desired, &options, journal, pass::Focus::All));
    let results = futures::future::join_all(passes).await;
    timer.observe_duration();
    let reports: Vec<Report> = results.into_iter().collect::<Result<_, _>>()?;

    let failed: usize = reports.iter().map(|r| r.failed).sum();
    let conflicts: usize = reports.iter().map(|r| r.conflicts).sum();
    let held: usize = reports.iter().map(|r| r.held).sum();
    let applied: usize = reports.iter().map(Report::applied).sum();
    store.finish_pass(
        pass_id,
        applied + failed + conflicts + held,
        applied,
        failed,
    )?;
    match output.format {
        Format::Text => {
            for report in &reports {
                output.note(summary(report));
            }
            if held > 0 {
                output.note(format_args!(
                    "{held} prune(s) held over --max-prune {}: see `k8s-sync jobs list --status held`; \
                     `k8s-sync jobs release REPLICA` or `apply --force-prune` prunes them",
                    options.prune.max
                ));
            }
        }
        Format::Json => {
            let document = json!({
                "primary": desired.source,
                "root_hash": desired.root_hash(),
                "dry_run": options.apply.dry_run,
                "replicas": reports,
            });
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
    }
    // A replica that could not be read fails the run even when it had nothing to receive.
    let unread = reports.iter().any(|r| r.error.is_some());
    Ok(if failed + conflicts + held > 0 || unread {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
