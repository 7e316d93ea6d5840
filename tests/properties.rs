//! Properties of normalization and the change key, over generated objects.

use k8s_sync::kinds::TABLE;
use k8s_sync::normalize::{ChangeKey, normalize};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys drawn from real object fields, volatile ones included, so rules actually fire.
const KEYS: &[&str] = &[
    "status",
    "uid",
    "name",
    "labels",
    "annotations",
    "spec",
    "data",
    "stringData",
    "replicas",
    "template",
    "containers",
    "image",
    "volumeName",
    "finalizers",
    "managedFields",
    "items",
    "a",
    "b",
    "c",
    "x-y",
    "z.z",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 :/.=_-]{0,12}".prop_map(Value::String),
        // Strings YAML would misread unquoted.
        prop::sample::select(vec![
            "yes", "no", "on", "null", "1.0", "0x1F", "~", "", "- x", "a: b", "#c"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// An object of a synced kind with generated metadata and body.
fn object() -> impl Strategy<Value = (usize, Value)> {
    (0..TABLE.len(), value(), value(), value(), value()).prop_map(|(k, labels, annotations, spec, extra)| {
        let kind = &TABLE[k];
        let mut annotations = match annotations {
            Value::Object(m) => m,
            other => Map::from_iter([("note".to_string(), other)]),
        };
        annotations.insert("kubectl.kubernetes.io/last-applied-configuration".into(), "{}".into());
        annotations.insert("k8s-sync.io/change-key".into(), "sha256:00".into());
        let object = json!({
            "apiVersion": kind.api_version(),
            "kind": kind.kind,
            "metadata": {"name": "n", "namespace": "ns", "labels": labels, "annotations": annotations,
                "uid": "u", "resourceVersion": "1", "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": spec,
            "data": extra.clone(),
            "stringData": extra,
            "status": {"phase": "Bound"},
        });
        (k, object)
    })
}

/// Writes `value` as flow-style YAML with map keys in reverse order and every string quoted.
fn emit_reversed(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                emit_reversed(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n  ");
                }
                emit_reversed(v, out);
            }
            out.push_str(" ]");
        }
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

proptest! {
    #[test]
    fn normalize_is_idempotent((k, object) in object()) {
        let mut once = object;
        normalize(&mut once, &TABLE[k]);
        let mut twice = once.clone();
        normalize(&mut twice, &TABLE[k]);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn change_key_ignores_key_order_and_yaml_formatting((k, object) in object()) {
        let block = serde_yaml::to_string(&object).unwrap();
        let mut flow = String::new();
        emit_reversed(&object, &mut flow);
        let mut keys = Vec::new();
        for text in [block, flow] {
            let mut parsed: Value = serde_yaml::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&parsed, &object, "{}", text);
            normalize(&mut parsed, &TABLE[k]);
            keys.push(ChangeKey::of(&parsed));
        }
        prop_assert_eq!(&keys[0], &keys[1]);
    }

    #[test]
    fn change_key_changes_with_content((k, object) in object(), extra in "[a-z]{1,8}") {
        let mut a = object.clone();
        normalize(&mut a, &TABLE[k]);
        let mut b = a.clone();
        b["metadata"]["labels"] = json!({"added": extra});
        prop_assume!(a != b);
        prop_assert_ne!(ChangeKey::of(&a), ChangeKey::of(&b));
    }
}
