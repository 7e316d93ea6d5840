use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_sync::diff::render::{self, PlanView, TextOptions};
use k8s_sync::diff::{Plan, PlanOptions};
use k8s_sync::endpoint::Endpoint;
use serde_json::json;

use super::{Output, report_skipped};
use crate::cli::{DiffArgs, Format, PassArgs};

/// The source and replicas named on the command line, replicas' names unique.
pub fn endpoints(args: &PassArgs) -> anyhow::Result<(Endpoint, Vec<Endpoint>)> {
    let primary = Endpoint::parse(&args.primary).context("primary")?;
    let mut replicas = Vec::new();
    for spec in &args.replica {
        replicas.push(Endpoint::parse(spec).context("replica")?);
    }
    if let Some(dir) = &args.replica_dir {
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

/// The primary's snapshot, named as `--source-name` says.
pub async fn source_snapshot(
    primary: &Endpoint,
    args: &PassArgs,
    scope: &k8s_sync::scope::Scope,
) -> anyhow::Result<k8s_sync::snapshot::Snapshot> {
    let mut snapshot = primary
        .snapshot(scope)
        .await
        .with_context(|| format!("primary {}", primary.name))?;
    if let Some(name) = &args.source_name {
        snapshot.source = name.clone();
    }
    Ok(snapshot)
}

pub async fn run(args: &DiffArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let pass = &args.pass;
    let scope = pass.scope.scope();
    let options = PlanOptions {
        adopt: !pass.no_adopt,
        prune: !pass.no_prune,
    };
    let (primary, replicas) = endpoints(pass)?;
    // The source and every replica are read at once.
    let (desired, lives) = tokio::join!(
        source_snapshot(&primary, pass, &scope),
        futures::future::join_all(replicas.iter().map(|r| r.snapshot(&scope)))
    );
    let desired = desired?;
    report_skipped(output, "primary", &desired);

    let mut drift = false;
    let mut errors = Vec::new();
    let mut views = Vec::new();
    let stdout = std::io::stdout();
    for (replica, live) in replicas.iter().zip(lives) {
        let live = match live {
            Ok(live) => live,
            Err(error) => {
                let error = anyhow::Error::new(error).context(format!("replica {}", replica.name));
                eprintln!("k8s-sync: {error:#}");
                errors.push(json!({"replica": replica.name, "error": format!("{error:#}")}));
                continue;
            }
        };
        report_skipped(output, &replica.name, &live);
        let plan = Plan::new(&replica.name, &desired, &live, options);
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
