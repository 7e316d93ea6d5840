//! Where watch mode's state and work come from: watchers on the primary (every synced
//! collection, and namespaces) feeding its state, watchers on each replica's objects,
//! and probes that tell whether each cluster answers.
//!
//! A primary watcher that fails starts over with a new listing (after a backoff) rather than
//! resuming where it was: until that listing is done its kind is not authoritative. When the
//! primary answers again after its probe failed, every primary watcher lists again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::primary::Change;
use super::probes;
use super::replica_watchers::{replica_watcher, reread_credentials};
use super::{Collection, Watch, WatcherState, Work};
use crate::endpoint::ServedObject;
use crate::kinds::Kind;
use crate::retry::RetryPolicy;
use crate::scope::Scope;
use crate::snapshot::{self, Entry, ObjectRef, Prepared, RawObject};

/// Watch calls the server ends after this many seconds, so that a quiet stream closes
/// cleanly and is resumed before the client's 60 s read timeout would break it.
const WATCH_TIMEOUT: u32 = 45;

/// The collections a scope watches on the primary: per kind, cluster-wide or one per
/// namespace of `--sync-namespaces`.
pub(super) fn collections(scope: &Scope) -> Vec<Collection> {
    let mut collections = Vec::new();
    for kind in scope.listed_kinds() {
        match &scope.namespaces {
            Some(_) if !kind.namespaced => collections.push(Collection {
                kind,
                namespace: None,
            }),
            None => collections.push(Collection {
                kind,
                namespace: None,
            }),
            Some(namespaces) => collections.extend(namespaces.iter().map(|ns| Collection {
                kind,
                namespace: Some(ns.clone()),
            })),
        }
    }
    collections
}

/// Starts every watcher and probe.
pub(super) fn spawn(watch: &Arc<Watch>, tasks: &mut JoinSet<()>, stop: &CancellationToken) {
    tasks.spawn(probes::primary_probe(watch.clone(), stop.clone()));
    let scope = watch.pass().scope.clone();
    let kinds: Vec<_> = scope.listed_kinds().collect();
    spawn_watchers(
        watch,
        &kinds,
        &scope,
        &mut |task| drop(tasks.spawn(task)),
        stop,
    );
    watch.mark("primary/namespaces", WatcherState::Starting);
    tasks.spawn(namespace_watcher(watch.clone(), stop.clone()));
    for replica in &watch.replicas {
        tasks.spawn(probes::replica_probe(
            watch.clone(),
            replica.clone(),
            stop.clone(),
        ));
        tasks.spawn(reread_credentials(replica.clone(), stop.clone()));
    }
}

/// A watcher task, for whoever runs it.
pub(super) type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts the primary's and every replica's watchers of `kinds` in `scope`, handing each
/// task to `spawn`.
pub(super) fn spawn_watchers(
    watch: &Arc<Watch>,
    kinds: &[&'static Kind],
    scope: &Scope,
    spawn: &mut dyn FnMut(Task),
    stop: &CancellationToken,
) {
    // One token per kind, so that a kind the primary stops serving can be stopped alone.
    let stops: Vec<(&'static Kind, CancellationToken)> =
        kinds.iter().map(|&k| (k, stop.child_token())).collect();
    let stop_of = |kind: &Kind| {
        stops
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t.clone())
            .expect("a token per kind")
    };
    for collection in collections(scope)
        .into_iter()
        .filter(|c| kinds.contains(&c.kind))
    {
        let name = watcher_name("primary", &collection);
        watch.mark(&name, WatcherState::Starting);
        let stop = stop_of(collection.kind);
        spawn(Box::pin(primary_watcher(
            watch.clone(),
            collection,
            name,
            stop,
        )));
    }
    for replica in &watch.replicas {
        for &kind in kinds {
            for (index, _) in apis(&replica.cluster.client(), kind, scope)
                .iter()
                .enumerate()
            {
                let name = format!("{}/{}", replica.name, kind.short_name());
                watch.mark(&name, WatcherState::Starting);
                spawn(Box::pin(replica_watcher(
                    watch.clone(),
                    replica.clone(),
                    kind,
                    index,
                    name,
                    stop_of(kind),
                )));
            }
        }
    }
    watch
        .kind_stops
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(stops);
}

fn watcher_name(cluster: &str, collection: &Collection) -> String {
    match &collection.namespace {
        Some(ns) => format!("{cluster}/{}/{ns}", collection.kind.short_name()),
        None => format!("{cluster}/{}", collection.kind.short_name()),
    }
}

fn resource(kind: &Kind) -> ApiResource {
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, kind.plural)
}

