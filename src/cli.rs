//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success: no drift (diff), snapshot intact (snapshot verify)
  1  drift found (diff), snapshot tampered (snapshot verify)
  2  error: bad arguments, unreadable source or replica, invalid YAML";

/// Keeps replica Kubernetes clusters in step with a primary.
///
/// Each pass reads the primary's objects (Deployments, StatefulSets, ConfigMaps, Secrets and
/// PersistentVolumeClaims by default; with --kinds any namespaced kind, custom resources
/// included), normalizes them (volatile fields stripped), keys each by the sha256 of its
/// canonical form, and compares them with every replica. A source or replica is a
/// directory of manifests (or a snapshot archive) or a kubeconfig file (`FILE#CONTEXT`).
#[derive(Debug, Parser)]
#[command(name = "k8s-sync", version, after_long_help = EXIT_CODES)]
#[command(arg_required_else_help = true, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

mod daemon;
mod election;
mod pass;
pub use daemon::{ServeArgs, ServerArgs, WatchArgs};
pub use election::ElectionArgs;
pub use pass::{PassArgs, ScopeArgs};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show how each replica differs from the primary, without changing anything.
    ///
    /// Prints a summary line per replica (in sync, create, update, prune, conflict counts), then
    /// each drifted object with a unified diff of its normalized YAML. Secret values are never
    /// shown: only which keys were added, removed or changed.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync diff --primary fixtures/snapshots/primary --replica fixtures/snapshots/replica\n",
        "  k8s-sync diff --primary prod.kubeconfig --replica-dir replicas/ -o json\n\n",
        "Exit codes:\n  0  every replica is in sync\n  1  drift found\n  2  error"))]
    Diff(DiffArgs),
    /// Write a normalized snapshot of a source to a directory, or verify one.
    ///
    /// Writes one YAML file per object (DIR/<namespace>/<resource>/<name>.yaml, the resource
    /// as `plural.group` beyond the core group; CRDs under DIR/_cluster/) and a manifest with
    /// each object's change key, each file's sha256 and a root hash over them. Secret
    /// values are redacted unless --include-secret-data is given. A snapshot directory can be
    /// used as a --primary or --replica later.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync snapshot --source fixtures/snapshots/primary --out audit/2026-11-29\n",
        "  k8s-sync snapshot verify audit/2026-11-29\n\n",
        "Exit codes:\n  0  written, or intact\n  1  verify: files changed, added or removed\n  2  error"))]
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Snapshot(SnapshotCommand),
    /// Sync every replica with the primary once, applying only the objects that drifted.
    ///
    /// Per replica: creates missing namespaces, then server-side applies (field manager
    /// k8s-sync, forced) ConfigMaps, Secrets and PVCs, then workloads; prunes objects k8s-sync
    /// created that are gone from the primary. Every write is retried with backoff and recorded
    /// as a job in the database. One replica failing never stops the others.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync apply --primary target/testenv/primary.kubeconfig --replica-dir target/testenv/replicas\n",
        "  k8s-sync apply --primary prod.kubeconfig#admin --replica dr=dr.kubeconfig --dry-run\n",
        "  k8s-sync apply --primary prod.kubeconfig --replica dr.kubeconfig --sync-namespaces shop --kinds all --sync-crds\n",
        "  k8s-sync --primary prod.kubeconfig --replica-dir replicas/ --sync-once   (the original form)\n\n",
        "Exit codes:\n  0  every change applied\n",
        "  1  some objects failed, were left as conflicts, or prunes were held over --max-prune\n",
        "  2  error before applying (bad arguments, unreadable primary, job database)"))]
    Apply(ApplyArgs),
    /// Keep replicas in step continuously: a full pass, then watch events, with resyncs.
    ///
    /// Lists and watches the primary's synced kinds and namespaces into one store, and the
    /// replicas' managed objects. Once every kind is listed in full, a full pass (as apply)
    /// plans every replica against the store; then each change is applied to every replica
    /// within moments, and a hand edit on a replica is reverted. A full pass runs again every
    /// --resync-interval. While the primary does not answer (or a kind is not listed in full
    /// since), nothing is pruned or reverted anywhere: the work waits, /readyz says why, and
    /// one full pass catches up when it is back. A replica that does not answer waits alone.
    /// Serves the HTTP API and /metrics on --listen. SIGINT or SIGTERM stops taking events,
    /// lets writes in flight finish (--shutdown-timeout), records what was left as pending jobs
    /// and exits 0; a second signal exits at once. With --leader-elect, copies share a Lease on
    /// the primary and only its holder writes (see "Leader election" below).
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync watch --primary target/testenv/primary.kubeconfig --replica-dir target/testenv/replicas\n",
        "  k8s-sync --primary prod.kubeconfig --replica-dir replicas/   (the original form)\n",
        "  k8s-sync watch --primary in-cluster --replica-dir /etc/k8s-sync/replicas --leader-elect\n\n",
        "Exit codes:\n  0  stopped by a signal after draining\n",
        "  2  error at start (arguments, kubeconfigs, job database, listen address), or the HTTP\n",
        "     listener failed\n",
        "  130  a second signal while draining"))]
    Watch(Box<WatchArgs>),
    /// Serve the HTTP API and Prometheus metrics over the job database.
    ///
    /// Endpoints: POST /api/login, /api/logout; GET /api/dashboard, /api/status, /api/jobs,
    /// /api/jobs/ID, /api/users; POST /api/users; DELETE /api/users/NAME; GET|POST /retry;
    /// GET /metrics, /healthz, /readyz. Every /api route but login needs a bearer token. With
    /// --primary and replicas, /api/status reports them and /retry can re-run failed jobs.
    /// Runs until SIGINT or SIGTERM, then finishes requests in flight and exits 0.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  printf '%s\\n' \"$ADMIN_PASSWORD\" | k8s-sync users add admin --password-stdin\n",
        "  k8s-sync serve --listen 127.0.0.1:8080 --primary prod.kubeconfig --replica-dir replicas/\n\n",
        "Exit codes:\n  0  stopped by a signal\n",
        "  2  error at start (arguments, job database, listen address), or the HTTP listener failed"))]
    Serve(ServeArgs),
    /// Manage the users of the HTTP API (stored with bcrypt hashes in the job database).
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  printf '%s\\n' \"$PASSWORD\" | k8s-sync users add ada --password-stdin\n",
        "  k8s-sync users list"))]
    Users(UsersCommand),
    /// List the recorded jobs, or re-run one.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync jobs list --status failed\n",
        "  k8s-sync jobs retry 42 --primary prod.kubeconfig --replica-dir replicas/"))]
    Jobs(JobsCommand),
    /// Make the kubeconfig k8s-sync uses for a replica: a token for its ServiceAccount there
    /// (deploy/replica), minted with the TokenRequest API.
    ///
    /// Run with the replica's admin kubeconfig; writes a kubeconfig with the same server and
    /// CA and the ServiceAccount's token (mode 0600, replaced atomically), ready to store in
    /// the Secret mounted as --replica-dir. The token expires after --duration (the server may
    /// cut it shorter) and dies with the ServiceAccount; mint the next one before then.
    #[command(after_long_help = concat!(
        "Examples:\n",
        "  k8s-sync replica-credentials --kubeconfig dr-admin.kubeconfig --out replicas/dr\n",
        "  kubectl -n k8s-sync create secret generic k8s-sync-replicas --from-file=replicas/ \\\n",
        "    --dry-run=client -o yaml | kubectl apply -f -\n\n",
        "Exit codes:\n  0  written\n  2  error (kubeconfig, the server refused the TokenRequest)"))]
    ReplicaCredentials(ReplicaCredentialsArgs),
}

