//! Keeping Secret values out of everything k8s-sync prints or writes.
//!
//! Values are replaced by placeholders before an object reaches a diff, a log line or an
//! archive. Not even a hash of a value is shown: short passwords fall to a dictionary.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

/// What stands for a value in archives and diffs. It is not valid base64, so it can never be
/// mistaken for real data.
pub const REDACTED: &str = "<redacted>";
/// What stands for a value that differs between the two sides of a diff.
pub const REDACTED_CHANGED: &str = "<redacted, changed>";

/// Whether an object is a Secret.
pub fn is_secret(object: &Value) -> bool {
    // By kind alone, whatever the group: a custom resource that calls itself `Secret` is
    // redacted too, rather than a Secret missed.
    object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Replaces every value in a Secret's `data` and `stringData` with [`REDACTED`].
pub fn redact(object: &mut Value) {
    if !is_secret(object) {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = object.get_mut(field) {
            map.values_mut()
                .for_each(|v| *v = Value::String(REDACTED.into()));
        }
    }
}

/// Replaces every value of a Secret (base64 as stored, and decoded) found in `message`, such as
/// a server error that quotes the object, with [`REDACTED`]. Values shorter than three
/// characters are left: replacing them would garble the message and they protect nothing.
pub fn scrub(message: &str, secret: &Value) -> String {
    use base64::Engine as _;
    let mut values: Vec<String> = Vec::new();
    for field in ["data", "stringData"] {
        for value in secret
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            let Some(text) = value.as_str() else { continue };
            values.push(text.to_string());
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text) {
                values.push(String::from_utf8_lossy(&decoded).into_owned());
            }
        }
    }
    // Longest first, so a value containing another is replaced whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut scrubbed = message.to_string();
    for value in values.iter().filter(|v| v.len() >= 3) {
        scrubbed = scrubbed.replace(value.as_str(), REDACTED);
    }
    scrubbed
}

/// Which keys of a Secret's `data` a change adds, removes or changes. Names only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretKeys {
    /// Keys only the desired object has.
    pub added: BTreeSet<String>,
    /// Keys only the live object has.
    pub removed: BTreeSet<String>,
    /// Keys both have, with different values.
    pub changed: BTreeSet<String>,
}

impl SecretKeys {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Masks the `data` of a desired/live pair of Secrets for display, and says which keys differ.
///
/// Values equal on both sides become [`REDACTED`]; a changed value becomes
/// [`REDACTED_CHANGED`] on the desired side, so a unified diff still shows the key as changed.
pub fn mask_pair(desired: Option<&mut Value>, live: Option<&mut Value>) -> SecretKeys {
    let data = |v: &Option<&mut Value>| -> Map<String, Value> {
        v.as_ref()
            .and_then(|v| v.get("data"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (d, l) = (data(&desired), data(&live));
    let mut keys = SecretKeys::default();
    for (key, value) in &d {
        match l.get(key) {
            None => {
                keys.added.insert(key.clone());
            }
            Some(other) if other != value => {
                keys.changed.insert(key.clone());
            }
            Some(_) => {}
        }
    }
    keys.removed = l.keys().filter(|k| !d.contains_key(*k)).cloned().collect();

    if let Some(desired) = desired {
        redact(desired);
        if let Some(Value::Object(map)) = desired.get_mut("data") {
            for key in &keys.changed {
                map.insert(key.clone(), Value::String(REDACTED_CHANGED.into()));
            }
        }
    }
    if let Some(live) = live {
        redact(live);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_data_and_string_data_of_secrets_only() {
        let mut secret =
            json!({"kind": "Secret", "data": {"a": "aHVudGVy"}, "stringData": {"b": "x"}});
        redact(&mut secret);
        assert_eq!(secret["data"]["a"], REDACTED);
        assert_eq!(secret["stringData"]["b"], REDACTED);
        let mut cm = json!({"kind": "ConfigMap", "data": {"a": "plain"}});
        redact(&mut cm);
        assert_eq!(cm["data"]["a"], "plain");
    }

    #[test]
    fn scrubs_values_from_messages() {
        let secret = json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}, "stringData": {"t": "tok-123"}});
        let message = "invalid value \"hunter2\" (aHVudGVyMg==) near tok-123";
        assert_eq!(
            scrub(message, &secret),
            "invalid value \"<redacted>\" (<redacted>) near <redacted>"
        );
    }

    #[test]
    fn masks_a_pair_and_names_the_changed_keys() {
        let mut desired =
            json!({"kind": "Secret", "data": {"same": "MQ==", "changed": "Mg==", "new": "Mw=="}});
        let mut live =
            json!({"kind": "Secret", "data": {"same": "MQ==", "changed": "OQ==", "old": "NA=="}});
        let keys = mask_pair(Some(&mut desired), Some(&mut live));
        assert_eq!(keys.added, ["new".to_string()].into());
        assert_eq!(keys.removed, ["old".to_string()].into());
        assert_eq!(keys.changed, ["changed".to_string()].into());
        assert_eq!(
            desired["data"],
            json!({"same": REDACTED, "changed": REDACTED_CHANGED, "new": REDACTED})
        );
        assert_eq!(
            live["data"],
            json!({"same": REDACTED, "changed": REDACTED, "old": REDACTED})
        );
        for text in [desired.to_string(), live.to_string()] {
            for value in ["MQ==", "Mg==", "Mw==", "OQ==", "NA=="] {
                assert!(!text.contains(value));
            }
        }
    }
}
