//! What the API knows of the clusters: `/api/status` (each endpoint reachable or not, its server
//! version, drift) and `/retry` (re-running one failed job in this process).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::core::Collector;
use serde::Serialize;
use serde_json::{Value, json};

use super::Api;
use super::http::{Failure, Reply};
use super::routes::job_json;
use crate::apply::{Silent, Sinks};
use crate::endpoint::{Connected, Endpoint, Location};
use crate::kinds::KINDS;
use crate::pass::{self, PassOptions};
use crate::snapshot::ObjectRef;
use crate::store::Status;

/// How long one endpoint may take to answer `/api/status`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long probe results are reused.
pub const PROBE_CACHE: Duration = Duration::from_secs(5);
/// How long a `/retry` may take in all.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(120);

/// The primary and replicas this process serves, for `/api/status` and `/retry`.
#[derive(Debug, Clone)]
pub struct PassContext {
    /// The source.
    pub primary: Endpoint,
    /// The replicas, names unique.
    pub replicas: Vec<Endpoint>,
    /// How passes run (scope, adoption, pruning, retries).
    pub options: PassOptions,
    /// The name written into the source annotation (default: the primary snapshot's).
    pub source_name: Option<String>,
}

/// Whether an endpoint answered, and what.
#[derive(Debug, Clone, Serialize)]
struct Probe {
    reachable: bool,
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Probe results, reused for [`PROBE_CACHE`].
#[derive(Default)]
pub(crate) struct ProbeCache(Mutex<Option<(Instant, Vec<Probe>)>>);

async fn probe(endpoint: &Endpoint) -> Probe {
    let unreachable = |error: String| Probe {
        reachable: false,
        version: None,
        error: Some(error),
    };
    let attempt = async {
        match endpoint.connect().await {
            Err(e) => unreachable(e.to_string()),
            Ok(Connected::Directory(dir)) => Probe {
                reachable: dir.is_dir(),
                version: None,
                error: (!dir.is_dir()).then(|| format!("{}: not a directory", dir.display())),
            },
            Ok(Connected::Cluster(cluster)) => match cluster.version().await {
                Ok(version) => Probe {
                    reachable: true,
                    version: Some(version),
                    error: None,
                },
                Err(e) => unreachable(e.to_string()),
            },
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| unreachable(format!("no answer within {PROBE_TIMEOUT:?}")))
}

fn kind_of(endpoint: &Endpoint) -> &'static str {
    match endpoint.location {
        Location::Directory(_) => "directory",
        Location::Kubeconfig { .. } => "cluster",
    }
}

/// The value of a per-replica gauge, `None` when no pass of this process set it.
fn gauge_value(gauge: &prometheus::IntGaugeVec, replica: &str) -> Option<i64> {
    gauge.collect().iter().find_map(|family| {
        family.get_metric().iter().find_map(|metric| {
            let labelled = metric
                .get_label()
                .iter()
                .any(|l| l.name() == "replica" && l.value() == replica);
            labelled.then(|| metric.get_gauge().get_value() as i64)
        })
    })
}

/// `GET /api/status`.
pub(crate) fn status(api: &Api) -> Result<Reply, Failure> {
    let Some(context) = &api.pass else {
        return Ok(Reply::json(200, &json!({"primary": null, "replicas": []})));
    };
    let probes = {
        let mut cache = api.probes.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((at, probes)) if at.elapsed() < PROBE_CACHE => probes.clone(),
            _ => {
                let endpoints = std::iter::once(&context.primary).chain(context.replicas.iter());
                let probes = api
                    .runtime
                    .block_on(futures::future::join_all(endpoints.map(probe)));
                *cache = Some((Instant::now(), probes.clone()));
                probes
            }
        }
    };
    let mut probes = probes.into_iter();
    let primary_probe = probes.next().expect("one probe per endpoint");
    let primary = json!({
        "name": context.primary.name,
        "kind": kind_of(&context.primary),
        "reachable": primary_probe.reachable,
        "version": primary_probe.version,
        "error": primary_probe.error,
        "last_pass": api.store.last_pass()?,
    });
    let replicas: Vec<Value> = context
        .replicas
        .iter()
        .zip(probes)
        .map(|(replica, probe)| {
            let last_success = gauge_value(&api.metrics.last_success, &replica.name)
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(|t| t.to_string());
            json!({
                "name": replica.name,
                "kind": kind_of(replica),
                "reachable": probe.reachable,
                "version": probe.version,
                "error": probe.error,
                "drifted": gauge_value(&api.metrics.drifted, &replica.name),
                "last_success": last_success,
            })
        })
        .collect();
    let mut body = json!({"primary": primary, "replicas": replicas});
    if let Some(watchers) = &api.watchers {
        body["watchers"] = watchers();
    }
    Ok(Reply::json(200, &body))
}

