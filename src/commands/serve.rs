use std::process::ExitCode;

use super::Output;
use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs, output: &Output) -> anyhow::Result<ExitCode> {
    let _ = (args, output);
    anyhow::bail!("serve: not wired yet")
}