#[derive(Debug, Args)]
pub struct ReplicaCredentialsArgs {
    /// The replica's kubeconfig with rights to request tokens (FILE or FILE#CONTEXT).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: String,
    /// The ServiceAccount, NAMESPACE/NAME.
    #[arg(
        long,
        value_name = "NS/NAME",
        default_value = "k8s-sync/k8s-sync-replica"
    )]
    pub service_account: String,
    /// How long the token lives.
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = parse_duration)]
    pub duration: std::time::Duration,
    /// Where to write the kubeconfig; its name (without extension) names the replica.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Color the output: auto (when stdout is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print only summaries and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: in-sync objects, skipped objects.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// The job database, read (never written) for the prunes held or delayed so far; a
    /// database that does not exist counts as empty.
    #[arg(
        long = "db",
        value_name = "PATH",
        default_value = "k8s-sync.db",
        env = "K8S_SYNC_DB"
    )]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Also write the primary's snapshot to DIR/<UTC timestamp>/, when it differs from the
    /// newest snapshot already there (Secret values redacted).
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Prune past --max-prune in this run, the prunes held so far included.
    #[arg(long)]
    pub force_prune: bool,
}

/// How changes are applied.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Requests in flight per replica (BENCHMARKS.md, "Scale": more are faster for a large
    /// fresh apply, up to 32 in flight per server).
    #[arg(long, value_name = "N", default_value_t = k8s_sync::apply::DEFAULT_WORKERS, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_count: u16,
    /// Send server-side dry-run requests: the servers validate every change, nothing is
    /// changed, no job is recorded.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete and re-create workloads whose immutable fields (selector, StatefulSet spec)
    /// changed. PersistentVolumeClaims are never deleted.
    #[arg(long)]
    pub recreate: bool,
    /// Attempts per write (the first included) for 429, 5xx and connection errors.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The job database, for every command that keeps or reads jobs and users.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The job database (SQLite).
    #[arg(
        long = "db",
        value_name = "PATH",
        default_value = "k8s-sync.db",
        env = "K8S_SYNC_DB",
        global = true
    )]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct UsersCommand {
    #[command(subcommand)]
    pub action: UsersAction,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Add a user; the password (at least 12 characters) is read from standard input.
    #[command(
        after_long_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | k8s-sync users add ada --password-stdin"
    )]
    Add {
        /// The login name.
        name: String,
        /// Read the password from standard input (the only way: never from the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// `admin` (users, retries, prune releases, the audit trail) or `viewer` (the
        /// dashboard, the status and the jobs). Default admin: this is how the first user is
        /// made.
        #[arg(long, value_name = "ROLE", default_value = "admin", value_parser = parse_role)]
        role: k8s_sync::store::Role,
    },
    /// End every session of a user: their tokens stop working at once.
    #[command(after_long_help = "Example:\n  k8s-sync users revoke ada")]
    Revoke {
        /// The login name.
        name: String,
    },
    /// List users.
    #[command(after_long_help = "Example:\n  k8s-sync users list -o json")]
    List,
    /// Delete a user (not the last admin).
    #[command(after_long_help = "Example:\n  k8s-sync users delete ada")]
    Delete {
        /// The login name.
        name: String,
    },
    /// Change a user's password (read from standard input); their sessions end.
    #[command(
        after_long_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | k8s-sync users passwd ada --password-stdin"
    )]
    Passwd {
        /// The login name.
        name: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// Parses a role: `admin` or `viewer`.
fn parse_role(text: &str) -> Result<k8s_sync::store::Role, String> {
    k8s_sync::store::Role::parse(text)
        .ok_or_else(|| format!("{text:?} is not a role: admin or viewer"))
}

/// Parses durations such as `30s`, `5m`, `12h`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 30s, 5m or 12h: {e}"))?;
    std::time::Duration::try_from(duration).map_err(|_| format!("{text:?} is negative"))
}

