//! The verification token the widget hands to the browser: decoding and validation, no I/O.
//!
//! The token is standard base64 of a small JSON object (see `docs/protocol.md`):
//!
//! ```json
//! {"verificationId": "07b01922-3faa-4667-a4a6-910a76cb8ab7", "expiresAt": "2026-05-03T13:45:08.214Z"}
//! ```
//!
//! A widget that could not reach the server adds `"clientFailover": true`. Older tokens carry an
//! `apiEndpoint` field; it is ignored on purpose, because sending the API key to a host named by
//! a browser-supplied token would leak the key to whoever wrote the token.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::Error;

/// Tokens longer than this are rejected before decoding. A real token is about 120 characters;
/// the limit leaves room for future fields while bounding the work a hostile input can cause.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Standard alphabet; padding may be present or absent (browsers' `btoa` pads, hand-made tokens
/// often do not).
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded verification token.
///
/// ```
/// use trustcaptcha::token::VerificationToken;
///
/// let token: VerificationToken = "eyJ2ZXJpZmljYXRpb25JZCI6IjA3YjAxOTIyLTNmYWEtNDY2Ny1hNGE2LTkxMGE3NmNiOGFiNyIsImV4cGlyZXNBdCI6IjIwMjYtMDUtMDNUMTM6NDU6MDguMjE0WiJ9".parse()?;
/// assert_eq!(token.verification_id.to_string(), "07b01922-3faa-4667-a4a6-910a76cb8ab7");
/// assert!(!token.client_failover);
/// # Ok::<(), trustcaptcha::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationToken {
    /// Identifies the verification whose result the backend fetches.
    pub verification_id: Uuid,
    /// When the token, and so the result, stops being retrievable.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Set by a widget that could not reach the server and made the token itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_failover: bool,
}

impl VerificationToken {
    /// A token for `verification_id` that expires at `expires_at`, as a server issues it.
    #[must_use]
    pub fn new(verification_id: Uuid, expires_at: OffsetDateTime) -> Self {
        VerificationToken {
            verification_id,
            expires_at: Some(expires_at),
            client_failover: false,
        }
    }

    /// Decodes a token as received from the browser.
    ///
    /// Surrounding whitespace is ignored (form fields often carry a trailing newline).
    ///
    /// # Errors
    ///
    /// [`VerificationTokenInvalidError`](crate::errors::VerificationTokenInvalidError) when the
    /// token is longer than [`MAX_TOKEN_LEN`], not standard base64, not UTF-8 JSON, or lacks a
    /// `verificationId` UUID, or when `expiresAt` is not RFC 3339 or `clientFailover` not a bool.
    pub fn decode(token: &str) -> Result<Self, Error> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::token("token is empty"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::token("token is longer than 4096 characters"));
        }
        let json = LENIENT_STANDARD
            .decode(token)
            .map_err(|_| Error::token("token is not standard base64"))?;
        serde_json::from_slice(&json).map_err(|e| {
            Error::token(if e.is_data() {
                "token lacks a valid verificationId, expiresAt or clientFailover"
            } else {
                "token does not decode to a JSON object"
            })
        })
    }

    /// Encodes the token as the server hands it to the widget: padded standard base64 of the
    /// JSON object, which every official backend library accepts.
    #[must_use]
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token always serializes");
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

impl FromStr for VerificationToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
    }
}

impl fmt::Display for VerificationToken {
    /// Writes the encoded token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{ErrorKind, VerificationTokenInvalidError};

    fn b64(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    fn reason(token: &str) -> &'static str {
        let error = VerificationToken::decode(token).expect_err("token must be rejected");
        assert_eq!(error.kind(), ErrorKind::VerificationTokenInvalid);
        error
            .downcast_ref::<VerificationTokenInvalidError>()
            .expect("typed cause")
            .reason()
    }

