//! API keys and bypass keys, held only as SHA-256 digests and compared in constant time.
//!
//! A config file may list a key in clear (`"ak_…"`) or as its digest (`"sha256:<64 hex>"`, as
//! printed by `trustcaptcha-server hash-key`); either way the server keeps only the digest.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The digest of a secret key. Its `Debug` output never shows the digest either.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The digest of a key given in clear. Surrounding whitespace is ignored, as the official
    /// clients trim the key before sending it.
    #[must_use]
    pub fn of(key: &str) -> Self {
        KeyHash(Sha256::digest(key.trim().as_bytes()).into())
    }

    /// Parses a config entry: `sha256:<64 hex digits>` or a key in clear.
    ///
    /// # Errors
    ///
    /// When the entry is empty, or claims to be a digest but is not 64 hex digits.
    pub fn from_config(entry: &str) -> Result<Self, &'static str> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("a key must not be empty");
        }
        match entry.strip_prefix("sha256:") {
            Some(digest) => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(digest, &mut bytes)
                    .map_err(|_| "a sha256: key must be followed by 64 hex digits")?;
                Ok(KeyHash(bytes))
            }
            None => Ok(KeyHash::of(entry)),
        }
    }

    /// The `sha256:<hex>` form to put in a config file instead of the key.
    #[must_use]
    pub fn to_config(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }

    /// Whether `presented` is among `keys`. Every candidate is compared in constant time, so the
    /// answer's timing does not tell how much of a digest matched.
    #[must_use]
    pub fn is_among(&self, keys: &[KeyHash]) -> bool {
        keys.iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.0.ct_eq(&self.0)
            })
            .into()
    }
}

/// Keys given in clear must be at least this long, so that guessing them is hopeless.
pub const MIN_KEY_CHARS: usize = 16;

/// A configuration entry (`sha256:<hex>`, or a key in clear of at least [`MIN_KEY_CHARS`]).
/// Errors never repeat the entry: it may be a key.
impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entry = String::deserialize(deserializer)?;
        let entry = entry.trim();
        if !entry.starts_with("sha256:") && entry.chars().count() < MIN_KEY_CHARS {
            return Err(serde::de::Error::custom(format!(
                "a key is shorter than {MIN_KEY_CHARS} characters"
            )));
        }
        KeyHash::from_config(entry).map_err(serde::de::Error::custom)
    }
}

/// As [`KeyHash::to_config`]: the digest, never a key.
impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_config())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_and_hashed_entries_match_the_same_key() {
        let key = "ak_example";
        let hashed = KeyHash::of(key).to_config();
        assert_eq!(KeyHash::from_config(&hashed), Ok(KeyHash::of(key)));
        assert_eq!(KeyHash::from_config(" ak_example "), Ok(KeyHash::of(key)));
        assert!(KeyHash::of(" ak_example\n").is_among(&[KeyHash::of("other"), KeyHash::of(key)]));
        assert!(!KeyHash::of("ak_exampl").is_among(&[KeyHash::of(key)]));
        assert!(!KeyHash::of(key).is_among(&[]));
    }

    #[test]
    fn malformed_entries_are_rejected_and_debug_is_redacted() {
        assert!(KeyHash::from_config("  ").is_err());
        assert!(KeyHash::from_config("sha256:abc").is_err());
        assert!(KeyHash::from_config(&format!("sha256:{}", "g".repeat(64))).is_err());
        assert_eq!(
            format!("{:?}", KeyHash::of("ak_secret")),
            "KeyHash(<redacted>)"
        );
    }
}
