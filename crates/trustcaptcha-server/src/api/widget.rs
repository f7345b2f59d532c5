//! The widget's two endpoints (see `docs/protocol.md`):
//!
//! * `POST /v2/verifications`: 200 with a challenge, or 201 at once for a bypass key;
//! * `POST /v2/verifications/{id}/challenges`: 201 with the token, 409 when the proof-of-work
//!   is wrong, 404 when nothing is pending under that id.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{JsonBody, VerificationId};
use super::{MinimalData, SiteName};
use crate::protocol::{CreateRequest, SubmitRequest};
use crate::state::AppState;
use crate::tls::TlsClient;
use crate::verification::{self, Created, RequestContext};

/// `POST /v2/verifications`.
pub(crate) async fn create(
    State(state): State<AppState>,
    context: RequestContext,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let tls = context.tls.clone().map(TlsClient);
    let answer = verification::create(&state, request, context).await;
    let mut response = match answer.outcome {
        Ok(Created::Challenge(body)) => Json(body).into_response(),
        Ok(Created::Finished(body)) => (StatusCode::CREATED, Json(body)).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    };
    if let Some(site) = answer.site {
        response
            .extensions_mut()
            .insert(SiteName(site.name.clone()));
        if site.minimal_data_mode {
            response.extensions_mut().insert(MinimalData);
        } else if let Some(tls) = tls {
            // For the access line: the fingerprint an operator looks up when `tls` fired.
            response.extensions_mut().insert(tls);
        }
    }
    Ok(response)
}

/// `POST /v2/verifications/{id}/challenges`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    VerificationId(id): VerificationId,
    context: RequestContext,
    JsonBody(request): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let solved = verification::submit(&state, id, request, &context).await?;
    let mut response = (StatusCode::CREATED, Json(solved.body)).into_response();
    let extensions = response.extensions_mut();
    extensions.insert(SiteName(solved.site.name.clone()));
    if solved.site.minimal_data_mode {
        extensions.insert(MinimalData);
    }
    extensions.insert(solved.signals);
    Ok(response)
}
