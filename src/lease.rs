//! Leader election on a `coordination.k8s.io/v1` Lease of the primary: of the copies of
//! `watch` that share a Lease, only the holder writes to replicas and records jobs.
//!
//! The protocol is client-go's: a candidate takes the Lease when it is free or when its
//! record has not changed for a lease duration *as this process observed it* (so clocks of
//! different nodes never have to agree); the holder renews it every retry period, and one
//! that has not renewed for the renew deadline stops writing at once, before any other copy
//! may take the Lease (renew deadline < lease duration). The holder's writes are fenced at the
//! lowest layer ([`Leadership::fence`]): a request is refused once the deadline has passed,
//! whatever pass it belongs to.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::endpoint::cluster::Error as ClusterError;

/// The label the leader puts on its own Pod, for the Service to select.
pub const LEADER_LABEL: &str = "k8s-sync.io/leader";

/// How a copy takes part in the election.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace on the primary.
    pub namespace: String,
    /// This copy's identity in the Lease (`holderIdentity`).
    pub identity: String,
    /// How long a Lease not renewed stays taken (controller-runtime: 15 s).
    pub duration: Duration,
    /// How long the holder keeps writing without a successful renewal (controller-runtime:
    /// 10 s). Shorter than `duration`, so the holder stops before another copy may start.
    pub renew_deadline: Duration,
    /// Time between attempts to take or renew the Lease (controller-runtime: 2 s).
    pub retry_period: Duration,
    /// This copy's Pod (its name), which the leader labels with [`LEADER_LABEL`].
    pub pod: Option<String>,
}

/// Which copy leads, as this copy knows it.
pub struct Leadership {
    options: Option<LeaseOptions>,
    state: Mutex<Held>,
    changed: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Held {
    /// When the last successful take or renewal was sent, while this copy holds the Lease.
    renewed: Option<Instant>,
    /// The holder the Lease names, as last read.
    holder: Option<String>,
    /// The Lease's record as last read, and when it was first seen so.
    observed: Option<(String, Instant)>,
}

impl Leadership {
    /// No election: this copy always leads (one copy, or `--leader-elect` not given).
    pub fn sole() -> Arc<Self> {
        Arc::new(Leadership {
            options: None,
            state: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(true),
        })
    }

