//! Normalization: one pure function from an object as a server (or a manifest) has it to the
//! canonical form that is compared, hashed and archived.
//!
//! The rules are data ([`RULES`]); each has a test of its own. They are for what is certain on
//! every server (volatile metadata, canonical quantities, empty values the API drops); what
//! depends on a server's version is for the server to say (see `verdict`). The canonical bytes are
//! compact JSON with map keys sorted by their UTF-8 bytes (JSON is YAML 1.2, and unlike a
//! YAML emitter's output it can be recomputed by any tool: `jq -cjS . | sha256sum`).

mod paths;
mod quantity;
mod rules;
mod table;

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::kinds::Kind;

pub use quantity::canonical as canonical_quantity;
pub use rules::{Action, Applies, Empty, RULES, Rule};

/// Prefix of the annotations k8s-sync writes for its own bookkeeping.
pub const ANNOTATION_PREFIX: &str = "k8s-sync.io/";
/// Annotation naming the source an object was applied from.
pub const SOURCE_ANNOTATION: &str = "k8s-sync.io/source";
/// Annotation holding the change key k8s-sync applied.
pub const CHANGE_KEY_ANNOTATION: &str = "k8s-sync.io/change-key";

/// Annotation on a replica's object whose prune is held over `--max-prune`: the hold lives
/// on the object itself, so that any copy of k8s-sync (a new leader, a new volume) finds it
/// and holds the prune again until it is released.
pub const PRUNE_HELD_ANNOTATION: &str = "k8s-sync.io/prune-held";

/// Label on every object k8s-sync writes, so replicas' managed objects can be selected.
pub const MANAGED_LABEL: &str = "k8s-sync.io/managed";

/// Normalizes `object`, a `kind` object, in place by applying every rule in [`RULES`].
pub fn normalize(object: &mut Value, kind: &Kind) {
    for rule in RULES.iter().filter(|r| r.applies_to(kind)) {
        rules::apply(rule.action, object);
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
mod tests;