/// `GET|POST /retry?jobid=ID[&replica=NAME]`: re-runs a failed job against its replica in
/// this process and answers with the job as it is now.
pub(crate) fn retry(api: &Api, id: i64, replica: Option<&str>) -> Result<Reply, Failure> {
    let Some(job) = api.store.job(id)? else {
        return Err(Failure::new(404, format!("job {id}: no such job")));
    };
    if let Some(replica) = replica.filter(|r| *r != job.replica) {
        return Err(Failure::new(
            409,
            format!(
                "job {id} belongs to replica {:?}, not {replica:?}",
                job.replica
            ),
        ));
    }
    if job.status != Status::Failed {
        return Err(Failure::new(
            409,
            format!(
                "job {id} is {}: only failed jobs are retried",
                job.status.as_str()
            ),
        ));
    }
    let Some(context) = &api.pass else {
        return Err(Failure::new(
            409,
            "this server was started without --primary and replicas: it cannot retry jobs",
        ));
    };
    let Some(endpoint) = context.replicas.iter().find(|r| r.name == job.replica) else {
        return Err(Failure::new(
            409,
            format!(
                "job {id}: replica {:?} is not among this server's replicas",
                job.replica
            ),
        ));
    };
    let Some(kind) = KINDS.iter().find(|k| k.kind == job.kind) else {
        return Err(Failure::new(
            409,
            format!("job {id}: unknown kind {}", job.kind),
        ));
    };
    // Narrow the pass to the job's object: one LIST of its kind in its namespace.
    let mut options = context.options.clone();
    options.scope.kinds = kind.plural.parse().expect("plurals parse");
    options.scope.namespaces = Some([job.namespace.clone()].into());
    options.scope.allow_sensitive_namespaces |=
        crate::scope::is_sensitive_namespace(&job.namespace);
    let only = ObjectRef {
        kind,
        namespace: job.namespace.clone(),
        name: job.name.clone(),
    };
    let sinks = Sinks {
        store: &api.store,
        metrics: &api.metrics,
        progress: &Silent,
    };
    let run = async {
        let mut desired = context
            .primary
            .snapshot(&options.scope)
            .await
            .map_err(|e| {
                Failure::new(
                    502,
                    format!(
                        "primary {}: {}",
                        context.primary.name,
                        crate::error_chain(&e)
                    ),
                )
            })?;
        if let Some(name) = &context.source_name {
            desired.source = name.clone();
        }
        pass::sync_replica(endpoint, &desired, &options, sinks, Some(&only))
            .await
            .map_err(Failure::from)
    };
    let report = api
        .runtime
        // The timer is made inside the runtime: this thread is not one of its threads.
        .block_on(async { tokio::time::timeout(RETRY_TIMEOUT, run).await })
        .map_err(|_| Failure::new(504, format!("job {id}: retry took over {RETRY_TIMEOUT:?}")))??;
    let job = api.store.job(id)?.expect("jobs are never deleted");
    Ok(Reply::json(
        200,
        &json!({"job": job_json(&job), "report": report}),
    ))
}

/// The options of a pass run from the API when the command line gave none: every kind and
/// namespace, adoption and pruning on, default retries.
pub fn default_options() -> PassOptions {
    PassOptions {
        scope: crate::scope::Scope::default(),
        plan: crate::diff::PlanOptions::default(),
        apply: crate::apply::ApplyOptions::default(),
    }
}
