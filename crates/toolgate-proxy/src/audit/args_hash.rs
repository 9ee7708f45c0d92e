//! `args_hash`: a keyed hash of a call's canonical arguments.
//!
//! Keyed (HMAC-SHA256), so that someone holding the log cannot confirm a guess of the
//! arguments; canonical (sorted keys, normalised numbers), so that the same arguments written
//! differently hash the same. The key is made once and kept with mode 0600.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Clone)]
pub struct ArgsHasher {
    /// The HMAC already keyed: each hash starts from a copy of it rather than hashing the
    /// key's two pads again.
    keyed: Hmac<Sha256>,
}

impl ArgsHasher {
    /// Loads the key from `path`, creating it (0600) when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<ArgsHasher> {
        let text = crate::secret_file::load_or_create_hex_secret(path)?;
        let key = decode_hex(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a 64-digit hex key; delete it to make a new one",
                    path.display()
                ),
            )
        })?;
        Ok(ArgsHasher::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> ArgsHasher {
        // HMAC pads a key shorter than the hash's 64-byte block with zeros; padding it here
        // gives the same MAC through the constructor that cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        ArgsHasher {
            keyed: <Hmac<Sha256> as Mac>::new(&block.into()),
        }
    }

    /// `hmac-sha256:<hex>` of the canonical form of `arguments`.
    pub fn hash(&self, arguments: &Value) -> String {
        let mut mac = self.keyed.clone();
        mac.update(canonical_json(arguments).as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// The one canonical JSON (`toolgate_policy::canonical`): the audit log's hashes, approval
/// fingerprints and counter keys all see the same arguments as the same text.
pub use toolgate_policy::canonical::canonical_json;

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_keyed_copy_gives_the_standard_hmac_of_the_canonical_text() {
        let key = [7u8; 32];
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(br#"{"a":1,"b":"x"}"#);
        let expected = format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()));
        let hasher = ArgsHasher::from_key(key);
        assert_eq!(hasher.hash(&json!({"b": "x", "a": 1.0})), expected);
        // Every hash starts from the keyed state, not from the one before.
        assert_eq!(hasher.hash(&json!({"b": "x", "a": 1.0})), expected);
    }

    #[test]
    fn canonical_form_ignores_key_order_and_number_spelling() {
        assert_eq!(
            canonical_json(&json!({"b": 1.0, "a": [2, {"d": 1, "c": 0}]})),
            r#"{"a":[2,{"c":0,"d":1}],"b":1}"#
        );
        let h = ArgsHasher::from_key([7; 32]);
        assert_eq!(
            h.hash(&json!({"a": 1, "b": 2})),
            h.hash(&json!({"b": 2.0, "a": 1}))
        );
        assert_ne!(h.hash(&json!({"a": 1})), h.hash(&json!({"a": 2})));
        // Beyond 2^53 too: an exact reader runs these as two different values.
        let big: Value = serde_json::from_str(r#"{"a": 9000000000000001}"#).unwrap();
        let near: Value = serde_json::from_str(r#"{"a": 9000000000000000.0}"#).unwrap();
        assert_ne!(h.hash(&big), h.hash(&near));
        assert_ne!(
            h.hash(&json!({"a": 1})),
            ArgsHasher::from_key([8; 32]).hash(&json!({"a": 1}))
        );
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.key");
        let a = ArgsHasher::load_or_create(&path).unwrap();
        let b = ArgsHasher::load_or_create(&path).unwrap();
        assert_eq!(a.hash(&json!(1)), b.hash(&json!(1)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
