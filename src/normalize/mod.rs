//! Normalization: one pure function from an object as a server (or a manifest) has it to the
//! canonical form that is compared, hashed and archived.
//!
//! The rules are data ([`RULES`]); each has a test of its own. They are for what is certain on
//! every server (volatile metadata, canonical quantities, empty values the API drops); what
//! depends on a server's version is for the server to say (see `verdict`). The canonical bytes are
//! compact JSON with map keys sorted by their UTF-8 bytes (JSON is YAML 1.2, and unlike a
//! YAML emitter's output it can be recomputed by any tool: `jq -cjS . | sha256sum`).

mod canonical;
mod paths;
mod quantity;
mod rules;
mod table;

use serde_json::Value;

use crate::kinds::Kind;

pub use canonical::{Canonical, ChangeKey, canonical_bytes};
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

/// Human-readable YAML of a normalized object, for diffs and snapshot files: block style as
/// kubectl writes it, and quoted wherever a YAML 1.1 reader (kubectl) could misread a string.
pub fn to_yaml(object: &Value) -> String {
    crate::yaml::to_string(object)
}

#[cfg(test)]
mod tests;
