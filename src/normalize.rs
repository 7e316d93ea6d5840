//! Normalization: one pure function from an object as a server (or a manifest) has it to the
//! canonical form that is compared, hashed and archived.
//!
//! The rules are data ([`RULES`]); each has a test of its own below. The canonical bytes are
//! compact JSON with map keys sorted by their UTF-8 bytes (JSON is YAML 1.2, and unlike a
//! YAML emitter's output it can be recomputed by any tool: `jq -cjS . | sha256sum`).

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::kinds::Kind;

/// Prefix of the annotations k8s-sync writes for its own bookkeeping.
pub const ANNOTATION_PREFIX: &str = "k8s-sync.io/";
/// Annotation naming the source an object was applied from.
pub const SOURCE_ANNOTATION: &str = "k8s-sync.io/source";
/// Annotation holding the change key k8s-sync applied.
pub const CHANGE_KEY_ANNOTATION: &str = "k8s-sync.io/change-key";

/// Label on every object k8s-sync writes, so replicas' managed objects can be selected.
pub const MANAGED_LABEL: &str = "k8s-sync.io/managed";

/// Which kinds a rule applies to.
#[derive(Debug, Clone, Copy)]
pub enum Applies {
    /// Every synced kind.
    All,
    /// Only the kinds with these `kind` names.
    To(&'static [&'static str]),
}

