//! Creating and reading objects of the synced kinds on a test cluster, untyped.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

fn resource(plural: &str) -> ApiResource {
    let kind = k8s_sync::kinds::by_plural(plural).unwrap_or_else(|| panic!("no kind {plural}"));
    let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, kind.plural)
}

fn api(client: &kube::Client, namespace: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource(plural))
}

fn plural_of(object: &Value) -> &'static str {
    let kind = k8s_sync::kinds::by_type(
        object["apiVersion"].as_str().unwrap(),
        object["kind"].as_str().unwrap(),
    )
    .expect("a synced kind");
    kind.plural
}

/// Creates `object` (a manifest with apiVersion and kind) in `namespace`.
pub async fn create(client: &kube::Client, namespace: &str, object: Value) -> Value {
    let plural = plural_of(&object);
    let dynamic: DynamicObject = serde_json::from_value(object).unwrap();
    let created = api(client, namespace, plural)
        .create(&PostParams::default(), &dynamic)
        .await
        .unwrap_or_else(|e| panic!("create {plural} in {namespace}: {e}"));
    serde_json::to_value(created).unwrap()
}

/// Replaces an object with `object` (read-modify-write by server-side apply as a test editor).
pub async fn edit(client: &kube::Client, namespace: &str, object: Value) {
    let plural = plural_of(&object);
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    api(client, namespace, plural)
        .patch(
            &name,
            &PatchParams::apply("test-editor").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("edit {plural} {namespace}/{name}: {e}"));
}

/// Merge-patches an object, as `kubectl patch` would.
pub async fn patch(client: &kube::Client, namespace: &str, plural: &str, name: &str, patch: Value) {
    api(client, namespace, plural)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {plural} {namespace}/{name}: {e}"));
}

/// Reads an object, `None` when absent.
pub async fn get(
    client: &kube::Client,
    namespace: &str,
    plural: &str,
    name: &str,
) -> Option<Value> {
    api(client, namespace, plural)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {plural} {namespace}/{name}: {e}"))
        .map(|o| serde_json::to_value(o).unwrap())
}

/// Deletes an object.
pub async fn delete(client: &kube::Client, namespace: &str, plural: &str, name: &str) {
    api(client, namespace, plural)
        .delete(name, &DeleteParams::background())
        .await
        .unwrap_or_else(|e| panic!("delete {plural} {namespace}/{name}: {e}"));
}

/// The API resource of `apiVersion`/`kind` (or of `plural.group`) as the server serves it, and
/// whether it is namespaced; polled until served (a CRD just created is established within a
/// second or so).
pub async fn served(
    client: &kube::Client,
    find: impl Fn(&ApiResource) -> bool,
) -> (ApiResource, bool) {
    use kube::discovery::{Discovery, Scope};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let discovery = Discovery::new(client.clone())
            .run_aggregated()
            .await
            .expect("discovery");
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                if find(&resource) {
                    return (resource, capabilities.scope == Scope::Namespaced);
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never served it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn api_of(
    client: &kube::Client,
    namespace: &str,
    resource: &ApiResource,
    namespaced: bool,
) -> Api<DynamicObject> {
    if namespaced {
        Api::namespaced_with(client.clone(), namespace, resource)
    } else {
        Api::all_with(client.clone(), resource)
    }
}

/// Server-side applies manifests of any kind the server serves, in order, namespaced ones in
/// `namespace`, as `kubectl apply --server-side` would (field manager `test-editor`).
pub async fn apply_manifests(client: &kube::Client, namespace: &str, objects: &[Value]) {
    for object in objects {
        let (api_version, kind) = (
            object["apiVersion"].as_str().unwrap().to_string(),
            object["kind"].as_str().unwrap().to_string(),
        );
        let (resource, namespaced) =
            served(client, |r| r.api_version == api_version && r.kind == kind).await;
        let name = object["metadata"]["name"].as_str().unwrap();
        api_of(client, namespace, &resource, namespaced)
            .patch(
                name,
                &PatchParams::apply("test-editor").force(),
                &Patch::Apply(object),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {namespace}/{name}: {e}"));
    }
}

/// Reads an object of `resource` (`plural` or `plural.group`, any kind served), `None` when
/// absent.
pub async fn get_any(
    client: &kube::Client,
    namespace: &str,
    resource: &str,
    name: &str,
) -> Option<Value> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let (found, namespaced) = served(client, |r| r.plural == plural && r.group == group).await;
    api_of(client, namespace, &found, namespaced)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get {resource} {namespace}/{name}: {e}"))
        .map(|o| serde_json::to_value(o).unwrap())
}

/// Deletes an object of `resource` (`plural` or `plural.group`).
pub async fn delete_any(client: &kube::Client, namespace: &str, resource: &str, name: &str) {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let (found, namespaced) = served(client, |r| r.plural == plural && r.group == group).await;
    api_of(client, namespace, &found, namespaced)
        .delete(name, &DeleteParams::background())
        .await
        .unwrap_or_else(|e| panic!("delete {resource} {namespace}/{name}: {e}"));
}

/// The manifests of a fixture directory (`fixtures/DIR/*.yaml`, multi-document), with
/// `NAMESPACE` replaced by `namespace`.
pub fn manifests(dir: &str, namespace: &str) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(super::fixture(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("NAMESPACE", namespace);
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).unwrap();
            if !value.is_null() {
                all.push(value);
            }
        }
    }
    all
}

/// Merge-patches an object of `resource` (`plural` or `plural.group`).
pub async fn patch_any(
    client: &kube::Client,
    namespace: &str,
    resource: &str,
    name: &str,
    patch: Value,
) {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let (found, namespaced) = served(client, |r| r.plural == plural && r.group == group).await;
    api_of(client, namespace, &found, namespaced)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {resource} {namespace}/{name}: {e}"));
}
