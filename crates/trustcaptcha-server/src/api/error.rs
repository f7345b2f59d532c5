//! [`ApiError`]: every non-2xx answer, as a status and a small JSON body
//! `{"error": "<code>", "message": "<text>"}`.
//!
//! The widget reads only the status, so the status is what matters; the body helps people
//! reading logs and `curl` output. No message ever contains a key or token.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::limits::Limited;
use crate::store::StoreError;
use crate::verification::{self, Refusal};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the body is not what the endpoint expects.
    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 403: no usable API key.
    pub(crate) fn forbidden(message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The same answer with another status (an older API's).
    pub(crate) fn with_status(self, status: StatusCode) -> Self {
        ApiError { status, ..self }
    }

    /// 404: no such endpoint or verification.
    pub(crate) fn not_found(message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: a bug in the server; the details are in its log.
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer this request",
        )
    }

    /// 408: the body did not arrive within the body timeout.
    pub(crate) fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
        )
    }

    /// 413: the body is larger than the configured limit.
    pub(crate) fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    }
}

/// Each refusal of the service core has one status. Store failures are the server's, not the
/// client's: 503, so the widget shows an error and retrying later can work.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = match &refusal {
            Refusal::UnknownSite | Refusal::NoPendingVerification | Refusal::NotFound => {
                StatusCode::NOT_FOUND
            }
            Refusal::OriginNotAllowed
            | Refusal::InvalidKey
            | Refusal::BypassKeyRejected
            | Refusal::Limited(Limited::Guessing(_)) => StatusCode::FORBIDDEN,
            Refusal::Limited(Limited::Rate(_) | Limited::Pending) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::ModeMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::SiteLocked | Refusal::NotFinished => StatusCode::LOCKED,
            Refusal::QuotaExhausted => StatusCode::PAYMENT_REQUIRED,
            Refusal::ProofOfWork(_) => StatusCode::CONFLICT,
            Refusal::Expired => StatusCode::GONE,
            Refusal::RetrievalLimitReached => StatusCode::TOO_MANY_REQUESTS,
            Refusal::NoOutageOnRecord => StatusCode::PRECONDITION_FAILED,
        };
        let message: Cow<'static, str> = refusal.to_string().into();
        let retry_after = match refusal {
            Refusal::Limited(Limited::Rate(wait) | Limited::Guessing(wait)) => {
                Some(wait.as_secs().max(1))
            }
            Refusal::Limited(Limited::Pending) => Some(60),
            _ => None,
        };
        ApiError {
            retry_after,
            ..ApiError::new(status, refusal.label(), message)
        }
    }
}

/// 503: the store failed, which is not the client's doing.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let (code, message) = match error {
            StoreError::Full => (
                "store_full",
                "too many open verifications; try again shortly",
            ),
            // The reason may name internals (addresses, paths); it is logged, not returned.
            _ => ("store_unavailable", "the verification store is unavailable"),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl From<verification::Error> for ApiError {
    fn from(error: verification::Error) -> Self {
        match error {
            verification::Error::Refused(refusal) => refusal.into(),
            verification::Error::Store(error) => error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        // For the access log line.
        response.extensions_mut().insert(super::Reason(self.code));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
