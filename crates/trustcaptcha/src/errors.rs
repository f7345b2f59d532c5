//! The errors of this crate: one [`Error`] value, typed causes to downcast to.
//!
//! Every fallible call returns [`Error`]. Code written from the integration guide discriminates failures the way the official
//! guide shows, by asking for the concrete cause:
//!
//! ```
//! # use trustcaptcha::errors::{Error, ServerUnreachableError};
//! # fn handle(e: &Error) {
//! if e.is::<ServerUnreachableError>() {
//!     // our servers are unreachable: allow and log, or reject
//! }
//! # }
//! ```
//!
//! Code that prefers an exhaustive `match` uses [`Error::kind`] instead. Both views describe the
//! same value: `e.kind() == ErrorKind::ServerUnreachable` exactly when
//! `e.is::<ServerUnreachableError>()`.
//!
//! Messages never contain the API key or the verification token.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

/// What went wrong, for an exhaustive `match`.
///
/// Each variant corresponds to one typed cause in this module, which
/// [`Error::downcast_ref`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration given to the builder is unusable; see [`BuilderError`].
    Builder,
    /// The verification token could not be parsed; see [`VerificationTokenInvalidError`].
    VerificationTokenInvalid,
    /// The API key was rejected (HTTP 403); see [`ApiKeyInvalidError`].
    ApiKeyInvalid,
    /// No verification exists for the token (HTTP 404); see [`VerificationNotFoundError`].
    VerificationNotFound,
    /// The user has not finished the verification yet (HTTP 423); see
    /// [`VerificationNotFinishedError`].
    VerificationNotFinished,
    /// The result has expired (HTTP 410); see [`VerificationResultExpiredError`].
    VerificationResultExpired,
    /// The result was already fetched as often as allowed (HTTP 429); see
    /// [`VerificationResultRetrievalLimitReachedError`].
    VerificationResultRetrievalLimitReached,
    /// The server could not be reached at all; see [`ServerUnreachableError`].
    ServerUnreachable,
    /// The widget claimed a failover the server has no record of (HTTP 412); see
    /// [`ClientReportedServerUnreachableError`].
    ClientReportedServerUnreachable,
    /// The server answered 200 with a body that is not a verification result; see
    /// [`InvalidResponseError`].
    InvalidResponse,
    /// Any other HTTP status; see [`UnknownError`].
    Unknown,
}

/// The error returned by every fallible operation of this crate.
///
/// Cheap to move (one pointer), `Send + Sync + 'static`, so it travels through `?` into
/// `anyhow::Error` or `Box<dyn Error + Send + Sync>`.
pub struct Error {
    inner: Box<Inner>,
}

/// The one table of causes: each [`ErrorKind`] with the type [`Error::downcast_ref`] returns
/// for it. `Inner`, [`Error::kind`] and the cause behind `is` / `downcast_ref` / `Display` are
/// generated from it, so the views cannot disagree.
macro_rules! causes {
    ($($kind:ident => $cause:ident,)+) => {
        enum Inner {
            $($kind($cause),)+
        }

        $(impl From<$cause> for Error {
            fn from(cause: $cause) -> Self {
                Error { inner: Box::new(Inner::$kind(cause)) }
            }
        })+

        impl Error {
            /// The category of this error.
            #[must_use]
            pub fn kind(&self) -> ErrorKind {
                match *self.inner {
                    $(Inner::$kind(_) => ErrorKind::$kind,)+
                }
            }

            fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
                match &*self.inner {
                    $(Inner::$kind(cause) => cause,)+
                }
            }
        }

        #[cfg(test)]
        /// One error of every kind, for tests that check all of them.
        pub(crate) fn one_of_each() -> Vec<(ErrorKind, Error, fn(&Error) -> bool)> {
            vec![$((
                ErrorKind::$kind,
                $cause::example().into(),
                (|e: &Error| e.is::<$cause>()) as fn(&Error) -> bool,
            ),)+]
        }
    };
}

causes! {
    Builder => BuilderError,
    VerificationTokenInvalid => VerificationTokenInvalidError,
    ApiKeyInvalid => ApiKeyInvalidError,
    VerificationNotFound => VerificationNotFoundError,
    VerificationNotFinished => VerificationNotFinishedError,
    VerificationResultExpired => VerificationResultExpiredError,
    VerificationResultRetrievalLimitReached => VerificationResultRetrievalLimitReachedError,
    ServerUnreachable => ServerUnreachableError,
    ClientReportedServerUnreachable => ClientReportedServerUnreachableError,
    InvalidResponse => InvalidResponseError,
    Unknown => UnknownError,
}

