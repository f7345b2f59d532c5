//! The framework-independent part of the `axum` and `actix` integrations: where a request's
//! token is found, how the outcome is judged, and the rejection a failed check becomes.
//!
//! [`Guard`] holds the [`TrustCaptcha`] client, the [`TokenSource`]s to read and the
//! [`Policy`] to apply. [`crate::axum`] and [`crate::actix`] turn it into extractors and
//! middleware; anything else can call [`Guard::verify`] directly.

use std::fmt;
use std::sync::Arc;

use crate::errors::{Error, ErrorKind};
use crate::model::VerificationResult;
use crate::policy::{Decision, Policy};
use crate::trust_captcha::TrustCaptcha;

/// Where a request carries its verification token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header, e.g. `X-TrustCaptcha-Token`.
    Header(String),
    /// A field of an `application/x-www-form-urlencoded` body, e.g. the widget's hidden input
    /// `tc-verification-token`.
    FormField(String),
    /// A top-level string field of a JSON body, e.g. `verificationToken`.
    JsonField(String),
}

impl TokenSource {
    /// The sources tried by default, in order: the `X-TrustCaptcha-Token` header, the form field
    /// `tc-verification-token` (the widget's default), the JSON field `verificationToken` (as
    /// the guide's example sends it).
    #[must_use]
    pub fn defaults() -> Vec<TokenSource> {
        vec![
            TokenSource::Header("x-trustcaptcha-token".to_owned()),
            TokenSource::FormField("tc-verification-token".to_owned()),
            TokenSource::JsonField("verificationToken".to_owned()),
        ]
    }

    fn reads_body(&self) -> bool {
        !matches!(self, TokenSource::Header(_))
    }
}

/// Bodies larger than this are not buffered to look for a token (the request is rejected with
/// 413), so a guard cannot be made to hold arbitrary amounts of memory.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Verifies the token of a request and judges the outcome.
///
/// Cheap to clone; build it once and put it in your application state.
#[derive(Debug, Clone)]
pub struct Guard {
    inner: Arc<Settings>,
}

/// What a [`Guard`] shares between its clones.
#[derive(Debug, Clone)]
struct Settings {
    client: TrustCaptcha,
    sources: Vec<TokenSource>,
    policy: Policy,
    max_body: usize,
}

/// A request that passed the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The verification result; `None` when the failover policy let the request through
    /// without one (the server was unreachable).
    pub result: Option<VerificationResult>,
    /// [`Decision::Allow`] or [`Decision::Challenge`]; rejected requests never get here.
    pub decision: Decision,
}

impl Guard {
    /// A guard with [`TokenSource::defaults`] and [`Policy::default`].
    #[must_use]
    pub fn new(client: TrustCaptcha) -> Self {
        Guard {
            inner: Arc::new(Settings {
                client,
                sources: TokenSource::defaults(),
                policy: Policy::default(),
                max_body: DEFAULT_MAX_BODY,
            }),
        }
    }

