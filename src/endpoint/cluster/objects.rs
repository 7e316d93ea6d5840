//! What passes read and write of a cluster's objects: paginated listings, server-side apply,
//! the mark of a held prune, deletes with preconditions, single reads, namespaces.

use kube::core::params::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use serde_json::{Value, json};

use super::{Cluster, Error, FIELD_MANAGER, HOLD_FIELD_MANAGER, ListError, PAGE_SIZE, page};
use crate::kinds::Kind;
use crate::normalize::{
    CHANGE_KEY_ANNOTATION, MANAGED_LABEL, PRUNE_HELD_ANNOTATION, SOURCE_ANNOTATION,
};
use crate::scope::Scope;
use crate::snapshot::{self, Prepared, RawObject, Snapshot};

impl Cluster {
    /// Lists every object of the scope's kinds, page by page, into a snapshot named `name`;
    /// returns it with the names of every namespace the cluster has. Each page is prepared
    /// ([`snapshot::prepare`]: normalized and keyed) off this task while the next is fetched,
    /// and folded in as it comes, so no listing is held whole; an object `shared` holds with
    /// the same change key shares its bytes ([`Snapshot::add`]). A kind the server does not
    /// serve (a custom resource whose CRD it lacks) is an error when `unserved_ok` is false
    /// (a source's state of it would be unknown), else recorded in the snapshot (a replica:
    /// its objects fail alone).
    pub async fn snapshot(
        &self,
        name: &str,
        scope: &Scope,
        unserved_ok: bool,
        shared: Option<&Snapshot>,
    ) -> Result<(Snapshot, Vec<String>), ListError> {
        let mut snapshot = Snapshot::new(name);
        let namespaces = self.namespace_names().await?;
        if !unserved_ok {
            snapshot.incomplete = self.terminating_definitions(scope).await;
        }
        let shared_scope = std::sync::Arc::new(scope.clone());
        for kind in scope.listed_kinds() {
            let mut paths: Vec<String> = match &scope.namespaces {
                Some(only) if kind.namespaced => only
                    .iter()
                    .filter(|ns| namespaces.contains(ns))
                    .map(|ns| kind.url_path(Some(ns)))
                    .collect(),
                _ => vec![kind.url_path(None)],
            };
            // None of the namespaces exists yet: a LIST in one of them still tells whether the
            // server serves a kind beyond the table (it answers 404 if not, an empty list if
            // so), which the table's kinds are on every server.
            if let (true, false, Some(first)) = (
                paths.is_empty(),
                kind.in_table,
                scope.namespaces.iter().flatten().next(),
            ) {
                paths.push(kind.url_path(Some(first)));
            }
            for path in paths {
                let (scope, origin) = (shared_scope.clone(), self.name.clone());
                let prepare = move |mut value: Value| {
                    // Items of a typed list carry no apiVersion/kind of their own.
                    value["apiVersion"] = kind.api_version().into();
                    value["kind"] = kind.kind.into();
                    let raw = RawObject {
                        value,
                        origin: origin.clone(),
                        archived: None,
                    };
                    snapshot::prepare(raw, &scope)
                };
                let mut fold = |prepared: Result<Prepared, snapshot::Error>| {
                    Ok(snapshot.add(prepared?, shared)?)
                };
                match self.list_path(&path, kind.plural, prepare, &mut fold).await {
                    Ok(()) => {}
                    Err(ListError::Cluster(e)) if unserved_ok && e.is_not_found() => {
                        snapshot.unserved.push(kind);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for namespace in &namespaces {
            snapshot.add_namespace(namespace, scope);
        }
        Ok((snapshot, namespaces))
    }

    /// The names of every namespace the cluster has.
    pub async fn namespace_names(&self) -> Result<Vec<String>, ListError> {
        let mut namespaces = Vec::new();
        let name_of = |ns: Value| {
            ns.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        self.list_path("/api/v1/namespaces", "namespaces", name_of, &mut |name| {
            namespaces.extend(name);
            Ok(())
        })
        .await?;
        Ok(namespaces)
    }

    /// The scope's custom resource kinds whose CRD is being deleted on this (source) cluster:
    /// the server is deleting every object of them, and those deletions must not reach the
    /// replicas. One GET per such kind and pass; a CRD that cannot be read is not reported.
    async fn terminating_definitions(&self, scope: &Scope) -> Vec<(&'static Kind, String)> {
        let mut terminating = Vec::new();
        for kind in scope.kinds.iter().filter(|k| k.is_custom()) {
            if self.definition_terminating(kind).await {
                terminating.push((kind, "its CRD is being deleted on the primary".to_string()));
            }
        }
        terminating
    }

    /// Whether the CRD of `kind`, a custom resource kind, is being deleted on this cluster (one
    /// GET; a CRD that cannot be read is not reported).
    pub async fn definition_terminating(&self, kind: &Kind) -> bool {
        let request = kube::core::Request::new(crate::kinds::CRD.url_path(None))
            .get(&kind.resource(), &Default::default())
            .expect("get requests always build");
        let what = format!("get customresourcedefinition {}", kind.resource());
        matches!(self.send(&what, request, false).await,
            Ok(crd) if crd.pointer("/metadata/deletionTimestamp").is_some())
    }

    /// Lists `path` page by page, each item (without its managed fields) through `prepare`
    /// and then to `each`. A task of its own fetches and parses the pages and hands each to
    /// the blocking pool to prepare; up to two pages wait, so the server makes the next page
    /// while one is prepared and another folded in.
    async fn list_path<T: Send + 'static>(
        &self,
        path: &str,
        what: &str,
        prepare: impl Fn(Value) -> T + Send + Sync + 'static,
        each: &mut (dyn FnMut(T) -> Result<(), ListError> + Send),
    ) -> Result<(), ListError> {
        let (pages, mut arrived) = tokio::sync::mpsc::channel(2);
        let fetcher = self.clone().fetch_pages(
            path.to_string(),
            format!("list {what}"),
            std::sync::Arc::new(prepare),
            pages,
        );
        let fetcher = tokio::spawn(fetcher);
        let mut folded = Ok(());
        while let Some(page) = arrived.recv().await {
            folded = match page {
                Ok(prepared) => prepared
                    .await
                    .expect("preparing a page does not panic")
                    .into_iter()
                    .try_for_each(&mut *each),
                Err(error) => Err(error.into()),
            };
            if folded.is_err() {
                break;
            }
        }
        // Dropping the receiver ends the fetcher at its next page.
        drop(arrived);
        fetcher.await.expect("the page fetcher does not panic");
        folded
    }

    /// Sends each page of `path`, being prepared, to `pages` until the last, an error, or a
    /// receiver gone.
    async fn fetch_pages<T: Send + 'static>(
        self,
        path: String,
        what: String,
        prepare: std::sync::Arc<impl Fn(Value) -> T + Send + Sync + 'static>,
        pages: tokio::sync::mpsc::Sender<Result<tokio::task::JoinHandle<Vec<T>>, Error>>,
    ) {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            let request = kube::core::Request::new(&path)
                .list(&params)
                .expect("list requests always build");
            let page = match self.send_as::<page::Page>(&what, request, false).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = pages.send(Err(error)).await;
                    return;
                }
            };
            let next = page.metadata.continue_token.filter(|t| !t.is_empty());
            let items = page.items.unwrap_or_default();
            let prepare = prepare.clone();
            let prepared = tokio::task::spawn_blocking(move || {
                items.into_iter().map(|item| prepare(item.0)).collect()
            });
            if pages.send(Ok(prepared)).await.is_err() {
                return;
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return,
            }
        }
    }

