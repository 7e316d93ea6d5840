//! What a normalization rule is and does: the kinds it applies to and its action (strip, fold,
//! default, spell canonically). The rules themselves are the table in `table.rs`.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{paths, quantity};
use crate::kinds::Kind;

pub use super::table::RULES;

/// Which kinds a rule applies to.
#[derive(Debug, Clone, Copy)]
pub enum Applies {
    /// Every synced kind.
    All,
    /// Only the kind table's rows with these `kind` names.
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
    /// Remove an address the cluster allocated (`spec.clusterIP`, `spec.clusterIPs`): every
    /// value but `None` (a headless Service's choice, which the server keeps as written).
    RemoveAllocatedAddress(&'static str),
    /// Remove the field at `path`, and the fields `also`, when it holds `value`: a default that
    /// one cluster spells out and another may not share (`ipFamilyPolicy: SingleStack` and the
    /// families it chose).
    RemoveDefault {
        /// The field that holds the default.
        path: &'static str,
        /// The default.
        value: &'static str,
        /// Fields that go with it.
        also: &'static [&'static str],
    },
    /// Remove the entries of a ServiceAccount's `secrets` that name its own legacy token
    /// Secrets (`<name>-token-<suffix>`): each cluster makes its own, and they are never synced.
    RemoveOwnTokenSecrets,
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
            // Rows of the kind table only: another group's `StatefulSet` (OpenKruise's) or
            // `Service` (Knative's) is not the built-in kind these rules are written for.
            Applies::To(kinds) => kind.in_table && kinds.contains(&kind.kind),
        }
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
        Action::RemoveAllocatedAddress(path) => {
            paths::parents_mut(object, path, &mut |map, key| {
                let headless = match map.get(key) {
                    Some(Value::String(ip)) => ip == "None",
                    Some(Value::Array(ips)) => ips.iter().all(|ip| ip == "None"),
                    _ => return,
                };
                if !headless {
                    map.remove(key);
                }
            })
        }
        Action::RemoveDefault { path, value, also } => {
            if paths::walk_mut(object, path).is_some_and(|v| v == value) {
                paths::remove(object, path);
                for other in also {
                    paths::remove(object, other);
                }
            }
        }
        Action::RemoveOwnTokenSecrets => {
            let prefix = match object.pointer("/metadata/name").and_then(Value::as_str) {
                Some(name) => format!("{name}-token-"),
                None => return,
            };
            if let Some(Value::Array(secrets)) = object.get_mut("secrets") {
                secrets.retain(|s| {
                    !s.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.starts_with(&prefix))
                });
                if secrets.is_empty() {
                    object.as_object_mut().map(|o| o.remove("secrets"));
                }
            }
        }
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
