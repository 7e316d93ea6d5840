//! `users`: the accounts of the HTTP API, kept with bcrypt hashes in the job database.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use k8s_sync::api::auth;
use k8s_sync::store::UserDeletion;

use super::Output;
use crate::cli::{Format, UsersAction, UsersCommand};

pub fn run(args: UsersCommand, output: &Output) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&args.db)?;
    match args.action {
        UsersAction::Add { name, role, .. } => {
            auth::check_username(&name).map_err(anyhow::Error::msg)?;
            let hash = new_hash()?;
            if !store.add_user(&name, &hash, role)? {
                bail!("user {name} already exists (change its password with `users passwd`)");
            }
            output.note(format_args!("added user {name} ({role})"));
        }
        UsersAction::Revoke { name } => match store.revoke(&name)? {
            Some(ended) => output.note(format_args!("ended {ended} session(s) of {name}")),
            None => bail!("user {name}: no such user"),
        },
        UsersAction::Passwd { name, .. } => {
            if store.password_hash(&name)?.is_none() {
                bail!("user {name}: no such user");
            }
            let hash = new_hash()?;
            if !store.set_password(&name, &hash)? {
                bail!("user {name}: no such user");
            }
            output.note(format_args!(
                "changed the password of {name}; their sessions ended"
            ));
        }
        UsersAction::Delete { name } => match store.delete_user(&name)? {
            UserDeletion::Deleted => output.note(format_args!("deleted user {name}")),
            UserDeletion::NotFound => bail!("user {name}: no such user"),
            UserDeletion::LastAdmin => {
                bail!("user {name} is the last admin: add another admin before deleting it")
            }
        },
        UsersAction::List => {
            let users = store.users()?;
            match output.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&users)?),
                Format::Text => {
                    for user in users {
                        println!("{:<24} {:<8} {}", user.name, user.role, user.created_at);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a password from standard input, checks it and hashes it.
fn new_hash() -> anyhow::Result<String> {
    let password = read_password(std::io::stdin().lock())?;
    auth::check_password(&password).map_err(anyhow::Error::msg)?;
    let cost = auth::bcrypt_cost().map_err(anyhow::Error::msg)?;
    auth::hash_password(&password, cost).context("hashing the password")
}

/// The first line of `input`, without its line ending.
fn read_password(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    if line.is_empty() {
        bail!("no password on standard input (give it as one line)");
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_line_without_its_ending() {
        let read = |text: &str| read_password(text.as_bytes()).ok();
        assert_eq!(read("secret pass 1\n").as_deref(), Some("secret pass 1"));
        assert_eq!(
            read("secret pass 1\r\nmore\n").as_deref(),
            Some("secret pass 1")
        );
        assert_eq!(read("no newline").as_deref(), Some("no newline"));
        assert_eq!(
            read("  spaces kept  \n").as_deref(),
            Some("  spaces kept  ")
        );
        assert_eq!(read("\n"), None);
        assert_eq!(read(""), None);
    }
}
