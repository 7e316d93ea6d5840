use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_sync::apply::Journal;
use k8s_sync::metrics::Metrics;
use k8s_sync::pass::{self, RecordedOptions, job_object};
use k8s_sync::report::Report;
use k8s_sync::snapshot::ObjectRef;
use k8s_sync::store::{Job, JobFilter, Status, Store};

use super::Output;
use super::context::{endpoints, pass_options, resolve_kinds, source_snapshot};
use super::open_store;
use super::progress::{Reporter, summary};
use crate::cli::{Format, JobsAction, JobsCommand, PassArgs, RunArgs};

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
        JobsAction::Retry { id, pass, run } => retry(id, &pass, &run, output).await,
        JobsAction::Release {
            replica_name,
            pass,
            run,
        } => release(&replica_name, &pass, &run, output).await,
    }
}

/// `jobs retry ID`: re-runs one job's change now, with the options of the pass that made it.
async fn retry(
    id: i64,
    pass: &PassArgs,
    run: &RunArgs,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&run.db)?;
    store.settle_abandoned()?;
    let Some(job) = store.job(id)? else {
        bail!("job {id}: no such job in {}", run.db.path.display());
    };
    // A job of a kind beyond the table is known once the primary has been asked of its kinds.
    known_kinds(pass).await?;
    let only = job_object(&job).with_context(|| format!("job {id}: unknown kind {}", job.kind))?;
    let focused = Focused {
        replica: &job.replica,
        objects: BTreeSet::from([only]),
        recorded: RecordedOptions::of(&job),
        force_prune: false,
    };
    let report = focused.run(&store, pass, run, output).await?;
    let job = store.job(id)?.expect("jobs are never deleted");
    print_jobs(std::slice::from_ref(&job), output)?;
    Ok(match (report.failed, job.status) {
        (0, Status::Succeeded) => ExitCode::SUCCESS,
        // The primary moved on: this change is superseded, the new one was applied.
        (0, _) if report.applied() > 0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// `jobs release REPLICA`: prunes the objects whose prunes are held on one replica and are
/// still gone from the primary, past `--max-prune`; records the release.
async fn release(
    replica_name: &str,
    pass: &PassArgs,
    run: &RunArgs,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&run.db)?;
    store.settle_abandoned()?;
    let held = store.jobs(&JobFilter {
        status: Some(Status::Held),
        replica: Some(replica_name.to_string()),
        limit: None,
    })?;
    known_kinds(pass).await?;
    let focused = Focused {
        replica: replica_name,
        objects: held.iter().filter_map(job_object).collect(),
        recorded: held.iter().find_map(RecordedOptions::of),
        force_prune: true,
    };
    if focused.objects.is_empty() {
        output.note(format_args!("{replica_name}: no prunes are held"));
        return Ok(ExitCode::SUCCESS);
    }
    let by = format!(
        "cli ({})",
        std::env::var("USER").unwrap_or_else(|_| "unknown user".into())
    );
    store.record_release(replica_name, &by, focused.objects.len())?;
    let report = focused.run(&store, pass, run, output).await?;
    Ok(if report.failed == 0 && report.error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Registers the kinds `--kinds` names, so that jobs recorded of them can be read back.
async fn known_kinds(pass: &PassArgs) -> anyhow::Result<()> {
    let (primary, replicas) = endpoints(pass)?;
    let mut scope = pass.scope.scope();
    resolve_kinds(pass, &mut scope, &primary, &replicas).await
}

/// A pass of one replica about some recorded objects, as the pass that recorded them ran.
struct Focused<'a> {
    replica: &'a str,
    objects: BTreeSet<ObjectRef>,
    recorded: Option<RecordedOptions>,
    force_prune: bool,
}

impl Focused<'_> {
    /// Lists the primary's state of the objects anew (one LIST of each kind in each of their
    /// namespaces) and runs the one path on the replica.
    async fn run(
        &self,
        store: &Store,
        pass: &PassArgs,
        run: &RunArgs,
        output: &Output,
    ) -> anyhow::Result<Report> {
        let (primary, replicas) = endpoints(pass)?;
        let Some(replica) = replicas.into_iter().find(|r| r.name == self.replica) else {
            bail!("replica {:?} is not among the replicas given", self.replica);
        };
        let mut options = pass_options(pass, Some(run), self.force_prune);
        if let Some(recorded) = &self.recorded {
            options = options.with_recorded(recorded);
        }
        // The CRDs `--sync-crds` syncs, for a retry of one of them.
        resolve_kinds(
            pass,
            &mut options.scope,
            &primary,
            std::slice::from_ref(&replica),
        )
        .await?;
        options.scope = options
            .scope
            .narrowed(self.objects.iter().map(|r| (r.kind, r.namespace.as_str())));
        let mut desired =
            source_snapshot(&primary, pass.source_name.as_deref(), &options.scope).await?;
        if let Some(recorded) = &self.recorded {
            recorded.name(&mut desired);
        }
        let reporter = Reporter::new(output, std::slice::from_ref(&replica.name));
        let metrics = Metrics::new();
        let recorded_json = options.recorded(&desired);
        let journal = Journal {
            store,
            metrics: &metrics,
            progress: &reporter,
            pass_options: Some(&recorded_json),
        };
        let focus = pass::Focus::Objects(&self.objects);
        let report = pass::sync_replica(&replica, &desired, &options, journal, focus).await?;
        output.note(summary(&report));
        Ok(report)
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
                let due = job
                    .due_at
                    .as_deref()
                    .map(|d| format!("  due: {d}"))
                    .unwrap_or_default();
                println!(
                    "{:>6}  {:<10} {:<9} {:<8} {}/{}/{}  {}  attempts={}{due}{}",
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