impl Error {
    /// Whether the typed cause of this error is a `T`, e.g.
    /// `e.is::<ServerUnreachableError>()`.
    #[must_use]
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }

    /// The typed cause of this error, if it is a `T`.
    #[must_use]
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        let cause: &(dyn StdError + 'static) = self.cause();
        cause.downcast_ref::<T>()
    }

    /// The HTTP status the server answered with, when the error comes from a response.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match &*self.inner {
            Inner::ApiKeyInvalid(_) => Some(StatusCode::FORBIDDEN),
            Inner::VerificationNotFound(_) => Some(StatusCode::NOT_FOUND),
            Inner::VerificationNotFinished(_) => Some(StatusCode::LOCKED),
            Inner::VerificationResultExpired(_) => Some(StatusCode::GONE),
            Inner::VerificationResultRetrievalLimitReached(_) => {
                Some(StatusCode::TOO_MANY_REQUESTS)
            }
            Inner::ClientReportedServerUnreachable(_) => Some(StatusCode::PRECONDITION_FAILED),
            Inner::InvalidResponse(_) => Some(StatusCode::OK),
            Inner::Unknown(e) => Some(e.status),
            Inner::Builder(_)
            | Inner::VerificationTokenInvalid(_)
            | Inner::ServerUnreachable(_) => None,
        }
    }

    /// Whether the server could not be reached because a timeout elapsed.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(&*self.inner, Inner::ServerUnreachable(e) if e.is_timeout())
    }

    /// Whether the server could not be reached because the connection failed.
    #[must_use]
    pub fn is_connect(&self) -> bool {
        matches!(&*self.inner, Inner::ServerUnreachable(e) if e.is_connect())
    }

    /// Whether this is one of the two failover errors the guide's failover section handles:
    /// [`ServerUnreachableError`] or [`ClientReportedServerUnreachableError`].
    #[must_use]
    pub fn is_failover(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::ServerUnreachable | ErrorKind::ClientReportedServerUnreachable
        )
    }

    #[cfg(feature = "client")]
    pub(crate) fn builder(message: impl Into<String>) -> Self {
        BuilderError {
            message: message.into(),
        }
        .into()
    }

    pub(crate) fn token(reason: &'static str) -> Self {
        VerificationTokenInvalidError { reason }.into()
    }

    /// The error for a request that got no answer. What this client caused itself (a request
    /// that cannot be built, a TLS handshake the API refused or whose certificate was refused)
    /// is a [`BuilderError`], never an outage; `answered_before` says whether the API ever
    /// answered this client.
    #[cfg(feature = "client")]
    pub(crate) fn unreachable(source: reqwest::Error, answered_before: bool) -> Self {
        if source.is_builder() {
            return Error::builder("the request could not be built");
        }
        if tls_refused(&source) {
            return Error::builder(
                "the TLS handshake with the api host failed: check api_host and its certificate",
            );
        }
        ServerUnreachableError {
            timeout: source.is_timeout(),
            connect: source.is_connect(),
            answered_before,
            source: Box::new(source),
        }
        .into()
    }

    #[cfg(feature = "client")]
    pub(crate) fn invalid_response(reason: String) -> Self {
        InvalidResponseError { reason }.into()
    }

    /// Maps a non-200 status of the results endpoint to its typed error.
    #[cfg(feature = "client")]
    pub(crate) fn from_status(status: StatusCode, body: &[u8]) -> Self {
        match status.as_u16() {
            403 => ApiKeyInvalidError { _private: () }.into(),
            404 => VerificationNotFoundError { _private: () }.into(),
            410 => VerificationResultExpiredError { _private: () }.into(),
            412 => ClientReportedServerUnreachableError { _private: () }.into(),
            423 => VerificationNotFinishedError { _private: () }.into(),
            429 => VerificationResultRetrievalLimitReachedError { _private: () }.into(),
            _ => UnknownError {
                status,
                body: body_excerpt(body),
            }
            .into(),
        }
    }
}