    /// Reads the token from these sources, tried in order.
    #[must_use]
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        Arc::make_mut(&mut self.inner).sources = sources.into_iter().collect();
        self
    }

    /// Judges outcomes with `policy`.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        Arc::make_mut(&mut self.inner).policy = policy;
        self
    }

    /// The largest body buffered while looking for a token. Default: [`DEFAULT_MAX_BODY`].
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.inner).max_body = bytes;
        self
    }

    /// Whether any source needs the body.
    #[must_use]
    pub fn reads_body(&self) -> bool {
        self.inner.sources.iter().any(TokenSource::reads_body)
    }

    /// The body limit.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.inner.max_body
    }

    /// Finds the token: `header` looks up a request header by lower-case name; `body` is the
    /// buffered body (empty when none was read) with its `content_type`.
    #[must_use]
    pub fn find_token<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        content_type: Option<&str>,
        body: &'a [u8],
    ) -> Option<String> {
        let essence = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase());
        self.inner.sources.iter().find_map(|source| {
            let token = match source {
                TokenSource::Header(name) => header(&name.to_ascii_lowercase()).map(str::to_owned),
                TokenSource::FormField(name)
                    if essence.as_deref() == Some("application/x-www-form-urlencoded") =>
                {
                    form_field(body, name)
                }
                TokenSource::JsonField(name)
                    if essence
                        .as_deref()
                        .is_some_and(|e| e == "application/json" || e.ends_with("+json")) =>
                {
                    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
                        .ok()
                        .and_then(|mut map| match map.remove(name) {
                            Some(serde_json::Value::String(token)) => Some(token),
                            _ => None,
                        })
                }
                _ => None,
            };
            token.filter(|t| !t.trim().is_empty())
        })
    }

    /// Verifies `token` (as found by [`Guard::find_token`]) and applies the policy.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] saying why the request must not proceed.
    pub async fn verify(&self, token: Option<&str>) -> Result<Verified, Rejection> {
        let token = token.ok_or(Rejection::MissingToken)?;
        let outcome = self.inner.client.get_verification_result(token).await;
        self.judge(outcome)
    }

    fn judge(&self, outcome: Result<VerificationResult, Error>) -> Result<Verified, Rejection> {
        let decision = self.inner.policy.decide(&outcome);
        match (outcome, decision) {
            (Ok(result), Decision::Reject) => Err(Rejection::Rejected(Box::new(result))),
            (Ok(result), decision) => Ok(Verified {
                result: Some(result),
                decision,
            }),
            (Err(error), Decision::Reject) => {
                let rejection = Rejection::from_error(error);
                if let Rejection::Internal(error) = &rejection {
                    // The visitor sees a generic error; the operator must learn why. Error
                    // messages never contain the key or the token.
                    tracing::error!(
                        kind = ?error.kind(),
                        %error,
                        "captcha verification failed on this server's side (key, host or TLS)"
                    );
                }
                Err(rejection)
            }
            (Err(_), decision) => Ok(Verified {
                result: None,
                decision,
            }),
        }
    }
}

/// Why a request did not pass the guard. Each variant has an HTTP status and a stable code;
/// the frameworks' integrations render it as `{"error": code, "message": …}`.
#[derive(Debug)]
pub enum Rejection {
    /// No token in any configured source (400).
    MissingToken,
    /// The body was larger than the guard buffers (413).
    BodyTooLarge,
    /// The token was not a valid verification token (400).
    InvalidToken(Error),
    /// The token was already used, expired, unknown or unfinished (403).
    TokenNotUsable(Error),
    /// The result says bot, or failed (403).
    Rejected(Box<VerificationResult>),
    /// A failover the policy rejects (503 when the server is unreachable, 403 for a widget's
    /// unconfirmed claim).
    Failover(Error),
    /// The server rejected the API key or answered unexpectedly (500).
    Internal(Error),
    /// No [`Guard`] was configured for the route (500).
    Misconfigured,
}

impl Rejection {
    fn from_error(error: Error) -> Self {
        match error.kind() {
            ErrorKind::VerificationTokenInvalid => Rejection::InvalidToken(error),
            ErrorKind::VerificationNotFound
            | ErrorKind::VerificationNotFinished
            | ErrorKind::VerificationResultExpired
            | ErrorKind::VerificationResultRetrievalLimitReached => {
                Rejection::TokenNotUsable(error)
            }
            ErrorKind::ServerUnreachable | ErrorKind::ClientReportedServerUnreachable => {
                Rejection::Failover(error)
            }
            ErrorKind::Builder
            | ErrorKind::ApiKeyInvalid
            | ErrorKind::InvalidResponse
            | ErrorKind::Unknown => Rejection::Internal(error),
        }
    }