/// One API per watched collection: cluster-wide, or one per namespace of `--sync-namespaces`.
pub(super) fn apis(
    client: &kube::Client,
    kind: &'static Kind,
    scope: &Scope,
) -> Vec<(Option<String>, Api<ServedObject>)> {
    let resource = resource(kind);
    match &scope.namespaces {
        Some(_) if !kind.namespaced => vec![(None, Api::all_with(client.clone(), &resource))],
        None => vec![(None, Api::all_with(client.clone(), &resource))],
        Some(namespaces) => namespaces
            .iter()
            .map(|ns| {
                (
                    Some(ns.clone()),
                    Api::namespaced_with(client.clone(), ns, &resource),
                )
            })
            .collect(),
    }
}

pub(super) fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT)
}

/// An object a watcher brought, with the kind its list items do not carry.
pub(super) fn to_raw(kind: &Kind, object: ServedObject, origin: &str) -> RawObject {
    let mut value = object.into_value();
    value["apiVersion"] = kind.api_version().into();
    value["kind"] = kind.kind.into();
    RawObject {
        value,
        origin: origin.to_string(),
        archived: None,
    }
}

pub(super) fn reference_of(kind: &'static Kind, object: &ServedObject) -> Option<ObjectRef> {
    Some(ObjectRef {
        kind,
        namespace: match kind.namespaced {
            true => object.namespace().unwrap_or("default").to_string(),
            false => String::new(),
        },
        name: object.name()?.to_string(),
    })
}

impl Watch {
    /// Normalizes and keys an object of the primary; `None` when it is out of scope or never
    /// synced.
    fn primary_entry(
        &self,
        kind: &'static Kind,
        object: ServedObject,
    ) -> Option<(ObjectRef, Entry)> {
        let raw = to_raw(kind, object, "primary");
        let scope = &self.pass().scope;
        match snapshot::prepare(raw, scope) {
            Ok(Prepared::Object(reference, mut entry)) => {
                entry.shape_for_replicas(reference.kind, scope);
                Some((reference, *entry))
            }
            Ok(Prepared::Skipped { .. }) => None,
            Err(error) => {
                warn!(%error, "skipping an object the primary sent");
                None
            }
        }
    }

    fn count_event(&self, kind: &str, event: &str) {
        self.metrics
            .watch_events
            .with_label_values(&[kind, event])
            .inc();
    }

    fn lose(&self, collection: &Collection, error: &str) {
        self.state.lost(collection, error);
        self.losses.fetch_add(1, Ordering::AcqRel);
        self.authority_changed.notify_waiters();
    }
}

