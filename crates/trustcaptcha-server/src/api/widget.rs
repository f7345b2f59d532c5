//! The widget's two endpoints (see `docs/protocol.md`):
//!
//! * `POST /v2/verifications`: 200 with a challenge, or 201 at once for a bypass key;
//! * `POST /v2/verifications/{id}/challenges`: 201 with the token, 409 when the proof-of-work
//!   is wrong, 404 when nothing is pending under that id.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{ClientIp, JsonBody, VerificationId};
use super::{MinimalData, SiteName};
use crate::protocol::{CreateRequest, SubmitRequest};
use crate::state::AppState;
use crate::verification::{self, Created, RequestContext};

/// `POST /v2/verifications`.
pub(crate) async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let context = RequestContext {
        ip,
        origin: header(header::ORIGIN),
        user_agent: header(header::USER_AGENT),
        headers,
    };
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
        }
    }
    Ok(response)
}

/// `POST /v2/verifications/{id}/challenges`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    VerificationId(id): VerificationId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let solved = verification::submit(&state, id, request, ip, &headers).await?;
    let mut response = (StatusCode::CREATED, Json(solved.body)).into_response();
    let extensions = response.extensions_mut();
    extensions.insert(SiteName(solved.site.name.clone()));
    if solved.site.minimal_data_mode {
        extensions.insert(MinimalData);
    }
    extensions.insert(solved.signals);
    Ok(response)
}
