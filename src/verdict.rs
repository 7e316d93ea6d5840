//! The server's verdict on drift. The subset check is cheap and decides most objects; when it
//! finds a difference on an object whose recorded change key agrees with the primary's (edited
//! on the replica, or a copy k8s-sync did not write), that may be drift or may be the replica's
//! server storing the object its own way (a field an older version drops, a default it fills
//! differently). A server-side dry-run apply of the desired object, as k8s-sync would send it,
//! shows what the object would become: only a difference between that and the live object is
//! drift. Each verdict is remembered by the desired change key and the live resourceVersion, in
//! the job database, so a steady state costs no request on later passes, after a restart, or in
//! the next run.

use std::collections::BTreeSet;

use futures::StreamExt;
use serde_json::Value;

use crate::apply::apply_body;
use crate::diff::{Action, Change, Check, Plan, Reason, subset_differences};
use crate::endpoint::Cluster;
use crate::kinds::Kind;
use crate::normalize;
use crate::snapshot::{Entry, Snapshot};
use crate::store::{self, Store, VerdictRecord};

/// What asking the servers cost and found in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// Changes whose drift was for the server to confirm.
    pub suspected: usize,
    /// Of those, answered from remembered verdicts.
    pub remembered: usize,
    /// Dry-run requests sent.
    pub asked: usize,
    /// Suspected drift the server said is none.
    pub cleared: usize,
    /// Why the server could not be asked (it refused the dry-run, say); the subset check's
    /// verdict stands then.
    pub unavailable: Option<String>,
}

/// Whether the subset check's drift on `change` is for the server to confirm: the change key
/// agrees, or the copy is not k8s-sync's, so nothing the primary did explains the difference.
pub fn suspected(change: &Change) -> bool {
    matches!(
        (change.action, change.reason),
        (
            Action::Update | Action::NeedsRecreate | Action::Conflict,
            Some(Reason::EditedOnReplica | Reason::Adopt | Reason::Unmanaged)
        )
    )
}

/// Asks `cluster` (the replica) for its verdict on every suspected change of `plan`, using and
/// (when `remember`) recording verdicts in `store`; `workers` requests in flight. Changes the
/// server finds in sync become in sync; the others keep the paths that still differ.
pub async fn confirm(
    plan: &mut Plan,
    cluster: &Cluster,
    desired: &Snapshot,
    live: &Snapshot,
    store: Option<&Store>,
    remember: bool,
    workers: usize,
) -> Result<Confirmation, store::Error> {
    let mut confirmation = Confirmation::default();
    let mut to_ask = Vec::new();
    let mut remembered = Vec::new();
    for (index, change) in plan.changes.iter().enumerate() {
        if !suspected(change) {
            continue;
        }
        let reference = change.reference();
        let (Some(want), Some(have)) = (
            desired.objects.get(&reference),
            live.objects.get(&reference),
        ) else {
            continue;
        };
        let Some(version) = have.identity.as_ref().map(|i| i.resource_version.clone()) else {
            continue;
        };
        confirmation.suspected += 1;
        let key = (want.change_key.as_str(), version.as_str());
        let recorded = match store {
            Some(store) => store.verdict(
                &plan.replica,
                reference.kind.id(),
                &reference.namespace,
                &reference.name,
                key.0,
                key.1,
            )?,
            None => None,
        };
        match recorded {
            Some(verdict) => remembered.push((index, verdict.paths)),
            None if !want.redacted => to_ask.push((index, reference.kind, want, have, version)),
            None => {}
        }
    }
    confirmation.remembered = remembered.len();
    for (index, paths) in remembered {
        settle(&mut plan.changes[index], &paths);
    }
    // The first question alone: a server that refuses it (credentials that may not patch)
    // is not asked the others.
    let mut answers: Vec<(usize, Answer)> = Vec::with_capacity(to_ask.len());
    if let Some((index, kind, want, have, _)) = to_ask.first() {
        let first = ask(cluster, kind, want, have, &desired.source).await;
        let refused = matches!(first, Answer::Refused(_));
        answers.push((*index, first));
        if !refused {
            // The futures are made before the stream, not in a `map` closure: a closure
            // returning a borrowing future makes the pass non-`Send` for spawned tasks.
            let mut asks = Vec::with_capacity(to_ask.len());
            for (index, kind, want, have, _) in &to_ask[1..] {
                asks.push(ask_one(*index, cluster, kind, want, have, &desired.source));
            }
            let rest: Vec<(usize, Answer)> = futures::stream::iter(asks)
                .buffer_unordered(workers.max(1))
                .collect()
                .await;
            answers.extend(rest);
        }
    }
    for (index, answer) in answers {
        let paths = match answer {
            Answer::Paths(paths) => paths,
            Answer::Refused(reason) => {
                confirmation.unavailable.get_or_insert(reason);
                continue;
            }
            Answer::Unknown => continue,
        };
        confirmation.asked += 1;
        let (_, _, want, _, version) = to_ask
            .iter()
            .find(|(i, ..)| *i == index)
            .expect("each answer is to a question");
        let change = &mut plan.changes[index];
        if let (Some(store), true) = (store, remember) {
            let record = VerdictRecord {
                replica: &plan.replica,
                kind: change.kind.id(),
                namespace: &change.namespace,
                name: &change.name,
                desired_key: want.change_key.as_str(),
                live_version: version,
                paths: &paths,
            };
            store.record_verdict(&record)?;
        }
        settle(change, &paths);
    }
    confirmation.cleared = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::InSync && c.found_by.contains(&Check::Subset))
        .count();
    plan.recount();
    Ok(confirmation)
}