/// Lists and watches one collection of the primary into its state; on a failure, or when the
/// primary comes back from an outage, starts over with a new listing.
async fn primary_watcher(
    watch: Arc<Watch>,
    collection: Collection,
    name: String,
    stop: CancellationToken,
) {
    let kind = collection.kind;
    let api = match &collection.namespace {
        Some(ns) => Api::namespaced_with(watch.primary.client(), ns, &resource(kind)),
        None => Api::all_with(watch.primary.client(), &resource(kind)),
    };
    let mut relist = watch.relist.subscribe();
    let mut failures = 0;
    loop {
        relist.mark_unchanged();
        let events = watcher(api.clone(), watch_config());
        futures::pin_mut!(events);
        let error = loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = relist.changed() => break None,
                () = stop.cancelled() => return,
            };
            match event {
                None => break Some("the watch stream ended".to_string()),
                Some(Err(error)) => break Some(error.to_string()),
                Some(Ok(watcher::Event::Init)) => watch.state.init(&collection),
                Some(Ok(watcher::Event::InitApply(object))) => {
                    watch.count_event(kind.id(), "init");
                    if let Some((reference, entry)) = watch.primary_entry(kind, object) {
                        watch.state.init_apply(&collection, reference, entry);
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    // The full pass that follows completeness covers what the listing changed.
                    watch.state.init_done(&collection);
                    failures = 0;
                    watch.mark_unless(&stop, &name, WatcherState::Running);
                    watch.authority_changed.notify_waiters();
                }
                Some(Ok(watcher::Event::Apply(object))) => {
                    watch.count_event(kind.id(), "apply");
                    if let Some((reference, entry)) = watch.primary_entry(kind, object)
                        && watch.state.apply(reference.clone(), entry) == Change::Applied
                    {
                        watch.changed_on_primary(&reference);
                    }
                }
                Some(Ok(watcher::Event::Delete(object))) => {
                    watch.count_event(kind.id(), "delete");
                    // The server deletes every object of a kind whose CRD is being deleted, and
                    // this stream may bring those deletions before the CRD's watcher brings
                    // the CRD's own change: the primary is asked first (once held, the kind
                    // stays held, and the rest of a mass deletion costs no more requests).
                    if kind.is_custom()
                        && !watch.state.is_held(kind)
                        && watch.primary.definition_terminating(kind).await
                    {
                        warn!(
                            kind = kind.id(),
                            "a CRD is being deleted on the primary: its objects' deletions are not synced"
                        );
                        watch
                            .state
                            .hold_kind(kind, "its CRD is being deleted on the primary");
                        watch.authority_changed.notify_waiters();
                    }
                    if let Some(reference) = reference_of(kind, &object)
                        && watch.state.delete(&reference) == Change::Deleted
                    {
                        watch.changed_on_primary(&reference);
                    }
                }
            }
        };
        let reason = error.unwrap_or_else(|| "the primary answers again after an outage".into());
        watch.lose(&collection, &reason);
        watch.mark_unless(&stop, &name, WatcherState::Recovering(reason));
        failures += 1;
        let pause = RetryPolicy::WATCH_RESTART.delay(failures, None);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Feeds each event of `events` to `handle` until `stop`, keeping the watcher's state (in the
/// status and the metric) up to date. The stream recovers from errors by itself, with backoff.
pub(super) async fn pump<K>(
    watch: &Watch,
    name: &str,
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    stop: &CancellationToken,
    mut handle: impl FnMut(watcher::Event<K>),
) {
    futures::pin_mut!(events);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = stop.cancelled() => return,
        };
        match event {
            None => return,
            Some(Ok(event)) => {
                // A stream resumed after an error does not list again: its first event (or the
                // end of a relist) shows it runs.
                if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                    watch.mark_unless(stop, name, WatcherState::Running);
                }
                handle(event);
            }
            Some(Err(error)) if unserved(&error) => {
                watch.mark_unless(stop, name, WatcherState::Unserved)
            }
            Some(Err(error)) => {
                watch.mark_unless(stop, name, WatcherState::Recovering(error.to_string()));
            }
        }
    }
}

/// Whether a watch failed because the server does not serve the resource (404 on its list).
fn unserved(error: &watcher::Error) -> bool {
    matches!(
        error,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            if status.code == 404
    )
}

async fn namespace_watcher(watch: Arc<Watch>, stop: CancellationToken) {
    let api: Api<Namespace> = Api::all(watch.primary.client());
    let events = watcher(api, watch_config()).default_backoff();
    pump(&watch, "primary/namespaces", events, &stop, |event| {
        let namespace = match event {
            watcher::Event::Apply(namespace) | watcher::Event::InitApply(namespace) => namespace,
            watcher::Event::InitDone => {
                watch.state.namespaces_listed();
                watch.authority_changed.notify_waiters();
                return;
            }
            _ => return,
        };
        let Some(ns) = namespace.metadata.name else {
            return;
        };
        let terminating = namespace.metadata.deletion_timestamp.is_some();
        if terminating || watch.pass().scope.admits_namespace(&ns).is_err() {
            return;
        }
        watch.count_event("Namespace", "apply");
        watch.state.add_namespace(&ns);
        // Until the first full pass, which creates what each replica lacks, the replicas'
        // namespaces are not known yet.
        if !watch.first_pass_done.load(Ordering::Acquire) {
            return;
        }
        for replica in &watch.replicas {
            if !replica.knows_namespace(&ns) {
                replica
                    .queue
                    .add(Work::Namespace(ns.clone()), Instant::now());
            }
        }
    })
    .await;
}
