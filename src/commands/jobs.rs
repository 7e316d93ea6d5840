use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_sync::kinds::KINDS;
use k8s_sync::pass;
use k8s_sync::snapshot::ObjectRef;
use k8s_sync::store::{Job, JobFilter, Status};

use super::Output;
use super::apply::pass_options;
use super::diff::{endpoints, source_snapshot};
use super::open_store;
use super::progress::{Reporter, summary};
use crate::cli::{Format, JobsAction, JobsCommand};

pub async fn run(args: JobsCommand, output: &Output) -> anyhow::Result<ExitCode> {
    match args.action {
        JobsAction::List {
            status,
            replica,
            limit,
            db,
        } => {
            let store = open_store(&db)?;
            let filter = JobFilter {
                status: status.as_deref().and_then(Status::parse),
                replica,
                limit: Some(limit),
            };
            let jobs = store.jobs(&filter)?;
            print_jobs(&jobs, output)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsAction::Retry { id, pass, run } => {
            let store = open_store(&run.db)?;
            let Some(job) = store.job(id)? else {
                bail!("job {id}: no such job in {}", run.db.path.display());
            };
            let (primary, replicas) = endpoints(&pass)?;
            let Some(replica) = replicas.into_iter().find(|r| r.name == job.replica) else {
                bail!(
                    "job {id}: replica {:?} is not among the replicas given",
                    job.replica
                );
            };
            let kind = KINDS
                .iter()
                .find(|k| k.kind == job.kind)
                .with_context(|| format!("job {id}: unknown kind {}", job.kind))?;
            // Narrow the pass to the job's object: one LIST of its kind in its namespace.
            let mut options = pass_options(&pass, &run);
            options.scope.kinds = kind.plural.parse().expect("plurals parse");
            options.scope.namespaces = Some([job.namespace.clone()].into());
            options.scope.allow_sensitive_namespaces |=
                k8s_sync::scope::is_sensitive_namespace(&job.namespace);
            let desired = source_snapshot(&primary, &pass, &options.scope).await?;
            let only = ObjectRef {
                kind,
                namespace: job.namespace.clone(),
                name: job.name.clone(),
            };
            let reporter = Reporter::new(output, std::slice::from_ref(&replica.name));
            let metrics = k8s_sync::metrics::Metrics::new();
            let sinks = k8s_sync::apply::Sinks {
                store: &store,
                metrics: &metrics,
                progress: &reporter,
            };
            let report =
                pass::sync_replica(&replica, &desired, &options, sinks, Some(&only)).await?;
            output.note(summary(&report));
            let job = store.job(id)?.expect("jobs are never deleted");
            print_jobs(std::slice::from_ref(&job), output)?;
            Ok(match (report.failed, job.status) {
                (0, Status::Succeeded) => ExitCode::SUCCESS,
                // The primary moved on: this change is superseded, the new one was applied.
                (0, _)
                    if report.created + report.updated + report.recreated + report.pruned > 0 =>
                {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            })
        }
    }
}

fn print_jobs(jobs: &[Job], output: &Output) -> anyhow::Result<()> {
    match output.format {
        Format::Json => {
            let shown: Vec<_> = jobs.iter().map(Job::shown).collect();
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        Format::Text => {
            for job in jobs {
                let key = match job.kind.as_str() {
                    "Secret" => "-",
                    _ => job.change_key.get(..19).unwrap_or(&job.change_key),
                };
                println!(
                    "{:>6}  {:<10} {:<9} {:<8} {}/{}/{}  {}  attempts={}{}",
                    job.id,
                    job.replica,
                    job.status.as_str(),
                    job.action,
                    job.namespace,
                    job.kind,
                    job.name,
                    key,
                    job.attempts,
                    job.error
                        .as_deref()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(())
}