/// What a rule does to an object.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Remove the field at a path. `a.b` walks maps; `a[].b` walks every element of a list.
    RemoveField(&'static str),
    /// Remove one annotation.
    RemoveAnnotation(&'static str),
    /// Remove every annotation whose key starts with the prefix.
    RemoveAnnotationPrefix(&'static str),
    /// Remove one label.
    RemoveLabel(&'static str),
    /// Remove one entry of `metadata.finalizers`.
    RemoveFinalizer(&'static str),
    /// Remove map entries whose value is `null`, at any depth.
    RemoveNulls,
    /// Remove the field at a path when it is an empty map or list.
    RemoveIfEmpty(&'static str),
    /// Fold a Secret's `stringData` into `data`, base64-encoded; `stringData` wins on a clash,
    /// as it does on the server.
    FoldStringData,
    /// Give each entry of a list at a path the `apiVersion`/`kind` the server defaults.
    DefaultTypeMeta {
        /// Path of the list.
        list: &'static str,
        /// The `apiVersion` to default.
        api_version: &'static str,
        /// The `kind` to default.
        kind: &'static str,
    },
}

/// One normalization rule.
#[derive(Debug)]
pub struct Rule {
    /// Short name, used in tests and docs.
    pub name: &'static str,
    /// Which kinds it applies to.
    pub applies: Applies,
    /// What it does.
    pub action: Action,
}

impl Rule {
    fn applies_to(&self, kind: &Kind) -> bool {
        match self.applies {
            Applies::All => true,
            Applies::To(kinds) => kinds.contains(&kind.kind),
        }
    }
}

const WORKLOADS: Applies = Applies::To(&["Deployment", "StatefulSet"]);
const PVC: Applies = Applies::To(&["PersistentVolumeClaim"]);

/// The normalization rules, applied in order.
pub static RULES: &[Rule] = &[
    // Server-written identity, versioning and bookkeeping: differs on every cluster.
    strip("uid", "metadata.uid"),
    strip("resource-version", "metadata.resourceVersion"),
    strip("generation", "metadata.generation"),
    strip("creation-timestamp", "metadata.creationTimestamp"),
    strip("deletion-timestamp", "metadata.deletionTimestamp"),
    strip(
        "deletion-grace-period",
        "metadata.deletionGracePeriodSeconds",
    ),
    strip("self-link", "metadata.selfLink"),
    strip("managed-fields", "metadata.managedFields"),
    // Owners are objects of the source cluster; their uids mean nothing on a replica.
    strip("owner-references", "metadata.ownerReferences"),
    strip("status", "status"),
    Rule {
        name: "last-applied-configuration",
        applies: Applies::All,
        // It holds a whole copy of the object, Secret values included.
        action: Action::RemoveAnnotation("kubectl.kubernetes.io/last-applied-configuration"),
    },
    Rule {
        name: "own-annotations",
        applies: Applies::All,
        action: Action::RemoveAnnotationPrefix(ANNOTATION_PREFIX),
    },
    Rule {
        name: "own-label",
        applies: Applies::All,
        action: Action::RemoveLabel(MANAGED_LABEL),
    },
    Rule {
        name: "deployment-revision",
        applies: WORKLOADS,
        action: Action::RemoveAnnotation("deployment.kubernetes.io/revision"),
    },
    Rule {
        name: "claim-template-type-meta",
        applies: Applies::To(&["StatefulSet"]),
        action: Action::DefaultTypeMeta {
            list: "spec.volumeClaimTemplates",
            api_version: "v1",
            kind: "PersistentVolumeClaim",
        },
    },
    Rule {
        name: "claim-template-status",
        applies: Applies::To(&["StatefulSet"]),
        // The server stores `status: {phase: Pending}` in every claim template.
        action: Action::RemoveField("spec.volumeClaimTemplates[].status"),
    },
    Rule {
        name: "pvc-volume-name",
        applies: PVC,
        // The bound volume is a fact of the cluster the claim lives in.
        action: Action::RemoveField("spec.volumeName"),
    },
    pvc_annotation("pvc-bind-completed", "pv.kubernetes.io/bind-completed"),
    pvc_annotation(
        "pvc-bound-by-controller",
        "pv.kubernetes.io/bound-by-controller",
    ),
    pvc_annotation(
        "pvc-storage-provisioner",
        "volume.kubernetes.io/storage-provisioner",
    ),
    pvc_annotation(
        "pvc-beta-storage-provisioner",
        "volume.beta.kubernetes.io/storage-provisioner",
    ),
    pvc_annotation("pvc-selected-node", "volume.kubernetes.io/selected-node"),
    Rule {
        name: "pvc-protection-finalizer",
        applies: PVC,
        action: Action::RemoveFinalizer("kubernetes.io/pvc-protection"),
    },
    Rule {
        name: "secret-string-data",
        applies: Applies::To(&["Secret"]),
        action: Action::FoldStringData,
    },
    Rule {
        name: "null-fields",
        applies: Applies::All,
        // `creationTimestamp: null` in pod templates, `labels: null` in hand-written YAML:
        // the server treats a null as absent, so the canonical form does too.
        action: Action::RemoveNulls,
    },
    Rule {
        name: "empty-annotations",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.annotations"),
    },
    Rule {
        name: "empty-labels",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.labels"),
    },
    Rule {
        name: "empty-finalizers",
        applies: Applies::All,
        action: Action::RemoveIfEmpty("metadata.finalizers"),
    },
];

const fn strip(name: &'static str, path: &'static str) -> Rule {
    Rule {
        name,
        applies: Applies::All,
        action: Action::RemoveField(path),
    }
}

const fn pvc_annotation(name: &'static str, key: &'static str) -> Rule {
    Rule {
        name,
        applies: PVC,
        action: Action::RemoveAnnotation(key),
    }
}

/// Normalizes `object`, a `kind` object, in place by applying every rule in [`RULES`].
pub fn normalize(object: &mut Value, kind: &Kind) {
    for rule in RULES.iter().filter(|r| r.applies_to(kind)) {
        apply(rule.action, object);
    }
}

fn apply(action: Action, object: &mut Value) {
    match action {
        Action::RemoveField(path) => remove_path(object, path),
        Action::RemoveAnnotation(key) => {
            if let Some(annotations) = annotations_mut(object) {
                annotations.remove(key);
            }
        }
        Action::RemoveAnnotationPrefix(prefix) => {
            if let Some(annotations) = annotations_mut(object) {
                annotations.retain(|k, _| !k.starts_with(prefix));
            }
        }
        Action::RemoveLabel(key) => {
            if let Some(Value::Object(labels)) = object.pointer_mut("/metadata/labels") {
                labels.remove(key);
            }
        }
        Action::RemoveFinalizer(name) => {
            if let Some(Value::Array(finalizers)) = object.pointer_mut("/metadata/finalizers") {
                finalizers.retain(|f| f.as_str() != Some(name));
            }
        }
        Action::RemoveNulls => remove_nulls(object),
        Action::RemoveIfEmpty(path) => {
            let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
            if let Some(Value::Object(map)) = walk_mut(object, parent) {
                let empty = match map.get(leaf) {
                    Some(Value::Object(m)) => m.is_empty(),
                    Some(Value::Array(a)) => a.is_empty(),
                    _ => false,
                };
                if empty {
                    map.remove(leaf);
                }
            }
        }
        Action::FoldStringData => fold_string_data(object),
        Action::DefaultTypeMeta {
            list,
            api_version,
            kind,
        } => {
            if let Some(Value::Array(items)) = walk_mut(object, list) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.entry("apiVersion")
                        .or_insert_with(|| api_version.into());
                    item.entry("kind").or_insert_with(|| kind.into());
                }
            }
        }
    }
}

fn annotations_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
}

/// Walks a plain dotted path of map keys.
fn walk_mut<'a>(mut value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    for key in path.split('.').filter(|k| !k.is_empty()) {
        value = value.as_object_mut()?.get_mut(key)?;
    }
    Some(value)
}