    /// Server-side applies `object` (a normalized object carrying k8s-sync's annotations) as
    /// field manager `k8s-sync`, taking over conflicting fields.
    pub async fn apply(&self, kind: &Kind, object: &Value, dry_run: bool) -> Result<Value, Error> {
        let (what, request) = apply_request(kind, object, dry_run);
        self.send(&what, request, true).await
    }

    /// Applies `object` as [`Cluster::apply`] does, and reads nothing of the answer but its
    /// status: the answer is the whole object, managed fields included, and parsing it would
    /// cost a write more than the rest of its work on this side.
    pub async fn apply_without_answer(
        &self,
        kind: &Kind,
        object: &Value,
        dry_run: bool,
    ) -> Result<(), Error> {
        let (what, request) = apply_request(kind, object, dry_run);
        self.send_as::<serde::de::IgnoredAny>(&what, request, true)
            .await
            .map(|_| ())
    }

    /// Marks an object's prune as held ([`PRUNE_HELD_ANNOTATION`], with the time), or takes the
    /// mark off, by a merge patch of field manager [`HOLD_FIELD_MANAGER`]: a patch, not an
    /// apply, so that an object deleted meanwhile is never made again, and of its own field
    /// manager, so that k8s-sync's applies of the object leave the mark alone.
    pub async fn mark_prune_held(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        held: bool,
    ) -> Result<(), Error> {
        let value = held.then(|| jiff::Timestamp::now().to_string());
        let body = json!({"metadata": {"annotations": {PRUNE_HELD_ANNOTATION: value}}});
        let params = PatchParams {
            field_manager: Some(HOLD_FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let request = kube::core::Request::new(kind.url_path(Some(namespace)))
            .patch(name, &params, &Patch::Merge(&body))
            .expect("patch requests always build");
        let verb = if held { "mark" } else { "unmark" };
        let what = format!("{verb} the held prune of {namespace}/{}/{name}", kind.kind);
        match self.send(&what, request, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes k8s-sync's markers (source, change key, held prune, managed label) off an object
    /// and leaves it in place, by a merge patch: one that a synced kind's controller now owns.
    pub async fn release(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<(), Error> {
        let body = json!({"metadata": {
            "annotations": {
                SOURCE_ANNOTATION: null,
                CHANGE_KEY_ANNOTATION: null,
                PRUNE_HELD_ANNOTATION: null,
            },
            "labels": {MANAGED_LABEL: null},
        }});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            dry_run,
            ..PatchParams::default()
        };
        let request = kube::core::Request::new(kind.url_path(Some(namespace)))
            .patch(name, &params, &Patch::Merge(&body))
            .expect("patch requests always build");
        let what = format!("release {namespace}/{}/{name}", kind.id());
        match self.send(&what, request, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits (at most 15 s) until the server serves `kind`: a CRD just applied is established.
    pub async fn wait_served(&self, kind: &Kind) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let params = ListParams::default().limit(1);
        loop {
            let request = kube::core::Request::new(kind.url_path(None))
                .list(&params)
                .expect("list requests always build");
            match self
                .send(&format!("list {}", kind.plural), request, false)
                .await
            {
                Ok(_) => return true,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(_) => return false,
            }
        }
    }

    /// Deletes an object, only if it still has the uid and resourceVersion that were listed.
    /// Propagation is in the background: no controller needs to finish a foreground deletion.
    pub async fn delete(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        precondition: Option<&crate::snapshot::Identity>,
        dry_run: bool,
    ) -> Result<(), Error> {
        let params = DeleteParams {
            dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: precondition.map(|p| Preconditions {
                uid: Some(p.uid.clone()),
                resource_version: Some(p.resource_version.clone()),
            }),
            ..DeleteParams::default()
        };
        let request = kube::core::Request::new(kind.url_path(Some(namespace)))
            .delete(name, &params)
            .expect("delete requests always build");
        let what = format!("delete {namespace}/{}/{name}", kind.kind);
        self.send(&what, request, true).await.map(drop)
    }

    /// Reads one object, `None` when absent. Passes never do this (they LIST); watch mode
    /// does, to check one object after an event, and recreate to wait for a deletion.
    pub async fn get(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let request = kube::core::Request::new(kind.url_path(Some(namespace)))
            .get(name, &Default::default())
            .expect("get requests always build");
        let what = format!("get {namespace}/{}/{name}", kind.kind);
        match self.send(&what, request, false).await {
            Ok(value) => {
                let mut value = without_managed_fields(value);
                value["apiVersion"] = kind.api_version().into();
                value["kind"] = kind.kind.into();
                Ok(Some(value))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the object `name` of the collection at `path` (a cluster-scoped one) exists.
    pub async fn exists_at(&self, path: &str, name: &str) -> Result<bool, Error> {
        let request = kube::core::Request::new(path)
            .get(name, &Default::default())
            .expect("get requests always build");
        match self
            .send(&format!("get {path}/{name}"), request, false)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, kind: &Kind, namespace: &str, name: &str) -> Result<bool, Error> {
        Ok(self.get(kind, namespace, name).await?.is_some())
    }

    /// Creates a namespace; one that already exists is fine.
    pub async fn ensure_namespace(&self, namespace: &str, dry_run: bool) -> Result<(), Error> {
        let body = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {MANAGED_LABEL: "true"}},
        });
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let request = kube::core::Request::new("/api/v1/namespaces")
            .create(
                &params,
                serde_json::to_vec(&body).expect("a JSON value serializes"),
            )
            .expect("create requests always build");
        match self
            .send(&format!("create namespace {namespace}"), request, true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Drops `metadata.managedFields` as soon as an object arrives: normalization strips it anyway,
/// and it is often the largest part of an object, so a listing of thousands holds far less.
fn without_managed_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// A server-side apply of `object` as field manager `k8s-sync`, taking over conflicting
/// fields, and what to call it in errors.
fn apply_request(kind: &Kind, object: &Value, dry_run: bool) -> (String, http::Request<Vec<u8>>) {
    let (namespace, name) = identity(object);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let request = kube::core::Request::new(kind.url_path(Some(namespace)))
        .patch(name, &params, &Patch::Apply(object))
        .expect("apply requests always build");
    (format!("apply {namespace}/{}/{name}", kind.kind), request)
}

fn identity(object: &Value) -> (&str, &str) {
    let field = |pointer| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    (field("/metadata/namespace"), field("/metadata/name"))
}
