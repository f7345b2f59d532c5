//! The fuzz targets' entry points (`fuzz/`), one per input a client or an operator controls.
//! Each asserts what must hold for any input; `cargo fuzz` drives them on nightly, and the
//! corpus is replayed through them on stable by the test suite.

use crate::integrity::integrity_hash;
use crate::protocol::{CreateRequest, SubmitRequest};
use crate::{config, detection, pow};

/// A verification token: any text decodes to a token or to a token error.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = trustcaptcha::VerificationToken::decode(text) {
        assert_eq!(
            error.kind(),
            trustcaptcha::ErrorKind::VerificationTokenInvalid
        );
    }
}

/// A create body: parsing, the integrity hash and the scoring signals never panic, and the
/// hash, when there is one, is 64 hex digits.
pub fn create(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<CreateRequest>(data) else {
        return;
    };
    if let Some(hash) = integrity_hash(&request.browser_information) {
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let signals = detection::at_create(&request, &axum::http::HeaderMap::new());
    assert!((0.0..=1.0).contains(&signals.score()));
}

/// A submission: arbitrary answers never pass proof-of-work at difficulty 32.
pub fn submit(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<SubmitRequest>(data) else {
        return;
    };
    assert!(pow::verify(&pow::Tasks::generate(3), 32, &request.tasks).is_err());
    let signals = detection::at_submit(
        crate::signals::Signals::default(),
        &request,
        std::time::Duration::from_millis(500),
        true,
    );
    assert!((0.0..=1.0).contains(&signals.score()));
}

/// The first bytes of a connection to the TLS listener: read as a ClientHello or not, never a
/// panic; a fingerprint, when there is one, has JA4's form and reads back as itself.
pub fn client_hello(data: &[u8]) {
    if let Some(ja4) = crate::tls::Ja4::of_records(data) {
        let text = ja4.to_string();
        assert_eq!(
            crate::tls::Ja4::parse(&text).map(|j| j.to_string()),
            Some(text)
        );
    }
}

/// A configuration file: it is accepted and then also valid as a whole, or refused with at
/// least one located problem.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(config) => assert_eq!(config.check(), Ok(())),
        Err(error) => assert!(!error.problems.is_empty()),
    }
}
