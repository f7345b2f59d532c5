//! Properties over arbitrary input: decoding never panics, and what the server encodes, the
//! client decodes.

use base64::Engine as _;
use proptest::prelude::*;
use trustcaptcha::{ErrorKind, VerificationToken};

proptest! {
    #[test]
    fn decoding_any_string_returns_a_token_or_a_token_error(input in ".{0,600}") {
        if let Err(error) = VerificationToken::decode(&input) {
            prop_assert_eq!(error.kind(), ErrorKind::VerificationTokenInvalid);
        }
    }

    #[test]
    fn decoding_base64_of_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let token = base64::engine::general_purpose::STANDARD.encode(&bytes);
        match VerificationToken::decode(&token) {
            Ok(decoded) => prop_assert_eq!(VerificationToken::decode(&decoded.encode()).expect("valid"), decoded),
            Err(error) => prop_assert_eq!(error.kind(), ErrorKind::VerificationTokenInvalid),
        }
    }

    #[test]
    fn encoded_tokens_round_trip(id in any::<u128>(), seconds in 0i64..4_000_000_000, failover in any::<bool>()) {
        let token = VerificationToken {
            verification_id: uuid::Uuid::from_u128(id),
            expires_at: Some(time::OffsetDateTime::from_unix_timestamp(seconds).expect("in range")),
            client_failover: failover,
        };
        prop_assert_eq!(VerificationToken::decode(&token.encode()).expect("valid"), token);
    }
}
