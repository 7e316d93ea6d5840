//! The normalization rules, as a table: what each strips, folds, defaults or spells
//! canonically, and for which kinds.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{ANNOTATION_PREFIX, MANAGED_LABEL, paths, quantity};
use crate::kinds::Kind;

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
    /// Remove the field at a path when it holds the empty value of its type: for fields the API
    /// serializes with `omitempty` and that mean nothing (or the server's default) when empty.
    RemoveIfEqual(&'static str, Empty),
    /// Spell the quantity at a path canonically (`0.5` → `500m`, `1.5Gi` → `1536Mi`).
    CanonicalQuantity(&'static str),
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

/// The empty value of a scalar field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// `""`.
    String,
    /// `false`.
    False,
    /// `0`.
    Zero,
}

impl Empty {
    fn matches(self, value: &Value) -> bool {
        match self {
            Empty::String => value.as_str() == Some(""),
            Empty::False => value.as_bool() == Some(false),
            Empty::Zero => value.as_f64() == Some(0.0),
        }
    }
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
    /// Whether the rule applies to objects of `kind`.
    pub fn applies_to(&self, kind: &Kind) -> bool {
        match self.applies {
            Applies::All => true,
            Applies::To(kinds) => kinds.contains(&kind.kind),
        }
    }
}

const WORKLOADS: Applies = Applies::To(&["Deployment", "StatefulSet"]);
const STATEFUL_SETS: Applies = Applies::To(&["StatefulSet"]);
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
    // Quantities, where the API holds them (never in ConfigMap data or env values): the server
    // stores them canonically, so `cpu: .5` in a manifest is `500m` on every cluster.
    quantity(
        "container-requests",
        WORKLOADS,
        "spec.template.spec.containers[].resources.requests.*",
    ),
    quantity(
        "container-limits",
        WORKLOADS,
        "spec.template.spec.containers[].resources.limits.*",
    ),
    quantity(
        "init-container-requests",
        WORKLOADS,
        "spec.template.spec.initContainers[].resources.requests.*",
    ),
    quantity(
        "init-container-limits",
        WORKLOADS,
        "spec.template.spec.initContainers[].resources.limits.*",
    ),
    quantity(
        "pod-requests",
        WORKLOADS,
        "spec.template.spec.resources.requests.*",
    ),
    quantity(
        "pod-limits",
        WORKLOADS,
        "spec.template.spec.resources.limits.*",
    ),
    quantity("pod-overhead", WORKLOADS, "spec.template.spec.overhead.*"),
    quantity(
        "empty-dir-size-limit",
        WORKLOADS,
        "spec.template.spec.volumes[].emptyDir.sizeLimit",
    ),
    quantity(
        "ephemeral-volume-requests",
        WORKLOADS,
        "spec.template.spec.volumes[].ephemeral.volumeClaimTemplate.spec.resources.requests.*",
    ),
    quantity(
        "claim-template-requests",
        STATEFUL_SETS,
        "spec.volumeClaimTemplates[].spec.resources.requests.*",
    ),
    quantity(
        "claim-template-limits",
        STATEFUL_SETS,
        "spec.volumeClaimTemplates[].spec.resources.limits.*",
    ),
    quantity("pvc-requests", PVC, "spec.resources.requests.*"),
    quantity("pvc-limits", PVC, "spec.resources.limits.*"),
    // Empty values the server drops (`omitempty`, no meaning when empty) or replaces with its
    // default. Pointer fields, where `false`, `0` or `""` mean something
    // (`automountServiceAccountToken: false`, `replicas: 0`, `storageClassName: ""`), have no
    // rule and reach the replica as written.
    omitted(
        "pod-service-account-alias",
        WORKLOADS,
        "spec.template.spec.serviceAccount",
        Empty::String,
    ),
    omitted(
        "pod-service-account",
        WORKLOADS,
        "spec.template.spec.serviceAccountName",
        Empty::String,
    ),
    omitted(
        "pod-node-name",
        WORKLOADS,
        "spec.template.spec.nodeName",
        Empty::String,
    ),
    omitted(
        "pod-hostname",
        WORKLOADS,
        "spec.template.spec.hostname",
        Empty::String,
    ),
    omitted(
        "pod-subdomain",
        WORKLOADS,
        "spec.template.spec.subdomain",
        Empty::String,
    ),
    omitted(
        "pod-priority-class",
        WORKLOADS,
        "spec.template.spec.priorityClassName",
        Empty::String,
    ),
    omitted(
        "pod-scheduler",
        WORKLOADS,
        "spec.template.spec.schedulerName",
        Empty::String,
    ),
    omitted(
        "pod-restart-policy",
        WORKLOADS,
        "spec.template.spec.restartPolicy",
        Empty::String,
    ),
    omitted(
        "pod-dns-policy",
        WORKLOADS,
        "spec.template.spec.dnsPolicy",
        Empty::String,
    ),
    omitted(
        "pod-host-network",
        WORKLOADS,
        "spec.template.spec.hostNetwork",
        Empty::False,
    ),
    omitted(
        "pod-host-pid",
        WORKLOADS,
        "spec.template.spec.hostPID",
        Empty::False,
    ),
    omitted(
        "pod-host-ipc",
        WORKLOADS,
        "spec.template.spec.hostIPC",
        Empty::False,
    ),
    omitted(
        "container-working-dir",
        WORKLOADS,
        "spec.template.spec.containers[].workingDir",
        Empty::String,
    ),
    omitted(
        "container-pull-policy",
        WORKLOADS,
        "spec.template.spec.containers[].imagePullPolicy",
        Empty::String,
    ),
    omitted(
        "container-termination-message-path",
        WORKLOADS,
        "spec.template.spec.containers[].terminationMessagePath",
        Empty::String,
    ),
    omitted(
        "container-stdin",
        WORKLOADS,
        "spec.template.spec.containers[].stdin",
        Empty::False,
    ),
    omitted(
        "container-stdin-once",
        WORKLOADS,
        "spec.template.spec.containers[].stdinOnce",
        Empty::False,
    ),
    omitted(
        "container-tty",
        WORKLOADS,
        "spec.template.spec.containers[].tty",
        Empty::False,
    ),
    omitted(
        "env-value",
        WORKLOADS,
        "spec.template.spec.containers[].env[].value",
        Empty::String,
    ),
    omitted(
        "mount-read-only",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].readOnly",
        Empty::False,
    ),
    omitted(
        "mount-sub-path",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].subPath",
        Empty::String,
    ),
    omitted(
        "mount-sub-path-expr",
        WORKLOADS,
        "spec.template.spec.containers[].volumeMounts[].subPathExpr",
        Empty::String,
    ),
    omitted(
        "port-name",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].name",
        Empty::String,
    ),
    omitted(
        "port-host-port",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].hostPort",
        Empty::Zero,
    ),
    omitted(
        "port-host-ip",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].hostIP",
        Empty::String,
    ),
    omitted(
        "port-protocol",
        WORKLOADS,
        "spec.template.spec.containers[].ports[].protocol",
        Empty::String,
    ),
    omitted(
        "workload-min-ready",
        WORKLOADS,
        "spec.minReadySeconds",
        Empty::Zero,
    ),
    omitted(
        "deployment-paused",
        Applies::To(&["Deployment"]),
        "spec.paused",
        Empty::False,
    ),
    omitted(
        "stateful-set-pod-management",
        STATEFUL_SETS,
        "spec.podManagementPolicy",
        Empty::String,
    ),
    omitted(
        "secret-type",
        Applies::To(&["Secret"]),
        "type",
        Empty::String,
    ),
    empty_list("container-env", "spec.template.spec.containers[].env"),
    empty_list(
        "container-env-from",
        "spec.template.spec.containers[].envFrom",
    ),
    empty_list(
        "container-mounts",
        "spec.template.spec.containers[].volumeMounts",
    ),
    empty_list("container-ports", "spec.template.spec.containers[].ports"),
    empty_list(
        "container-command",
        "spec.template.spec.containers[].command",
    ),
    empty_list("container-args", "spec.template.spec.containers[].args"),
    empty_list("pod-volumes", "spec.template.spec.volumes"),
    empty_list("pod-init-containers", "spec.template.spec.initContainers"),
    empty_list(
        "pod-image-pull-secrets",
        "spec.template.spec.imagePullSecrets",
    ),
    empty_list("pod-tolerations", "spec.template.spec.tolerations"),
    empty_list("pod-node-selector", "spec.template.spec.nodeSelector"),
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