    #[test]
    fn decodes_the_seed_sample() {
        let token = VerificationToken::decode("eyJ2ZXJpZmljYXRpb25JZCI6IjA3YjAxOTIyLTNmYWEtNDY2Ny1hNGE2LTkxMGE3NmNiOGFiNyIsImV4cGlyZXNBdCI6IjIwMjYtMDUtMDNUMTM6NDU6MDguMjE0WiJ9").expect("valid");
        assert_eq!(
            token.verification_id,
            Uuid::parse_str("07b01922-3faa-4667-a4a6-910a76cb8ab7").expect("uuid")
        );
        assert_eq!(
            token.expires_at,
            Some(time::macros::datetime!(2026-05-03 13:45:08.214 UTC))
        );
        assert!(!token.client_failover);
    }

    #[test]
    fn decodes_the_widget_failover_token() {
        let token = VerificationToken::decode("eyJ2ZXJpZmljYXRpb25JZCI6IjZmMWMyZDNlLTRiNWEtNGM2ZC04ZTdmLTAxMjM0NTY3ODlhYiIsImV4cGlyZXNBdCI6IjIwMjUtMDEtMDFUMDA6MTU6MDAuMDAwWiIsImNsaWVudEZhaWxvdmVyIjp0cnVlfQ==").expect("valid");
        assert!(token.client_failover);
    }

    #[test]
    fn accepts_unpadded_uppercase_unknown_fields_and_whitespace() {
        let padded = b64(
            r#"{"verificationId":"07B01922-3FAA-4667-A4A6-910A76CB8AB7","apiEndpoint":"https://evil.example","x":[12]}"#,
        );
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded, "sample must need padding");
        let token = VerificationToken::decode(&format!(" {unpadded}\n")).expect("valid");
        assert_eq!(
            token.verification_id.to_string(),
            "07b01922-3faa-4667-a4a6-910a76cb8ab7"
        );
        assert_eq!(token.expires_at, None);
    }

    #[test]
    fn rejects_malformed_tokens_with_a_reason() {
        assert_eq!(reason(""), "token is empty");
        assert_eq!(
            reason(&"A".repeat(MAX_TOKEN_LEN + 4)),
            "token is longer than 4096 characters"
        );
        assert_eq!(reason("not base64!"), "token is not standard base64");
        assert_eq!(
            reason(&b64("{}").replace('=', "-")),
            "token is not standard base64"
        );
        assert_eq!(
            reason(&b64("plain text")),
            "token does not decode to a JSON object"
        );
        let data = "token lacks a valid verificationId, expiresAt or clientFailover";
        assert_eq!(reason(&b64("{}")), data);
        assert_eq!(reason(&b64(r#"{"verificationId":"nope"}"#)), data);
        assert_eq!(reason(&b64(r#"["a"]"#)), data);
        let id = r#""verificationId":"07b01922-3faa-4667-a4a6-910a76cb8ab7""#;
        assert_eq!(
            reason(&b64(&format!(r#"{{{id},"expiresAt":"tomorrow"}}"#))),
            data
        );
        assert_eq!(
            reason(&b64(&format!(r#"{{{id},"clientFailover":"yes"}}"#))),
            data
        );
    }

    #[test]
    fn encode_is_padded_and_round_trips() {
        let token = VerificationToken::new(
            Uuid::new_v4(),
            time::macros::datetime!(2026-05-03 13:45:08.214 UTC),
        );
        let encoded = token.encode();
        assert_eq!(encoded.len() % 4, 0);
        assert_eq!(encoded.parse::<VerificationToken>().expect("valid"), token);
        assert_eq!(token.to_string(), encoded);
    }

    #[test]
    fn error_messages_never_echo_the_token() {
        let token = b64(r#"{"verificationId":"secret-secret-secret"}"#);
        let error = VerificationToken::decode(&token).expect_err("invalid");
        assert!(!format!("{error} {error:?}").contains(&token));
        assert!(!format!("{error} {error:?}").contains("secret-secret"));
    }
}