#[derive(Debug, Args)]
pub struct JobsCommand {
    #[command(subcommand)]
    pub action: JobsAction,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// List jobs, newest first.
    #[command(after_long_help = "Example:\n  k8s-sync jobs list --status failed -o json")]
    List {
        /// Only jobs in this state: pending, running, succeeded, failed, held (prunes over
        /// --max-prune), delayed (prunes within --prune-delay), cancelled.
        #[arg(long, value_parser = ["pending", "running", "succeeded", "failed", "held", "delayed", "cancelled"])]
        status: Option<String>,
        /// Only jobs of this replica.
        #[arg(long)]
        replica: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-run one job now: re-reads the object from the primary and the replica and applies
    /// what is needed. Exit 0 when the job succeeded, 1 when it failed again.
    #[command(
        after_long_help = "Example:\n  k8s-sync jobs retry 42 --primary prod.kubeconfig --replica-dir replicas/"
    )]
    Retry {
        /// The job's id, as `jobs list` shows it.
        id: i64,
        #[command(flatten)]
        pass: PassArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Release the prunes held on one replica now: each object still gone from the primary is
    /// pruned, past --max-prune. Recorded in the job database. The limit stays in force for
    /// later prunes. Exit 0 when every released prune succeeded, 1 otherwise.
    #[command(
        after_long_help = "Example:\n  k8s-sync jobs release dr --primary prod.kubeconfig --replica dr=dr.kubeconfig"
    )]
    Release {
        /// The replica whose held prunes to release, as `jobs list` names it.
        replica_name: String,
        #[command(flatten)]
        pass: PassArgs,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Debug, Args)]
