use std::process::ExitCode;

use anyhow::Context;
use k8s_sync::apply::{ApplyOptions, Report, Sinks};
use k8s_sync::archive;
use k8s_sync::diff::PlanOptions;
use k8s_sync::metrics::Metrics;
use k8s_sync::pass::{self, PassOptions};
use k8s_sync::retry::RetryPolicy;
use serde_json::json;

use super::Output;
use super::diff::{endpoints, source_snapshot};
use super::progress::{Reporter, summary};
use crate::cli::{ApplyArgs, Format, PassArgs, RunArgs};

/// Pass options from the command line.
pub fn pass_options(pass: &PassArgs, run: &RunArgs) -> PassOptions {
    PassOptions {
        scope: pass.scope.scope(),
        plan: PlanOptions {
            adopt: !pass.no_adopt,
            prune: !pass.no_prune,
        },
        apply: ApplyOptions {
            workers: run.worker_count.into(),
            dry_run: run.dry_run,
            recreate: run.recreate,
            retry: RetryPolicy {
                attempts: run.attempts,
                ..RetryPolicy::default()
            },
        },
    }
}

pub async fn run(args: &ApplyArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let options = pass_options(&args.pass, &args.run);
    let (primary, replicas) = endpoints(&args.pass)?;
    let store = super::open_store(&args.run.db)?;
    let desired = source_snapshot(&primary, &args.pass, &options.scope).await?;
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
    let sinks = Sinks {
        store: &store,
        metrics: &metrics,
        progress: &reporter,
    };
    let timer = metrics.pass_seconds.start_timer();
    let passes = replicas
        .iter()
        .map(|replica| pass::sync_replica(replica, &desired, &options, sinks, None));
    let results = futures::future::join_all(passes).await;
    timer.observe_duration();
    let reports: Vec<Report> = results.into_iter().collect::<Result<_, _>>()?;

    let failed: usize = reports.iter().map(|r| r.failed).sum();
    let conflicts: usize = reports.iter().map(|r| r.conflicts).sum();
    let applied: usize = reports
        .iter()
        .map(|r| r.created + r.updated + r.recreated + r.pruned)
        .sum();
    store.finish_pass(pass_id, applied + failed + conflicts, applied, failed)?;
    match output.format {
        Format::Text => {
            for report in &reports {
                output.note(summary(report));
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
    Ok(if failed + conflicts > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
