//! `GET /v2/verifications/{id}/results`, the backend's endpoint (see `docs/protocol.md`):
//! 200 with the 20-field result; 403 for a key no site has; 404 unknown (or another site's);
//! 410 expired; 423 not finished; 429 retrieved as often as allowed; 412 for a client-reported
//! failover without an outage on record.

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::SiteName;
use super::error::ApiError;
use super::extract::{BearerKey, ClientIp};
use crate::state::AppState;
use crate::verification;

/// `GET /v2/verifications/{id}/results`.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    BearerKey(key): BearerKey,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let client_failover = query.as_deref().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("clientFailover=true"))
    });
    let for_key = state.sites_for_key(&key).await;
    let answer = verification::retrieve(&state, for_key, &id, client_failover, ip).await;
    let mut response = match answer.outcome {
        Ok(retrieved) => sized_json(&retrieved.result)?,
        Err(error) => ApiError::from(error).into_response(),
    };
    if let Some(site) = answer.site {
        response
            .extensions_mut()
            .insert(SiteName(site.name.clone()));
    }
    Ok(response)
}

/// `HEAD` on the results endpoint: 405. Retrieving a result spends one of its retrievals, so it
/// has no side-effect-free header-only form.
pub(crate) async fn head() -> Response {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET")],
    )
        .into_response()
}

/// A result as JSON.
fn sized_json(result: &trustcaptcha::VerificationResult) -> Result<Response, ApiError> {
    // A result is about 700 bytes of JSON: written into a buffer that size, it is never grown
    // by reallocation, and handed to hyper without a copy.
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, result).map_err(|_| ApiError::internal())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
