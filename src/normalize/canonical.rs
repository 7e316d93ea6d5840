//! The canonical form of a normalized object and its change key.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical bytes of a normalized object: compact JSON, map keys sorted.
///
/// `serde_json`'s map is ordered by key, so serializing the value is enough.
pub fn canonical_bytes(object: &Value) -> Vec<u8> {
    serde_json::to_vec(object).expect("a JSON value always serializes")
}

/// A normalized object held in its canonical form (compact JSON, keys sorted) rather than as a
/// parsed tree: a pass mostly compares change keys, and the bytes take a fraction of a tree's
/// memory (a tree of a 1 KB ConfigMap takes several KB). Clones share the bytes, so a replica's
/// copy that is the primary's object byte for byte costs nothing more than a pointer.
#[derive(Clone, PartialEq, Eq)]
pub struct Canonical(Arc<str>);

impl Canonical {
    /// The canonical form of a normalized object.
    pub fn of(object: &Value) -> Self {
        Canonical(Arc::from(
            serde_json::to_string(object).expect("a JSON value always serializes"),
        ))
    }

    /// The object as a tree, to compare field by field or change.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).expect("canonical JSON parses back")
    }

    /// The canonical bytes, which the change key hashes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The change key of these bytes.
    pub fn change_key(&self) -> ChangeKey {
        ChangeKey::of_bytes(self.as_bytes())
    }

    /// Whether both hold the same allocation (so the same bytes, without comparing them).
    pub fn shares(&self, other: &Canonical) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Canonical {
    // The bytes may be a Secret's: debug output shows their size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Canonical({} bytes)", self.0.len())
    }
}

/// The sha256 of an object's canonical bytes: equal objects have equal keys on every machine.
///
/// Held as its text, `sha256:<64 hex digits>`, inline: a pass keeps a key or three per object
/// and replica, and a heap allocation each would cost more than the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeKey([u8; KEY_LEN]);

const PREFIX: &str = "sha256:";
const KEY_LEN: usize = PREFIX.len() + 64;

impl ChangeKey {
    /// The change key of a normalized object.
    pub fn of(object: &Value) -> Self {
        Self::of_bytes(&canonical_bytes(object))
    }

    /// The change key of canonical bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut key = [0; KEY_LEN];
        key[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
        hex::encode_to_slice(Sha256::digest(bytes), &mut key[PREFIX.len()..])
            .expect("a sha256 is 64 hex digits");
        ChangeKey(key)
    }

    /// Accepts a key read back from an annotation or manifest, if it has the right shape.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix(PREFIX)?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| ChangeKey(text.as_bytes().try_into().expect("checked length")))
    }

    /// The key as text, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a key is ASCII")
    }
}

impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChangeKey({:?})", self.as_str())
    }
}

impl serde::Serialize for ChangeKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_form_round_trips_and_keys_as_the_tree_does() {
        let object = serde_json::json!({"b": {"y": [1, 2.5, "x"], "a": null}, "a": true});
        let canonical = Canonical::of(&object);
        assert_eq!(canonical.as_bytes(), canonical_bytes(&object).as_slice());
        assert_eq!(canonical.to_value(), object);
        assert_eq!(canonical.change_key(), ChangeKey::of(&object));
        assert!(canonical.shares(&canonical.clone()));
        assert!(!canonical.shares(&Canonical::of(&object)));
    }

    #[test]
    fn a_key_reads_back_from_its_text_and_nothing_else_does() {
        let key = ChangeKey::of(&serde_json::json!({"a": 1}));
        assert_eq!(key.as_str().len(), 71);
        assert_eq!(ChangeKey::parse(key.as_str()), Some(key));
        assert_eq!(serde_json::to_value(key).unwrap(), key.as_str());
        let upper = format!("sha256:{}", key.as_str()[7..].to_uppercase());
        let short = &key.as_str()[..70];
        for text in ["", "sha256:", "sha1:00", &upper, short] {
            assert_eq!(ChangeKey::parse(text), None, "{text}");
        }
    }

    #[test]
    fn debug_output_shows_no_content() {
        let secret = serde_json::json!({"data": {"password": "aHVudGVyMg=="}});
        let shown = format!("{:?}", Canonical::of(&secret));
        assert!(!shown.contains("aHVudGVyMg"), "{shown}");
    }
}
