use std::process::ExitCode;

use super::Output;
use crate::cli::UsersCommand;

pub fn run(args: UsersCommand, output: &Output) -> anyhow::Result<ExitCode> {
    let _ = (args, output);
    anyhow::bail!("users: not wired yet")
}