/// Applies the server's verdict to a change: in sync when no path differs, else drift at the
/// paths that do.
fn settle(change: &mut Change, paths: &[String]) {
    if paths.is_empty() {
        change.action = Action::InSync;
        change.reason = None;
        change.changed_paths.clear();
        change.immutable_paths.clear();
        change.secret_keys = None;
    } else {
        change.found_by.push(Check::Server);
        change.changed_paths = paths.to_vec();
    }
}

enum Answer {
    /// The paths where what the object would become differs from what it is.
    Paths(Vec<String>),
    /// The server refused to answer (no permission to patch): nothing to ask it this pass.
    Refused(String),
    /// No verdict (the server failed, or refused this object's change): the subset check's
    /// stands.
    Unknown,
}

async fn ask_one(
    index: usize,
    cluster: &Cluster,
    kind: &'static Kind,
    want: &Entry,
    have: &Entry,
    source: &str,
) -> (usize, Answer) {
    (index, ask(cluster, kind, want, have, source).await)
}

async fn ask(
    cluster: &Cluster,
    kind: &'static Kind,
    want: &Entry,
    have: &Entry,
    source: &str,
) -> Answer {
    let body = apply_body(want, source);
    match cluster.apply(kind, &body, true).await {
        Ok(mut would_be) => {
            would_be["apiVersion"] = kind.api_version().into();
            would_be["kind"] = kind.kind.into();
            normalize::normalize(&mut would_be, kind);
            Answer::Paths(differences(&would_be, &have.object()))
        }
        Err(error) if error.is_forbidden() => Answer::Refused(format!("{error:#}")),
        Err(_) => Answer::Unknown,
    }
}

/// The paths where two normalized objects differ, either way.
fn differences(a: &Value, b: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    subset_differences(a, b, &mut String::new(), &mut paths);
    subset_differences(b, a, &mut String::new(), &mut paths);
    let unique: BTreeSet<String> = paths.into_iter().collect();
    unique.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_go_both_ways() {
        let a = json!({"spec": {"a": 1, "b": 2}});
        let b = json!({"spec": {"a": 1, "c": 3}});
        assert_eq!(differences(&a, &b), ["spec.b", "spec.c"]);
        assert!(differences(&a, &a).is_empty());
    }
}
