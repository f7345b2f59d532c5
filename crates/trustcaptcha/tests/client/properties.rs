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

    /// Tokens as a widget (or a failover widget) makes them: the id in any case, extra members
    /// in any order, `clientFailover` true or absent. Every one decodes to its id.
    #[test]
    fn widget_shaped_tokens_decode_to_their_id(
        id in any::<u128>(),
        upper in any::<bool>(),
        extra in proptest::collection::btree_map("[a-zA-Z]{1,10}", "[a-z0-9 :.-]{0,16}", 0..4),
        failover in any::<bool>(),
        first in any::<bool>(),
    ) {
        let uuid = uuid::Uuid::from_u128(id);
        let written = if upper { uuid.to_string().to_uppercase() } else { uuid.to_string() };
        let mut members: Vec<String> = extra
            .iter()
            .filter(|(key, _)| key.as_str() != "verificationId" && key.as_str() != "clientFailover")
            .map(|(key, value)| format!("{key:?}:{value:?}"))
            .collect();
        if failover {
            members.push(r#""clientFailover":true"#.to_owned());
        }
        let id_member = format!(r#""verificationId":"{written}""#);
        if first { members.insert(0, id_member) } else { members.push(id_member) }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{{{}}}", members.join(",")));
        let decoded = VerificationToken::decode(&token).expect("a widget-shaped token decodes");
        prop_assert_eq!(decoded.verification_id, uuid);
        prop_assert_eq!(decoded.client_failover, failover);
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