const fn quantity(name: &'static str, applies: Applies, path: &'static str) -> Rule {
    Rule {
        name,
        applies,
        action: Action::CanonicalQuantity(path),
    }
}

const fn omitted(name: &'static str, applies: Applies, path: &'static str, empty: Empty) -> Rule {
    Rule {
        name,
        applies,
        action: Action::RemoveIfEqual(path, empty),
    }
}

const fn empty_list(name: &'static str, path: &'static str) -> Rule {
    Rule {
        name,
        applies: WORKLOADS,
        action: Action::RemoveIfEmpty(path),
    }
}

/// Applies one rule's action to an object.
pub(super) fn apply(action: Action, object: &mut Value) {
    match action {
        Action::RemoveField(path) => paths::remove(object, path),
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
        Action::RemoveIfEmpty(path) => paths::parents_mut(object, path, &mut |map, key| {
            let empty = match map.get(key) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if empty {
                map.remove(key);
            }
        }),
        Action::RemoveIfEqual(path, empty) => paths::parents_mut(object, path, &mut |map, key| {
            if map.get(key).is_some_and(|v| empty.matches(v)) {
                map.remove(key);
            }
        }),
        Action::CanonicalQuantity(path) => paths::parents_mut(object, path, &mut |map, key| {
            let written = match map.get(key) {
                Some(Value::String(text)) => text.clone(),
                // `cpu: 1` or `cpu: 0.5` in YAML: the server reads numbers as quantities too.
                Some(Value::Number(number)) => number.to_string(),
                _ => return,
            };
            if let Some(canonical) = quantity::canonical(&written) {
                map.insert(key.to_string(), Value::String(canonical));
            }
        }),
        Action::FoldStringData => fold_string_data(object),
        Action::DefaultTypeMeta {
            list,
            api_version,
            kind,
        } => {
            if let Some(Value::Array(items)) = paths::walk_mut(object, list) {
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
