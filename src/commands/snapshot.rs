use std::process::ExitCode;

use anyhow::Context;
use k8s_sync::archive::{self, SecretData};
use k8s_sync::endpoint::Endpoint;
use k8s_sync::endpoint::served::{self, Selection};
use serde_json::json;

use super::{Output, report_skipped};
use crate::cli::{Format, SnapshotCommand, SnapshotVerify};

pub async fn run(args: &SnapshotCommand, output: &Output) -> anyhow::Result<ExitCode> {
    if let Some(SnapshotVerify::Verify { dir }) = &args.verify {
        return verify(dir, output);
    }
    let (Some(source), Some(out)) = (&args.source, &args.out) else {
        anyhow::bail!("snapshot needs --source SRC and --out DIR");
    };
    let source = Endpoint::parse(source).context("source")?;
    let mut scope = args.scope.scope();
    let selection = Selection {
        kinds: args.scope.selection(),
        sync_crds: args.scope.sync_crds,
    };
    let connected = source
        .connect()
        .await
        .with_context(|| format!("source {}", source.name))?;
    served::resolve(&mut scope, &selection, &connected, &[])
        .await
        .with_context(|| format!("source {}", source.name))?;
    let snapshot = source
        .read_source(&scope)
        .await
        .with_context(|| format!("source {}", source.name))?;
    report_skipped(output, &source.name, &snapshot);
    let secret_data = if args.include_secret_data {
        SecretData::Included
    } else {
        SecretData::Redacted
    };
    let now = jiff::Timestamp::now().to_string();
    let manifest = archive::write(&snapshot, out, secret_data, &now)
        .with_context(|| format!("writing snapshot to {}", out.display()))?;
    match output.format {
        Format::Text => output.note(format_args!(
            "wrote {} objects of {} to {} (root hash {})",
            manifest.objects.len(),
            source.name,
            out.display(),
            manifest.root_hash
        )),
        Format::Json => println!(
            "{}",
            json!({"out": out, "source": manifest.source, "objects": manifest.objects.len(),
                "root_hash": manifest.root_hash})
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &std::path::Path, output: &Output) -> anyhow::Result<ExitCode> {
    let (manifest, findings) =
        archive::verify(dir).with_context(|| format!("verifying {}", dir.display()))?;
    match output.format {
        Format::Text => {
            for finding in &findings {
                println!("{}: {finding}", dir.display());
            }
            if findings.is_empty() {
                output.note(format_args!(
                    "{}: intact ({} objects, root hash {})",
                    dir.display(),
                    manifest.objects.len(),
                    manifest.root_hash
                ));
            }
        }
        Format::Json => println!(
            "{}",
            json!({"dir": dir, "intact": findings.is_empty(), "objects": manifest.objects.len(),
                "root_hash": manifest.root_hash, "findings": findings})
        ),
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
