//! Where watch mode's work comes from: watchers on the primary (every synced kind, and
//! namespaces), watchers on each replica's managed objects, and a probe that brings an
//! unreachable replica back with a full pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Replica, Watch, WatcherState, Work};
use crate::diff;
use crate::kinds::Kind;
use crate::normalize::MANAGED_LABEL;
use crate::snapshot::{ObjectRef, RawObject, Snapshot};

/// Starts every watcher and the replica probes.
pub(super) fn spawn(watch: &Arc<Watch>, tasks: &mut JoinSet<()>, stop: &CancellationToken) {
    for kind in watch.options.pass.scope.kinds.iter() {
        for (namespace, api) in apis(watch.primary.client(), kind, &watch.options.pass.scope) {
            let name = format!("primary/{}", kind.plural);
            watch.mark(&name, WatcherState::Starting);
            tasks.spawn(primary_watcher(
                watch.clone(),
                kind,
                namespace,
                api,
                name,
                stop.clone(),
            ));
        }
        for replica in &watch.replicas {
            for (_, api) in apis(replica.cluster.client(), kind, &watch.options.pass.scope) {
                let name = format!("{}/{}", replica.name, kind.plural);
                watch.mark(&name, WatcherState::Starting);
                tasks.spawn(replica_watcher(
                    watch.clone(),
                    replica.clone(),
                    kind,
                    api,
                    name,
                    stop.clone(),
                ));
            }
        }
    }
    watch.mark("primary/namespaces", WatcherState::Starting);
    tasks.spawn(namespace_watcher(watch.clone(), stop.clone()));
    for replica in &watch.replicas {
        tasks.spawn(probe(watch.clone(), replica.clone(), stop.clone()));
    }
}

/// One API per watched collection: cluster-wide, or one per namespace of `--sync-namespaces`.
fn apis(
    client: &kube::Client,
    kind: &'static Kind,
    scope: &crate::scope::Scope,
) -> Vec<(Option<String>, Api<DynamicObject>)> {
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
    match &scope.namespaces {
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

/// Watch calls the server ends after this many seconds, so that a quiet stream closes
/// cleanly and is resumed before the client's 60 s read timeout would break it.
const WATCH_TIMEOUT: u32 = 45;

fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT)
}

fn to_raw(kind: &Kind, mut object: DynamicObject, origin: &str) -> Option<RawObject> {
    // Normalization drops them; do it before they are copied into a JSON value.
    object.metadata.managed_fields = None;
    let mut value = serde_json::to_value(object).ok()?;
    value["apiVersion"] = kind.api_version().into();
    value["kind"] = kind.kind.into();
    Some(RawObject {
        value,
        origin: origin.to_string(),
        archived: None,
    })
}

fn reference_of(kind: &'static Kind, object: &DynamicObject) -> Option<ObjectRef> {
    Some(ObjectRef {
        kind,
        namespace: object
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: object.metadata.name.clone()?,
    })
}

/// Feeds each event of `events` to `handle` until `stop`, keeping the watcher's state (in the
/// status and the metric) up to date. The stream recovers from errors by itself, with backoff.
async fn pump<K>(
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
                    watch.mark(name, WatcherState::Running);
                }
                handle(event);
            }
            Some(Err(error)) => {
                warn!(watcher = %name, %error, "watch failed; retrying with backoff");
                watch.mark(name, WatcherState::Recovering(error.to_string()));
            }
        }
    }
}

async fn primary_watcher(
    watch: Arc<Watch>,
    kind: &'static Kind,
    namespace: Option<String>,
    api: Api<DynamicObject>,
    name: String,
    stop: CancellationToken,
) {
    let events = watcher(api, watch_config()).default_backoff();
    // References listed since the stream (re)started; whatever the cache had that is not among
    // them was deleted while the stream was down.
    let mut listed: HashSet<ObjectRef> = HashSet::new();
    pump(&watch, &name, events, &stop, |event| match event {
        watcher::Event::Init => listed.clear(),
        watcher::Event::InitApply(object) => {
            if let Some(reference) = reference_of(kind, &object) {
                listed.insert(reference);
            }
            watch.on_primary_object(kind, object, "init");
        }
        watcher::Event::InitDone => watch.forget_unlisted(kind, namespace.as_deref(), &listed),
        watcher::Event::Apply(object) => watch.on_primary_object(kind, object, "apply"),
        watcher::Event::Delete(object) => {
            let events = &watch.metrics.watch_events;
            events.with_label_values(&[kind.kind, "delete"]).inc();
            if let Some(reference) = reference_of(kind, &object) {
                watch.forget(&reference);
            }
        }
    })
    .await;
}

async fn replica_watcher(
    watch: Arc<Watch>,
    replica: Arc<Replica>,
    kind: &'static Kind,
    api: Api<DynamicObject>,
    name: String,
    stop: CancellationToken,
) {
    let config = watch_config().labels(&format!("{MANAGED_LABEL}=true"));
    let events = watcher(api, config).default_backoff();
    pump(&watch, &name, events, &stop, |event| match event {
        watcher::Event::Apply(object) => {
            if let Some(reference) = reference_of(kind, &object) {
                replica.present.note_present(&reference);
            }
            watch.on_replica_object(&replica, kind, object);
        }
        watcher::Event::InitApply(object) => {
            if let Some(reference) = reference_of(kind, &object) {
                replica.present.note_present(&reference);
            }
        }
        watcher::Event::Delete(object) => {
            let Some(reference) = reference_of(kind, &object) else {
                return;
            };
            replica.present.note_absent(&reference);
            // A managed copy deleted by hand: bring it back if the primary still has it.
            let still_wanted = watch
                .cache
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&reference);
            if still_wanted {
                watch.queue.add(Work::Object(reference), Instant::now());
            }
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    })
    .await;
}

