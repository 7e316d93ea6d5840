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