/// Removes the field at a path where `[]` after a key means "in every element of that list".
fn remove_path(value: &mut Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    match (head.strip_suffix("[]"), rest) {
        (Some(list), Some(rest)) => {
            if let Some(Value::Array(items)) = map.get_mut(list) {
                for item in items {
                    remove_path(item, rest);
                }
            }
        }
        (None, Some(rest)) => {
            if let Some(child) = map.get_mut(head) {
                remove_path(child, rest);
            }
        }
        (_, None) => {
            map.remove(head);
        }
    }
}

fn remove_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(remove_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_nulls),
        _ => {}
    }
}

fn fold_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    let data = data.as_object_mut().expect("made an object above");
    for (key, value) in string_data {
        let text = match value {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        data.insert(key, Value::String(encoded));
    }
}

/// The canonical bytes of a normalized object: compact JSON, map keys sorted.
///
/// `serde_json`'s map is ordered by key, so serializing the value is enough.
pub fn canonical_bytes(object: &Value) -> Vec<u8> {
    serde_json::to_vec(object).expect("a JSON value always serializes")
}

/// Human-readable YAML of a normalized object, for diffs and snapshot files: block style as
/// kubectl writes it, and quoted wherever a YAML 1.1 reader (kubectl) could misread a string.
pub fn to_yaml(object: &Value) -> String {
    crate::yaml::to_string(object)
}

/// The sha256 of an object's canonical bytes: equal objects have equal keys on every machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ChangeKey(String);

impl ChangeKey {
    /// The change key of a normalized object.
    pub fn of(object: &Value) -> Self {
        Self::of_bytes(&canonical_bytes(object))
    }

