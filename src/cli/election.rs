//! The flags of leader election and sharding.

use clap::Args;

use super::parse_duration;

/// Leader election and sharding, for several copies of `watch`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Leader election")]
pub struct ElectionArgs {
    /// Elect a leader through a Lease on the primary: only the copy that holds it writes to
    /// the replicas and records jobs. Needed as soon as two copies run.
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease's name (with --shard, `-shard-I-of-N` is appended).
    #[arg(long, value_name = "NAME", default_value = "k8s-sync")]
    pub lease_name: String,
    /// The Lease's namespace on the primary. Default: the namespace k8s-sync runs in, else
    /// `k8s-sync`.
    #[arg(long, value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// This copy's identity in the Lease. Default: POD_NAME, else the host name and the
    /// process id.
    #[arg(long, value_name = "ID")]
    pub lease_identity: Option<String>,
    /// How long a Lease not renewed stays taken.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
    /// How long the leader keeps writing without renewing; shorter than --lease-duration.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: std::time::Duration,
    /// Time between attempts to take or renew the Lease; shorter than --renew-deadline.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: std::time::Duration,
    /// This copy's Pod, which the leader labels `k8s-sync.io/leader=true` for the Service
    /// to select (in the Lease's namespace).
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Sync only the I-th of N shards of the replicas (split by a hash of their names), with
    /// a Lease of the shard's own.
    #[arg(long, value_name = "I/N", default_value = "1/1")]
    pub shard: k8s_sync::shard::Shard,
}