    /// An election with `options`; this copy does not lead until [`Leadership::run`] takes
    /// the Lease.
    pub fn elect(options: LeaseOptions) -> Arc<Self> {
        Arc::new(Leadership {
            options: Some(options),
            state: Mutex::default(),
            changed: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Whether this copy may write now: it holds the Lease and renewed it within the renew
    /// deadline. Time alone ends it; no request has to fail first.
    pub fn leading(&self) -> bool {
        let Some(options) = &self.options else {
            return true;
        };
        let held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        held.renewed
            .is_some_and(|at| at.elapsed() < options.renew_deadline)
    }

    /// Why this copy may not write now, for refusals and `/readyz`.
    pub fn refusal(&self) -> Option<String> {
        if self.leading() {
            return None;
        }
        Some(match self.holder() {
            Some(holder) if Some(holder.as_str()) == self.identity() => {
                "this copy did not renew its lease within the renew deadline".to_string()
            }
            Some(holder) => format!("this copy does not lead: {holder} does"),
            None => "this copy does not lead: no copy holds the lease".to_string(),
        })
    }

    /// A write fence for clusters: refuses while this copy does not lead.
    pub fn fence(self: &Arc<Self>) -> crate::endpoint::Fence {
        let leadership = self.clone();
        Arc::new(move || match leadership.refusal() {
            None => Ok(()),
            Some(reason) => Err(reason),
        })
    }

    /// The identity the Lease names as its holder (this copy's when it leads).
    pub fn holder(&self) -> Option<String> {
        self.options.as_ref()?;
        let held = self.state.lock().unwrap_or_else(|e| e.into_inner());
        held.holder.clone()
    }

    /// This copy's identity in the election, if there is one.
    pub fn identity(&self) -> Option<&str> {
        self.options.as_ref().map(|o| o.identity.as_str())
    }

    /// The Lease, as `namespace/name`, if there is an election.
    pub fn lease(&self) -> Option<String> {
        self.options
            .as_ref()
            .map(|o| format!("{}/{}", o.namespace, o.name))
    }

    /// Changes of [`Leadership::leading`] as the election loop sees them (a lapsed deadline
    /// is seen within one retry period).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changed.subscribe()
    }

    /// Takes part in the election until `stop`, then gives the Lease up if this copy holds it
    /// (the next copy takes it within one retry period instead of a lease duration).
    pub async fn run(self: Arc<Self>, client: kube::Client, stop: CancellationToken) {
        let Some(options) = self.options.clone() else {
            return;
        };
        let leases: Api<Lease> = Api::namespaced(client.clone(), &options.namespace);
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(client, &options.namespace);
        let lease = format!("{}/{}", options.namespace, options.name);
        loop {
            let attempt = Instant::now();
            // A request that hangs (a partition) must not hold the loop past the deadline.
            let round = self.try_acquire_or_renew(&leases, &options);
            let answered = tokio::time::timeout(options.renew_deadline, round).await;
            match answered.unwrap_or(Ok(false)) {
                Ok(true) => {
                    let mut held = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    held.renewed = Some(attempt);
                    held.holder = Some(options.identity.clone());
                }
                Ok(false) => {
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).renewed = None;
                }
                Err(error) => warn!(%error, "cannot take or renew the lease"),
            }
            self.publish(&pods, &options, &lease).await;
            tokio::select! {
                () = tokio::time::sleep(options.retry_period) => {}
                () = stop.cancelled() => break,
            }
        }
        let held = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .renewed
            .take();
        if held.is_some() {
            self.publish(&pods, &options, &lease).await;
            match self.release(&leases, &options).await {
                Ok(()) => info!(%lease, "lease given up"),
                Err(error) => warn!(%error, "cannot give the lease up; it expires by itself"),
            }
        }
    }

    /// Tells subscribers and the leader label about a change of [`Leadership::leading`].
    async fn publish(
        &self,
        pods: &Api<k8s_openapi::api::core::v1::Pod>,
        options: &LeaseOptions,
        lease: &str,
    ) {
        let leading = self.leading();
        if *self.changed.borrow() == leading {
            return;
        }
        if leading {
            info!(%lease, identity = %options.identity, "leading: this copy writes to the replicas");
        } else {
            warn!(%lease, holder = ?self.holder(), "not leading: this copy writes nothing");
        }
        self.changed.send_replace(leading);
        if let Some(pod) = &options.pod
            && let Err(error) = label_leader(pods, pod, leading).await
        {
            let error = ClusterError::from_kube(format!("label pod {pod}"), error);
            warn!(%error, %pod, "cannot update the leader label");
        }
    }

    /// One round of client-go's protocol. Returns whether this copy holds the Lease now.
    async fn try_acquire_or_renew(
        &self,
        leases: &Api<Lease>,
        options: &LeaseOptions,
    ) -> Result<bool, ClusterError> {
        let api_error = |source| lease_error(options, source);
        let now = MicroTime(jiff::Timestamp::now());
        let seconds = i32::try_from(options.duration.as_secs()).unwrap_or(i32::MAX);
        let existing = leases.get_opt(&options.name).await.map_err(api_error)?;
        let Some(mut current) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(options.name.clone()),
                    namespace: Some(options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(options.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(api_error(error)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = serde_json::to_string(&spec).unwrap_or_default();
        let observed_at = {
            let mut held = self.state.lock().unwrap_or_else(|e| e.into_inner());
            held.holder = holder.clone();
            match &held.observed {
                Some((seen, at)) if *seen == record => *at,
                _ => {
                    let at = Instant::now();
                    held.observed = Some((record, at));
                    at
                }
            }
        };
        let mine = holder.as_deref() == Some(options.identity.as_str());
        let their_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(options.duration, Duration::from_secs);
        if holder.is_some() && !mine && observed_at.elapsed() < their_duration {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        current.spec = Some(LeaseSpec {
            holder_identity: Some(options.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if mine {
                spec.acquire_time
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
            ..spec
        });
        // A replace carries the resourceVersion read above: of two copies that both saw the
        // Lease free, the server lets one through and answers the other 409.
        match leases
            .replace(&options.name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => {
                let mut held = self.state.lock().unwrap_or_else(|e| e.into_inner());
                held.holder = Some(options.identity.clone());
                held.observed = None;
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(api_error(error)),
        }
    }

    /// Marks the Lease free, as client-go's `ReleaseOnCancel` does.
    async fn release(
        &self,
        leases: &Api<Lease>,
        options: &LeaseOptions,
    ) -> Result<(), ClusterError> {
        let api_error = |source| lease_error(options, source);
        let Some(mut current) = leases.get_opt(&options.name).await.map_err(api_error)? else {
            return Ok(());
        };
        let spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(options.identity.as_str()) {
            return Ok(());
        }
        current.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..spec
        });
        leases
            .replace(&options.name, &PostParams::default(), &current)
            .await
            .map(drop)
            .map_err(api_error)
    }
}

/// A request about the Lease that failed, on one line.
fn lease_error(options: &LeaseOptions, source: kube::Error) -> ClusterError {
    let what = format!("lease {}/{}", options.namespace, options.name);
    ClusterError::from_kube(what, source)
}

/// Puts [`LEADER_LABEL`] on this copy's Pod when it leads (and takes it off the Pods of
/// copies that led before and could not take it off themselves), or off it when it stops.
async fn label_leader(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    pod: &str,
    leading: bool,
) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    if leading {
        let selector = ListParams::default().labels(&format!("{LEADER_LABEL}=true"));
        for other in pods.list_metadata(&selector).await? {
            let Some(name) = other.metadata.name.as_deref() else {
                continue;
            };
            if name != pod {
                let off = json!({"metadata": {"labels": {LEADER_LABEL: null}}});
                pods.patch_metadata(name, &params, &Patch::Merge(&off))
                    .await?;
            }
        }
    }
    let value = if leading { json!("true") } else { json!(null) };
    let patch = json!({"metadata": {"labels": {LEADER_LABEL: value}}});
    pods.patch_metadata(pod, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LeaseOptions {
        LeaseOptions {
            name: "k8s-sync".into(),
            namespace: "k8s-sync".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_millis(50),
            retry_period: Duration::from_secs(2),
            pod: None,
        }
    }

    #[test]
    fn without_an_election_this_copy_always_leads() {
        let sole = Leadership::sole();
        assert!(sole.leading());
        assert!(sole.refusal().is_none());
        assert!((sole.fence())().is_ok());
    }

    #[test]
    fn a_holder_stops_leading_when_the_renew_deadline_passes_without_a_renewal() {
        let elected = Leadership::elect(options());
        assert!(
            !elected.leading(),
            "nothing is taken before the first round"
        );
        {
            let mut held = elected.state.lock().unwrap();
            held.renewed = Some(Instant::now());
            held.holder = Some("a".into());
        }
        assert!(elected.leading());
        let fence = elected.fence();
        assert!(fence().is_ok());
        let until = Instant::now() + Duration::from_secs(5);
        while elected.leading() {
            assert!(
                Instant::now() < until,
                "the deadline never ended leadership"
            );
            std::thread::yield_now();
        }
        assert_eq!(
            fence().unwrap_err(),
            "this copy did not renew its lease within the renew deadline"
        );
        elected.state.lock().unwrap().holder = Some("b".into());
        assert_eq!(fence().unwrap_err(), "this copy does not lead: b does");
    }
}