    /// The change key of canonical bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ChangeKey(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Accepts a key read back from an annotation or manifest, if it has the right shape.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| ChangeKey(text.to_string()))
    }

    /// The key as text, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::by_plural;
    use serde_json::json;

    fn rule(name: &str) -> &'static Rule {
        RULES
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name}"))
    }

    /// Applies one rule to `before` and checks the result is `after`.
    fn check(name: &str, plural: &str, before: Value, after: Value) {
        let kind = by_plural(plural).unwrap();
        let rule = rule(name);
        assert!(rule.applies_to(kind), "{name} does not apply to {plural}");
        let mut object = before;
        apply(rule.action, &mut object);
        assert_eq!(object, after, "rule {name}");
    }

    fn with_metadata(field: &str, value: Value) -> Value {
        json!({"kind": "ConfigMap", "metadata": {"name": "a", field: value}})
    }

    #[test]
    fn strips_server_metadata() {
        let cases = [
            ("uid", "uid", json!("4f1c")),
            ("resource-version", "resourceVersion", json!("812")),
            ("generation", "generation", json!(3)),
            (
                "creation-timestamp",
                "creationTimestamp",
                json!("2026-01-01T00:00:00Z"),
            ),
            (
                "deletion-timestamp",
                "deletionTimestamp",
                json!("2026-01-01T00:00:00Z"),
            ),
            (
                "deletion-grace-period",
                "deletionGracePeriodSeconds",
                json!(30),
            ),
            ("self-link", "selfLink", json!("/api/v1/namespaces/a")),
            (
                "managed-fields",
                "managedFields",
                json!([{"manager": "kubectl"}]),
            ),
            ("owner-references", "ownerReferences", json!([{"uid": "1"}])),
        ];
        for (name, field, value) in cases {
            check(
                name,
                "configmaps",
                with_metadata(field, value),
                json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
            );
        }
    }

    #[test]
    fn strips_status() {
        check(
            "status",
            "deployments",
            json!({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}),
            json!({"spec": {"replicas": 1}}),
        );
    }

    #[test]
    fn strips_last_applied_configuration() {
        check(
            "last-applied-configuration",
            "secrets",
            json!({"metadata": {"annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"aHVudGVy\"}}",
                "team": "a"}}}),
            json!({"metadata": {"annotations": {"team": "a"}}}),
        );
    }

    #[test]
    fn strips_own_annotations() {
        check(
            "own-annotations",
            "configmaps",
            json!({"metadata": {"annotations": {
                SOURCE_ANNOTATION: "primary", CHANGE_KEY_ANNOTATION: "sha256:00", "keep": "1"}}}),
            json!({"metadata": {"annotations": {"keep": "1"}}}),
        );
    }

    #[test]
    fn strips_own_label() {
        check(
            "own-label",
            "secrets",
            json!({"metadata": {"labels": {MANAGED_LABEL: "true", "app": "db"}}}),
            json!({"metadata": {"labels": {"app": "db"}}}),
        );
    }

    #[test]
    fn strips_deployment_revision() {
        for plural in ["deployments", "statefulsets"] {
            check(
                "deployment-revision",
                plural,
                json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "4"}}}),
                json!({"metadata": {"annotations": {}}}),
            );
        }
        assert!(!rule("deployment-revision").applies_to(by_plural("configmaps").unwrap()));
    }

    #[test]
    fn defaults_claim_template_type_meta() {
        check(
            "claim-template-type-meta",
            "statefulsets",
            json!({"spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "data"}},
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "logs"}}]}}),
            json!({"spec": {"volumeClaimTemplates": [
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}},
                {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "logs"}}]}}),
        );
    }

    #[test]
    fn strips_claim_template_status() {
        check(
            "claim-template-status",
            "statefulsets",
            json!({"spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "a"}, "status": {"phase": "Pending"}},
                {"metadata": {"name": "b"}, "status": {"phase": "Pending"}}]}}),
            json!({"spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}}),
        );
    }

    #[test]
    fn strips_pvc_volume_name() {
        check(
            "pvc-volume-name",
            "persistentvolumeclaims",
            json!({"spec": {"volumeName": "pvc-1f2e", "storageClassName": "standard"}}),
            json!({"spec": {"storageClassName": "standard"}}),
        );
        assert!(!rule("pvc-volume-name").applies_to(by_plural("statefulsets").unwrap()));
    }

    #[test]
    fn strips_pvc_binding_annotations() {
        let cases = [
            ("pvc-bind-completed", "pv.kubernetes.io/bind-completed"),
            (
                "pvc-bound-by-controller",
                "pv.kubernetes.io/bound-by-controller",
            ),
            (
                "pvc-storage-provisioner",
                "volume.kubernetes.io/storage-provisioner",
            ),
            (
                "pvc-beta-storage-provisioner",
                "volume.beta.kubernetes.io/storage-provisioner",
            ),
            ("pvc-selected-node", "volume.kubernetes.io/selected-node"),
        ];
        for (name, key) in cases {
            check(
                name,
                "persistentvolumeclaims",
                json!({"metadata": {"annotations": {key: "yes", "owner": "team-a"}}}),
                json!({"metadata": {"annotations": {"owner": "team-a"}}}),
            );
            assert!(!rule(name).applies_to(by_plural("configmaps").unwrap()));
        }
    }

    #[test]
    fn strips_pvc_protection_finalizer() {
        check(
            "pvc-protection-finalizer",
            "persistentvolumeclaims",
            json!({"metadata": {"finalizers": ["kubernetes.io/pvc-protection", "example.com/keep"]}}),
            json!({"metadata": {"finalizers": ["example.com/keep"]}}),
        );
    }

    #[test]
    fn folds_string_data_into_data() {
        check(
            "secret-string-data",
            "secrets",
            json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hunter2", "c": "z"}}),
            json!({"data": {"a": "eA==", "b": "aHVudGVyMg==", "c": "eg=="}}),
        );
        check(
            "secret-string-data",
            "secrets",
            json!({"stringData": {"token": "t"}}),
            json!({"data": {"token": "dA=="}}),
        );
    }

    #[test]
    fn removes_nulls_at_any_depth() {
        check(
            "null-fields",
            "deployments",
            json!({"metadata": {"labels": null}, "spec": {"template": {
                "metadata": {"creationTimestamp": null}, "spec": {"containers": [{"name": "a", "args": null}]}}}}),
            json!({"metadata": {}, "spec": {"template": {
                "metadata": {}, "spec": {"containers": [{"name": "a"}]}}}}),
        );
    }

    #[test]
    fn removes_emptied_metadata_maps() {
        for (name, field, empty) in [
            ("empty-annotations", "annotations", json!({})),
            ("empty-labels", "labels", json!({})),
            ("empty-finalizers", "finalizers", json!([])),
        ] {
            check(
                name,
                "configmaps",
                with_metadata(field, empty),
                json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
            );
            // Non-empty ones stay.
            let kept = with_metadata(field, json!(["x"]));
            check(name, "configmaps", kept.clone(), kept);
        }
    }

    #[test]
    fn every_rule_has_a_test() {
        // The names the tests above exercise; a new rule must be added here with its test.
        let tested = [
            "uid",
            "resource-version",
            "generation",
            "creation-timestamp",
            "deletion-timestamp",
            "deletion-grace-period",
            "self-link",
            "managed-fields",
            "owner-references",
            "status",
            "last-applied-configuration",
            "own-annotations",
            "own-label",
            "deployment-revision",
            "claim-template-type-meta",
            "claim-template-status",
            "pvc-volume-name",
            "pvc-bind-completed",
            "pvc-bound-by-controller",
            "pvc-storage-provisioner",
            "pvc-beta-storage-provisioner",
            "pvc-selected-node",
            "pvc-protection-finalizer",
            "secret-string-data",
            "null-fields",
            "empty-annotations",
            "empty-labels",
            "empty-finalizers",
        ];
        let names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), tested.len(), "{names:?}");
        for name in names {
            assert!(tested.contains(&name), "rule {name} has no test");
        }
    }

    #[test]
    fn change_key_is_sha256_of_sorted_compact_json() {
        let object = json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
        assert_eq!(
            String::from_utf8(canonical_bytes(&object)).unwrap(),
            r#"{"a":{"c":"x","d":[true,null]},"b":1}"#
        );
        // sha256 of the bytes above, as `printf %s '…' | sha256sum` prints it.
        assert_eq!(
            ChangeKey::of(&object).as_str(),
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(br#"{"a":{"c":"x","d":[true,null]},"b":1}"#))
            )
        );
        assert!(ChangeKey::parse(ChangeKey::of(&object).as_str()).is_some());
        assert!(ChangeKey::parse("sha256:xyz").is_none());
        assert!(ChangeKey::parse("md5:00").is_none());
    }
}
