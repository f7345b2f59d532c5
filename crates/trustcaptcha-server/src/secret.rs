//! API keys and bypass keys, held only as SHA-256 digests and compared in constant time.
//!
//! A config file may list a key in clear (`"ak_…"`) or as its digest (`"sha256:<64 hex>"`, as
//! printed by `trustcaptcha-server hash-key`); either way the server keeps only the digest.

use std::fmt;

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
