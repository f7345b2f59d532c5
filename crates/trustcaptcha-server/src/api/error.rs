//! [`ApiError`]: every non-2xx answer, as a status and a small JSON body
//! `{"error": "<code>", "message": "<text>"}`.
//!
//! The widget reads only the status (widget protocol §1.3), so the status is what matters; the
//! body helps people reading logs and `curl` output. No message ever contains a key or token.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the body is not what the endpoint expects.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 402: the site's verification quota is used up.
    pub fn quota_exhausted() -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "quota_exhausted",
            "the captcha's verification quota is used up for this hour",
        )
    }

    /// 403: key or origin not allowed.
    pub fn forbidden(message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such site or verification.
    pub fn not_found(message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the proof-of-work is wrong or incomplete.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "pow_failure", message)
    }

    /// 410: the result has expired.
    pub fn gone() -> Self {
        Self::new(
            StatusCode::GONE,
            "expired",
            "the verification result has expired",
        )
    }

    /// 412: a client-reported failover without a recorded outage.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "no_outage_on_record",
            "the client reported a failover, but no recent outage is on record",
        )
    }

    /// 413: the body is larger than the configured limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    }

    /// 422: the widget's minimal-data mode differs from the site's.
    pub fn mode_mismatch() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "minimal_data_mode_mismatch",
            "the widget's minimal-data mode does not match the captcha configuration",
        )
    }

    /// 423: the verification has not been finished.
    pub fn locked() -> Self {
        Self::new(
            StatusCode::LOCKED,
            "not_finished",
            "the verification has not been finished yet",
        )
    }

    /// 423 on create: the site is locked.
    pub fn site_locked() -> Self {
        Self::new(
            StatusCode::LOCKED,
            "captcha_locked",
            "this captcha is locked",
        )
    }

    /// 429: the result was fetched as often as allowed.
    pub fn too_many_retrievals() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "retrieval_limit_reached",
            "the verification result was already retrieved as often as allowed",
        )
    }

    /// 503: the server cannot take the request now.
    pub fn unavailable(message: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// Store failures are the server's, not the client's: 503, so the widget shows an error and
/// retrying later can work.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::unavailable(match error {
            StoreError::Full => "too many open verifications; try again shortly",
            StoreError::Duplicate => "could not allocate a verification id",
            StoreError::Unavailable(_) => "the verification store is unavailable",
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}
