//! What the API knows of the clusters and does with them: `/api/status` (each endpoint
//! reachable or not, its server version, drift), `/retry` (re-running one failed job in this
//! process) and `/api/prunes/release`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::Api;
use super::http::{Failure, Reply};
use crate::apply::{Journal, Silent};
use crate::endpoint::{Connected, Endpoint, Location};
use crate::pass::{self, Focus, PassOptions, RecordedOptions, job_object};
use crate::report::Report;
use crate::snapshot::ObjectRef;
use crate::store::{Job, JobFilter, Status, Store};
use crate::watch::{Refusal, Watch};

/// What runs passes for the API.
#[derive(Clone)]
pub enum Driver {
    /// `serve` with `--primary` and replicas: each operation lists the primary anew.
    Endpoints(Box<PassContext>),
    /// `watch`: operations run against its primary state, on its replicas.
    Watch(Arc<Watch>),
}

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
        Location::Kubeconfig { .. } | Location::InCluster => "cluster",
    }
}

/// `GET /api/status`.
pub(crate) fn status(api: &Api) -> Result<Reply, Failure> {
    let context = match &api.driver {
        None => return Ok(Reply::json(200, &json!({"primary": null, "replicas": []}))),
        Some(Driver::Watch(watch)) => return Ok(Reply::json(200, &watch.status())),
        Some(Driver::Endpoints(context)) => context,
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
    let counts = api.store.counts_by_replica()?;
    let replicas: Vec<Value> = context
        .replicas
        .iter()
        .zip(probes)
        .map(|(replica, probe)| {
            let recorded = counts.get(&replica.name).copied().unwrap_or_default();
            let last_success = api
                .metrics
                .replica_gauge(&api.metrics.last_success, &replica.name)
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(|t| t.to_string());
            json!({
                "name": replica.name,
                "kind": kind_of(replica),
                "reachable": probe.reachable,
                "version": probe.version,
                "error": probe.error,
                "drifted": api.metrics.replica_gauge(&api.metrics.drifted, &replica.name),
                "held": recorded.held,
                "delayed": recorded.delayed,
                "last_success": last_success,
            })
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({"primary": primary, "replicas": replicas}),
    ))
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
    let report = match &api.driver {
        None => {
            return Err(Failure::new(
                409,
                "this server was started without --primary and replicas: it cannot retry jobs",
            ));
        }
        Some(Driver::Watch(watch)) => {
            in_watch(api, &format!("job {id}: retry"), watch.retry(&job))?
        }
        Some(Driver::Endpoints(context)) => {
            let only = object_of(api, context, &job)
                .ok_or_else(|| Failure::new(409, format!("job {id}: unknown kind {}", job.kind)))?;
            let recorded = RecordedOptions::of(&job);
            one_shot(
                api,
                context,
                &job.replica,
                BTreeSet::from([only]),
                recorded,
                false,
            )?
        }
    };
    let job = api.store.job(id)?.expect("jobs are never deleted");
    Ok(Reply::json(
        200,
        &json!({"job": job.shown(), "report": report}),
    ))
}

/// `POST /api/prunes/release?replica=NAME`: prunes the objects whose prunes are held on the
/// replica and are still gone from the primary, past the limit; the release is recorded.
pub(crate) fn release(api: &Api, replica: &str, by: &str) -> Result<Reply, Failure> {
    let report = match &api.driver {
        None => {
            return Err(Failure::new(
                409,
                "this server was started without --primary and replicas: it cannot prune",
            ));
        }
        Some(Driver::Watch(watch)) => in_watch(api, "the release", watch.release(replica, by))?,
        Some(Driver::Endpoints(context)) => {
            let held = held_jobs(&api.store, replica)?;
            let objects: BTreeSet<ObjectRef> = held
                .iter()
                .filter_map(|job| object_of(api, context, job))
                .collect();
            if objects.is_empty() {
                Report {
                    replica: replica.to_string(),
                    ..Report::default()
                }
            } else {
                api.store.record_release(replica, by, objects.len())?;
                let recorded = held.iter().find_map(RecordedOptions::of);
                one_shot(api, context, replica, objects, recorded, true)?
            }
        }
    };
    Ok(Reply::json(
        200,
        &json!({"replica": replica, "report": report}),
    ))
}

fn held_jobs(store: &Store, replica: &str) -> Result<Vec<Job>, Failure> {
    Ok(store.jobs(&JobFilter {
        status: Some(Status::Held),
        replica: Some(replica.to_string()),
        limit: None,
    })?)
}

/// The object a job is about. This server resolves no `--kinds` of its own: a kind beyond the
/// table (a custom resource) is known once the primary's discovery has been registered.
fn object_of(api: &Api, context: &PassContext, job: &Job) -> Option<ObjectRef> {
    job_object(job).or_else(|| {
        let served = api.runtime.block_on(async {
            match context.primary.connect().await.ok()? {
                crate::endpoint::Connected::Cluster(cluster) => cluster.discover().await.ok(),
                crate::endpoint::Connected::Directory(_) => None,
            }
        })?;
        for resource in &served {
            crate::kinds::register(resource);
        }
        job_object(job)
    })
}

/// Runs an operation of the watch on the runtime, within [`RETRY_TIMEOUT`].
fn in_watch(
    api: &Api,
    what: &str,
    operation: impl std::future::Future<Output = Result<Report, Refusal>>,
) -> Result<Report, Failure> {
    api.runtime
        // The timer is made inside the runtime: this thread is not one of its threads.
        .block_on(async { tokio::time::timeout(RETRY_TIMEOUT, operation).await })
        .map_err(|_| Failure::new(504, format!("{what} took over {RETRY_TIMEOUT:?}")))?
        .map_err(refused)
}

fn refused(refusal: Refusal) -> Failure {
    match refusal {
        Refusal::NotHere(message) => Failure::new(409, message),
        Refusal::NotLeader(reason) => Failure::new(503, reason),
        Refusal::NotAuthoritative(reason) => Failure::new(
            503,
            format!("the primary's state may not drive writes now: {reason}; the work waits"),
        ),
        Refusal::Store(error) => error.into(),
    }
}

/// A one-shot pass of `replica` about `objects`: lists the primary's state of them anew (an
/// authoritative listing) and runs the one path, with a job's recorded options when given.
fn one_shot(
    api: &Api,
    context: &PassContext,
    replica: &str,
    objects: BTreeSet<ObjectRef>,
    recorded: Option<RecordedOptions>,
    force_prune: bool,
) -> Result<Report, Failure> {
    let Some(endpoint) = context.replicas.iter().find(|r| r.name == replica) else {
        return Err(Failure::new(
            409,
            format!("replica {replica:?} is not among this server's replicas"),
        ));
    };
    let mut options = context.options.clone();
    if let Some(recorded) = &recorded {
        options = options.with_recorded(recorded);
    }
    options.prune.force = force_prune;
    // Narrow the pass to the objects: one LIST of each kind in each of their namespaces.
    options.scope = options
        .scope
        .narrowed(objects.iter().map(|r| (r.kind, r.namespace.as_str())));
    let run = async {
        let mut desired = context
            .primary
            .source_snapshot(&options.scope)
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
            desired.aliases.clear();
        }
        if let Some(recorded) = &recorded {
            recorded.name(&mut desired);
        }
        let recorded_json = options.recorded(&desired);
        let journal = Journal {
            store: &api.store,
            metrics: &api.metrics,
            progress: &Silent,
            pass_options: Some(&recorded_json),
        };
        pass::sync_replica(
            endpoint,
            &desired,
            &options,
            journal,
            Focus::Objects(&objects),
        )
        .await
        .map_err(Failure::from)
    };
    api.runtime
        // The timer is made inside the runtime: this thread is not one of its threads.
        .block_on(async { tokio::time::timeout(RETRY_TIMEOUT, run).await })
        .map_err(|_| Failure::new(504, format!("the pass took over {RETRY_TIMEOUT:?}")))?
}

/// The options of a pass run from the API when the job recorded none: every kind and
/// namespace, adoption and pruning on, default retries and prune limits.
pub fn default_options() -> PassOptions {
    PassOptions::default()
}