async fn namespace_watcher(watch: Arc<Watch>, stop: CancellationToken) {
    let api: Api<Namespace> = Api::all(watch.primary.client().clone());
    let events = watcher(api, watch_config()).default_backoff();
    pump(&watch, "primary/namespaces", events, &stop, |event| {
        let (watcher::Event::Apply(namespace) | watcher::Event::InitApply(namespace)) = event
        else {
            return;
        };
        let Some(ns) = namespace.metadata.name else {
            return;
        };
        let terminating = namespace.metadata.deletion_timestamp.is_some();
        if terminating || watch.options.pass.scope.admits_namespace(&ns).is_err() {
            return;
        }
        let events = &watch.metrics.watch_events;
        events.with_label_values(&["Namespace", "apply"]).inc();
        if watch.replicas.iter().any(|r| !r.knows_namespace(&ns)) {
            watch.queue.add(Work::Namespace(ns), Instant::now());
        }
    })
    .await;
}

/// While a replica is unreachable, asks it for its version with growing pauses; once it
/// answers, a full pass of that replica catches up on everything it missed.
async fn probe(watch: Arc<Watch>, replica: Arc<Replica>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(500);
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => return,
        }
        if !replica.unreachable.load(Ordering::Acquire) {
            pause = Duration::from_millis(500);
            continue;
        }
        if replica.cluster.version().await.is_err() {
            pause = (pause * 2).min(Duration::from_secs(10));
            continue;
        }
        info!(replica = %replica.name, "replica is back; catching up with a full pass");
        let desired = watch.cached_snapshot();
        if let Err(error) = watch.sync_whole(&replica, &desired).await {
            warn!(%error, "job database error");
        }
    }
}

impl Watch {
    /// Records a watcher's state in the status and the metric.
    fn mark(&self, watcher: &str, state: WatcherState) {
        let running = i64::from(state == WatcherState::Running);
        self.metrics
            .watchers
            .with_label_values(&[watcher])
            .set(running);
        self.status.set(watcher, state);
    }

    /// An event of the primary: normalize, key, and queue the object if its key changed.
    fn on_primary_object(&self, kind: &'static Kind, object: DynamicObject, event: &str) {
        self.metrics
            .watch_events
            .with_label_values(&[kind.kind, event])
            .inc();
        let Some(raw) = to_raw(kind, object, "primary") else {
            return;
        };
        let snapshot = match Snapshot::build(&self.source, [raw], &self.options.pass.scope) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                warn!(%error, "skipping an object the primary sent");
                return;
            }
        };
        // Out of scope or never synced: nothing to do.
        let Some((reference, entry)) = snapshot.objects.into_iter().next() else {
            return;
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        // Status-only updates normalize to the same key: they cost nothing.
        if cache
            .get(&reference)
            .is_some_and(|old| old.change_key == entry.change_key)
        {
            return;
        }
        cache.insert(reference.clone(), entry);
        drop(cache);
        self.queue.add(Work::Object(reference), Instant::now());
        self.metrics.queue_depth.set(self.queue.len() as i64);
    }

    /// The primary deleted an object: drop it from the cache and prune the replicas' copies.
    fn forget(&self, reference: &ObjectRef) {
        let removed = self
            .cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(reference);
        if removed.is_some() {
            self.queue
                .add(Work::Object(reference.clone()), Instant::now());
        }
    }

    /// After a relist of `kind` (in `namespace`, for a watcher of one namespace): objects the
    /// cache has there but the list lacked were deleted.
    fn forget_unlisted(&self, kind: &Kind, namespace: Option<&str>, listed: &HashSet<ObjectRef>) {
        let gone: Vec<ObjectRef> = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|r| r.kind == kind && !listed.contains(*r))
            .filter(|r| namespace.is_none_or(|ns| r.namespace == ns))
            .cloned()
            .collect();
        for reference in gone {
            self.forget(&reference);
        }
    }

    /// An event of a replica's managed object: queue the object when it drifted from the
    /// primary's. The events of k8s-sync's own writes find it in step and cost nothing.
    fn on_replica_object(&self, replica: &Replica, kind: &'static Kind, object: DynamicObject) {
        let Some(raw) = to_raw(kind, object, &replica.name) else {
            return;
        };
        let Ok(live) = Snapshot::build(&replica.name, [raw], &self.options.pass.scope) else {
            return;
        };
        let Some((reference, have)) = live.objects.into_iter().next() else {
            return;
        };
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let in_step = cache.get(&reference).is_some_and(|want| {
            let mut paths = Vec::new();
            diff::subset_differences(&want.object, &have.object, &mut String::new(), &mut paths);
            paths.is_empty()
                && have
                    .applied
                    .as_ref()
                    .is_some_and(|a| a.change_key == want.change_key)
        });
        drop(cache);
        if !in_step {
            self.queue.add(Work::Object(reference), Instant::now());
        }
    }

    /// The cache as a snapshot, for catching a replica up.
    fn cached_snapshot(&self) -> Snapshot {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let mut snapshot = Snapshot {
            source: self.source.clone(),
            ..Snapshot::default()
        };
        for (reference, entry) in cache.iter() {
            snapshot.namespaces.insert(reference.namespace.clone());
            snapshot.objects.insert(reference.clone(), entry.clone());
        }
        snapshot
    }
}