    /// The HTTP status to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Rejection::MissingToken | Rejection::InvalidToken(_) => 400,
            Rejection::BodyTooLarge => 413,
            Rejection::TokenNotUsable(_) | Rejection::Rejected(_) => 403,
            Rejection::Failover(error) if error.kind() == ErrorKind::ServerUnreachable => 503,
            Rejection::Failover(_) => 403,
            Rejection::Internal(_) | Rejection::Misconfigured => 500,
        }
    }

    /// A stable machine-readable code, e.g. `captcha_missing`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "captcha_missing",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::InvalidToken(_) => "captcha_invalid",
            Rejection::TokenNotUsable(_) => "captcha_not_usable",
            Rejection::Rejected(_) => "captcha_rejected",
            Rejection::Failover(_) => "captcha_unavailable",
            Rejection::Internal(_) | Rejection::Misconfigured => "captcha_error",
        }
    }

    /// The underlying client error, if any.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        match self {
            Rejection::InvalidToken(e)
            | Rejection::TokenNotUsable(e)
            | Rejection::Failover(e)
            | Rejection::Internal(e) => Some(e),
            Rejection::MissingToken
            | Rejection::BodyTooLarge
            | Rejection::Rejected(_)
            | Rejection::Misconfigured => None,
        }
    }

    /// The JSON body the integrations answer with. Server-side problems are not detailed to
    /// the client (they are for your logs, via [`Rejection::error`]).
    #[must_use]
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            Rejection::Internal(_) | Rejection::Misconfigured => {
                "the captcha could not be checked".to_owned()
            }
            other => other.to_string(),
        };
        serde_json::json!({ "error": self.code(), "message": message })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MissingToken => f.write_str("no captcha verification token in the request"),
            Rejection::BodyTooLarge => {
                f.write_str("the request body is too large to look for a captcha token")
            }
            Rejection::Rejected(_) => f.write_str("the captcha verification did not pass"),
            Rejection::Misconfigured => {
                f.write_str("no trustcaptcha guard is configured for this route")
            }
            Rejection::InvalidToken(e)
            | Rejection::TokenNotUsable(e)
            | Rejection::Failover(e)
            | Rejection::Internal(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(TrustCaptcha::builder("ak_test").build().expect("client"))
    }

    #[test]
    fn finds_the_token_in_each_default_source() {
        let guard = guard();
        let none = |_: &str| None;
        let header = |name: &str| (name == "x-trustcaptcha-token").then_some("from-header");
        assert_eq!(
            guard.find_token(header, None, b""),
            Some("from-header".into())
        );
        let form = b"email=a%40b.c&tc-verification-token=abc%2Bdef%3D%3D";
        assert_eq!(
            guard.find_token(
                none,
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                form
            ),
            Some("abc+def==".into())
        );
        let json = br#"{"verificationToken":"tok","other":1}"#;
        assert_eq!(
            guard.find_token(none, Some("application/json"), json),
            Some("tok".into())
        );
        assert_eq!(guard.find_token(none, Some("text/plain"), json), None);
        assert_eq!(
            guard.find_token(
                none,
                Some("application/json"),
                br#"{"verificationToken":5}"#
            ),
            None
        );
        assert_eq!(
            guard.find_token(none, Some("application/json"), b"[not json"),
            None
        );
        let blank = |_: &str| Some("  ");
        assert_eq!(guard.find_token(blank, None, b""), None);
    }

    #[test]
    fn sources_are_tried_in_the_configured_order() {
        let guard = guard().token_sources([
            TokenSource::JsonField("t".into()),
            TokenSource::Header("X-T".into()),
        ]);
        let header = |name: &str| (name == "x-t").then_some("h");
        assert_eq!(
            guard.find_token(header, Some("application/json"), br#"{"t":"j"}"#),
            Some("j".into())
        );
        assert_eq!(guard.find_token(header, None, b""), Some("h".into()));
        assert!(guard.reads_body());
        assert!(
            !guard
                .token_sources([TokenSource::Header("x".into())])
                .reads_body()
        );
    }

    #[test]
    fn rejections_have_statuses_codes_and_no_internal_details() {
        let invalid = Rejection::from_error(
            crate::token::VerificationToken::decode("").expect_err("invalid"),
        );
        assert_eq!((invalid.status(), invalid.code()), (400, "captcha_invalid"));
        let internal = Rejection::from_error(Error::from_status(http::StatusCode::FORBIDDEN, b""));
        assert_eq!(internal.status(), 500);
        assert_eq!(
            internal.body()["message"],
            "the captcha could not be checked"
        );
        let claimed = Rejection::from_error(Error::from_status(
            http::StatusCode::PRECONDITION_FAILED,
            b"",
        ));
        assert_eq!(
            (claimed.status(), claimed.code()),
            (403, "captcha_unavailable")
        );
        assert_eq!(Rejection::MissingToken.status(), 400);
    }
}