pub struct SnapshotCommand {
    #[command(subcommand)]
    pub verify: Option<SnapshotVerify>,
    /// The source to snapshot: a directory of manifests or a kubeconfig (FILE#CONTEXT).
    #[arg(long, value_name = "SRC", required = true)]
    pub source: Option<String>,
    /// The directory to write; it must not exist or be empty.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Write Secret values in clear. Default: redacted.
    #[arg(long)]
    pub include_secret_data: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotVerify {
    /// Check a snapshot directory against its manifest: every file present, unchanged, and
    /// no file added. Exit 0 intact, 1 tampered (each finding named), 2 error.
    #[command(after_long_help = "Example:\n  k8s-sync snapshot verify audit/2026-11-29")]
    Verify {
        /// The snapshot directory.
        dir: PathBuf,
    },
}

/// The original command line had no subcommand: `k8s-sync --primary P --replica-dir D
/// [--sync-once]`. `--sync-once` means `apply`; without it, `watch`.
pub fn seed_form(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let is_seed = first.starts_with("--")
        && !matches!(
            first,
            "--help" | "--version" | "--color" | "--output" | "--quiet" | "--verbose"
        )
        && !first.starts_with("--color=")
        && !first.starts_with("--output=");
    if !is_seed {
        return args;
    }
    let once = args.iter().any(|a| a == "--sync-once");
    let mut rewritten: Vec<_> = args.into_iter().filter(|a| a != "--sync-once").collect();
    rewritten.insert(1, if once { "apply" } else { "watch" }.into());
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_seed_form_means_apply() {
        let args = |list: &[&str]| {
            list.iter()
                .map(std::ffi::OsString::from)
                .collect::<Vec<_>>()
        };
        let seed = args(&[
            "k8s-sync",
            "--primary",
            "p",
            "--replica-dir",
            "d",
            "--sync-once",
        ]);
        assert_eq!(
            seed_form(seed),
            args(&["k8s-sync", "apply", "--primary", "p", "--replica-dir", "d"])
        );
        assert_eq!(
            seed_form(args(&["k8s-sync", "--primary", "p", "--replica-dir", "d"])),
            args(&["k8s-sync", "watch", "--primary", "p", "--replica-dir", "d"])
        );
        let normal = args(&["k8s-sync", "diff", "--primary", "p"]);
        assert_eq!(seed_form(normal.clone()), normal);
        let help = args(&["k8s-sync", "--help"]);
        assert_eq!(seed_form(help.clone()), help);
    }

    #[test]
    fn every_command_has_an_example() {
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Example"),
                "{} --help has no example",
                sub.get_name()
            );
        }
    }
}
