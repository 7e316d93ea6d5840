//! `replica-credentials`: a replica kubeconfig for k8s-sync's ServiceAccount there.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_sync::credentials;

use super::Output;
use crate::cli::ReplicaCredentialsArgs;

pub async fn run(args: &ReplicaCredentialsArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let Some((namespace, name)) = args
        .service_account
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
    else {
        bail!(
            "--service-account {:?}: expected NAMESPACE/NAME",
            args.service_account
        );
    };
    let (path, context) = match args.kubeconfig.rsplit_once('#') {
        Some((path, context)) if !context.is_empty() => (path, Some(context)),
        _ => (args.kubeconfig.as_str(), None),
    };
    let minted = credentials::mint(
        std::path::Path::new(path),
        context,
        namespace,
        name,
        args.duration,
    )
    .await?;
    write_private(&args.out, &minted.kubeconfig)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let expiry = minted.expires.map_or_else(
        || "at a time the server did not say".to_string(),
        |t| format!("at {t}"),
    );
    output.note(format_args!(
        "wrote {}: service account {namespace}/{name}, token expires {expiry}",
        args.out.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` with mode 0600 through a temporary file renamed over it, so that
/// a process re-reading the file never sees half of it.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temporary = dir
        .unwrap_or_else(|| std::path::Path::new("."))
        .join(format!(".{}.partial", file_name.unwrap_or_default()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
