//! The synced kinds of a watch whose `--kinds` needs the primary's discovery (`all`, or names
//! beyond the kind table): resolved once the primary answers, and again whenever a
//! CustomResourceDefinition changes on the primary (a watch on CRDs) and every resync interval,
//! so that a CRD created later is synced without a restart.
//!
//! A kind found is added to the primary's state (not authoritative until listed), its watchers
//! start, and every primary watcher lists again, so that what a new CRD filter admits is seen;
//! the full pass that follows completeness covers the new kinds. Kinds are never taken away
//! while running: a kind the primary stops serving fails its watchers, so its state is not
//! authoritative and nothing of it is pruned.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Watch;
use super::sources::{pump, spawn_watchers};
use crate::kinds::{self, CRD, Kind, KindSelection, KindSet};

/// How soon discovery is asked again after it failed.
const RETRY: Duration = Duration::from_secs(2);

/// Follows what the primary serves until `stop`.
pub(super) async fn follow(watch: Arc<Watch>, stop: CancellationToken) {
    let changed = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(watch_definitions(
        watch.clone(),
        changed.clone(),
        stop.clone(),
    ));
    loop {
        let pause = match refresh(&watch, &stop).await {
            Ok(()) => watch.options.resync,
            // Before any kind is known, soon again; after, at the resync interval (a named kind
            // the primary stopped serving fails each time, and is held meanwhile).
            Err(reason) if watch.pass().scope.kinds.is_empty() => {
                warn!(%reason, "cannot resolve --kinds against the primary yet");
                watch.state.set_kinds_unknown(Some(reason));
                watch.authority_changed.notify_waiters();
                RETRY
            }
            Err(reason) => {
                warn!(%reason, "cannot resolve --kinds against the primary: the kinds synced so far stay");
                watch.options.resync
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = changed.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Resolves the selection against the primary's discovery now, starts what is new and, with
/// `all`, stops what the primary no longer serves.
async fn refresh(watch: &Arc<Watch>, stop: &CancellationToken) -> Result<(), String> {
    let served = watch
        .primary
        .discover()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let resolved =
        kinds::resolve(&watch.options.selection.kinds, &served).map_err(|e| e.to_string())?;
    let mut pass = (*watch.pass()).clone();
    // With `all`, a kind beyond the table the primary no longer serves (its CRD deleted) is not
    // synced any more: its watchers stop and its state goes. Its copies stay on the replicas: a
    // kind out of scope is neither listed there nor pruned, and until its state goes no state
    // of it is authoritative (its CRD was marked terminating first).
    let gone: Vec<&'static Kind> = match watch.options.selection.kinds {
        KindSelection::All => pass
            .scope
            .kinds
            .iter()
            .filter(|k| !k.in_table && !resolved.contains(k))
            .collect(),
        _ => Vec::new(),
    };
    pass.scope.kinds = KindSet::of(
        pass.scope
            .kinds
            .union(&resolved)
            .iter()
            .filter(|k| !gone.contains(k)),
    );
    let crds_grew = watch.options.selection.sync_crds && {
        pass.scope.crds = crate::endpoint::served::crd_names(&pass.scope);
        !pass.scope.crds.is_subset(&watch.pass().scope.crds)
    };
    let watched: Vec<&'static Kind> = watch
        .kind_stops
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let mut new: Vec<&'static Kind> = pass
        .scope
        .listed_kinds()
        .filter(|k| !watched.contains(k))
        .collect();
    // The CRDs' watchers list with the scope's filter of names: more names, a new listing.
    if crds_grew && !new.contains(&&CRD) {
        stop_kinds(watch, &[&CRD]);
        watch
            .state
            .lose_kind(&CRD, "the CRDs to sync changed; listing them again");
        new.push(&CRD);
    }
    let scope = pass.scope.clone();
    // Collections before the scope names their kinds, so that no pass sees a kind without one.
    watch.state.add_collections(
        super::sources::collections(&scope)
            .into_iter()
            .filter(|c| new.contains(&c.kind)),
    );
    *watch.pass.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pass);
    if !gone.is_empty() {
        let names: Vec<String> = gone.iter().map(|k| k.short_name()).collect();
        warn!(kinds = %names.join(","), "the primary no longer serves these kinds: no longer synced, their copies left in place");
        stop_kinds(watch, &gone);
        for kind in &gone {
            watch.state.remove_kind(kind);
            watch.forget_watchers_of(kind);
        }
    }
    if !new.is_empty() {
        let names: Vec<String> = new.iter().map(|k| k.short_name()).collect();
        info!(kinds = %names.join(","), "syncing kinds the primary serves now");
        spawn_watchers(
            watch,
            &new,
            &scope,
            &mut |task| drop(tokio::spawn(task)),
            stop,
        );
        // A full pass follows once they are listed: it copies a new CRD before the objects
        // that need it, which passes of one object each would not.
        watch
            .losses
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    watch.state.set_kinds_unknown(None);
    watch.authority_changed.notify_waiters();
    Ok(())
}

/// Cancels the watchers of `kinds`.
fn stop_kinds(watch: &Watch, kinds: &[&Kind]) {
    watch
        .kind_stops
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(kind, stop)| {
            let stopping = kinds.contains(kind);
            if stopping {
                stop.cancel();
            }
            !stopping
        });
}

/// Wakes `changed` whenever a CRD is added, changed or deleted on the primary. A CRD being
/// deleted there makes its kind's state not authoritative at once: the server is about to delete
/// every object of it, and those deletions must not reach the replicas.
async fn watch_definitions(
    watch: Arc<Watch>,
    changed: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let api: Api<CustomResourceDefinition> = Api::all(watch.primary.client());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let name = "primary/definitions";
    watch.mark(name, super::WatcherState::Starting);
    pump(&watch, name, events, &stop, |event| match event {
        watcher::Event::Apply(crd) | watcher::Event::InitApply(crd) => {
            if crd.metadata.deletion_timestamp.is_some() {
                let (group, plural) = (&crd.spec.group, &crd.spec.names.plural);
                if let Some(kind) = watch
                    .pass()
                    .scope
                    .kinds
                    .iter()
                    .find(|k| k.group == group && k.plural == plural)
                {
                    warn!(crd = ?crd.metadata.name, "a CRD is being deleted on the primary: its objects' deletions are not synced");
                    watch.state.hold_kind(kind, "its CRD is being deleted on the primary");
                    watch.authority_changed.notify_waiters();
                }
            }
            changed.notify_one();
        }
        watcher::Event::Delete(_) => changed.notify_one(),
        watcher::Event::Init | watcher::Event::InitDone => {}
    })
    .await;
}