/// At most this many characters of an unexpected response body are kept, so that a large or
/// hostile body cannot bloat logs.
/// Whether a TLS error is in `error`'s chain (rustls and native-tls report handshake and
/// certificate failures as their own error types).
#[cfg(feature = "client")]
fn tls_refused(error: &(dyn StdError + 'static)) -> bool {
    fn is_tls(error: &(dyn StdError + 'static)) -> bool {
        #[cfg(feature = "rustls")]
        if error.is::<rustls::Error>() {
            return true;
        }
        #[cfg(feature = "native-tls")]
        if error.is::<native_tls::Error>() {
            return true;
        }
        let _ = error;
        false
    }
    let mut cause = Some(error);
    while let Some(current) = cause {
        if is_tls(current) {
            return true;
        }
        // An io::Error's `source()` skips the error it wraps, so step into that one instead.
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    false
}

#[cfg(feature = "client")]
const BODY_EXCERPT_CHARS: usize = 200;

#[cfg(feature = "client")]
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text
        .chars()
        .take(BODY_EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(BODY_EXCERPT_CHARS).is_some() {
        excerpt.push('…');
    }
    excerpt.trim().to_owned()
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("cause", &self.cause())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.cause(), f)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause().source()
    }
}

/// The builder was given an empty API key, or an API host or proxy URL that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid trustcaptcha configuration: {message}")]
pub struct BuilderError {
    message: String,
}

/// The verification token could not be parsed: it must be base64 of a JSON object with a
/// `verificationId` UUID, as the widget produces it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("verification token is invalid: {reason}")]
pub struct VerificationTokenInvalidError {
    reason: &'static str,
}

impl VerificationTokenInvalidError {
    /// Why the token was rejected, e.g. `"not valid base64"`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// The server rejected the API key (HTTP 403). Check the key in the captcha's settings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the api key was rejected (HTTP 403): check the key configured for this captcha")]
pub struct ApiKeyInvalidError {
    _private: (),
}

/// No verification exists for the token's id (HTTP 404).
#[derive(Debug, Clone, thiserror::Error)]
#[error("no verification found for this token (HTTP 404)")]
pub struct VerificationNotFoundError {
    _private: (),
}

/// The user has not finished the verification yet (HTTP 423).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the verification has not been finished yet (HTTP 423)")]
pub struct VerificationNotFinishedError {
    _private: (),
}

/// The verification result has expired and can no longer be retrieved (HTTP 410).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the verification result has expired (HTTP 410)")]
pub struct VerificationResultExpiredError {
    _private: (),
}

/// The verification result has been retrieved as often as the captcha allows (HTTP 429).
///
/// A second fetch of the same token usually means a replayed form submission.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the verification result was already retrieved as often as allowed (HTTP 429)")]
pub struct VerificationResultRetrievalLimitReachedError {
    _private: (),
}

/// The TrustCaptcha server could not be reached: the connection failed or a timeout elapsed.
///
/// This is the high-trust failover case: your backend itself cannot reach the service.
#[derive(Debug, thiserror::Error)]
#[error("the captcha server could not be reached")]
pub struct ServerUnreachableError {
    #[source]
    source: Box<dyn StdError + Send + Sync>,
    timeout: bool,
    connect: bool,
    answered_before: bool,
}

impl ServerUnreachableError {
    /// Whether a timeout (connect or read) elapsed.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// Whether the connection could not be established.
    #[must_use]
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// Whether the API had answered this client (any HTTP status, or a successful
    /// [`probe`](crate::TrustCaptcha::probe)) before this failure. A client that never reached
    /// the API is more likely misconfigured (a wrong host, a firewall) than facing an outage;
    /// the default [`FailoverPolicy`](crate::FailoverPolicy) rejects in that case.
    #[must_use]
    pub fn api_answered_before(&self) -> bool {
        self.answered_before
    }
}

/// The widget claimed it could not reach the server, but the server has no record of an
/// outage (HTTP 412).
///
/// This is the low-trust failover case: treat the token with suspicion.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the widget reported a failover, but the server has no record of an outage (HTTP 412)")]
pub struct ClientReportedServerUnreachableError {
    _private: (),
}

/// The server answered 200, but the body is not a verification result.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the server answered with an invalid verification result: {reason}")]
pub struct InvalidResponseError {
    reason: String,
}

/// The server answered with a status this crate does not expect.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unexpected response from the captcha server (HTTP {})", status.as_u16())]
pub struct UnknownError {
    status: StatusCode,
    body: String,
}

impl UnknownError {
    /// The HTTP status of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The start of the response body (at most 200 characters), for diagnostics.
    #[must_use]
    pub fn body(&self) -> &str {
        &self.body
    }
}

#[cfg(test)]
mod examples {
    //! One value of each cause, for the table test.
    use super::*;

    impl BuilderError {
        pub(super) fn example() -> Self {
            BuilderError {
                message: "api key must not be empty".into(),
            }
        }
    }
    impl VerificationTokenInvalidError {
        pub(super) fn example() -> Self {
            VerificationTokenInvalidError {
                reason: "not valid base64",
            }
        }
    }
    impl ServerUnreachableError {
        pub(super) fn example() -> Self {
            ServerUnreachableError {
                source: "connection refused".into(),
                timeout: false,
                connect: true,
                answered_before: true,
            }
        }
    }
    impl InvalidResponseError {
        pub(super) fn example() -> Self {
            InvalidResponseError {
                reason: "missing field `score`".into(),
            }
        }
    }
    impl UnknownError {
        pub(super) fn example() -> Self {
            UnknownError {
                status: StatusCode::BAD_GATEWAY,
                body: String::new(),
            }
        }
    }
    macro_rules! unit_examples {
        ($($cause:ident),+) => {$(
            impl $cause {
                pub(super) fn example() -> Self {
                    $cause { _private: () }
                }
            }
        )+};
    }
    unit_examples!(
        ApiKeyInvalidError,
        VerificationNotFoundError,
        VerificationNotFinishedError,
        VerificationResultExpiredError,
        VerificationResultRetrievalLimitReachedError,
        ClientReportedServerUnreachableError
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_is_agree_for_every_cause() {
        let all = one_of_each();
        assert_eq!(all.len(), 11, "one per ErrorKind");
        for (i, (kind, error, _)) in all.iter().enumerate() {
            assert_eq!(error.kind(), *kind);
            for (j, (_, _, is_cause_of_j)) in all.iter().enumerate() {
                assert_eq!(is_cause_of_j(error), i == j, "{kind:?} vs cause {j}");
            }
            let message = error.to_string();
            let first = message.chars().next().expect("non-empty message");
            assert!(first.is_lowercase(), "{message}");
            assert!(!message.ends_with(['.', '!']), "{message}");
        }
    }

    #[test]
    fn error_is_send_sync_static_and_small() {
        fn assert_traits<T: Send + Sync + 'static + StdError>() {}
        assert_traits::<Error>();
        assert_eq!(size_of::<Error>(), size_of::<usize>());
    }

    #[test]
    #[cfg(feature = "client")]
    fn each_status_maps_to_its_type_and_kind() {
        let cases: [(u16, ErrorKind); 7] = [
            (403, ErrorKind::ApiKeyInvalid),
            (404, ErrorKind::VerificationNotFound),
            (410, ErrorKind::VerificationResultExpired),
            (412, ErrorKind::ClientReportedServerUnreachable),
            (423, ErrorKind::VerificationNotFinished),
            (429, ErrorKind::VerificationResultRetrievalLimitReached),
            (500, ErrorKind::Unknown),
        ];
        for (code, kind) in cases {
            let status = StatusCode::from_u16(code).expect("valid status");
            let error = Error::from_status(status, b"");
            assert_eq!(error.kind(), kind, "status {code}");
            assert_eq!(error.status(), Some(status));
        }
        let error = Error::from_status(StatusCode::FORBIDDEN, b"");
        assert!(error.is::<ApiKeyInvalidError>());
        assert!(!error.is::<UnknownError>());
        assert!(!error.is_failover());
    }

    #[test]
    #[cfg(feature = "client")]
    fn unknown_error_keeps_a_bounded_single_line_excerpt() {
        let body = format!("line one\nline two {}", "x".repeat(10_000));
        let error = Error::from_status(StatusCode::IM_A_TEAPOT, body.as_bytes());
        let unknown = error.downcast_ref::<UnknownError>().expect("unknown error");
        assert!(unknown.body().starts_with("line one line two"));
        assert_eq!(unknown.body().chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(
            error.to_string(),
            "unexpected response from the captcha server (HTTP 418)"
        );
    }
}
