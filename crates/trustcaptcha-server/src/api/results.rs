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
use crate::state::{AppState, KeySites};
use crate::statistics::Event;
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
    let for_key = state.sites_for_key(&key);
    let (answer, site) = counted(&state, for_key, &id, client_failover, ip).await;
    let mut response = match answer {
        Ok(retrieved) => sized_json(&retrieved.result)?,
        Err(refusal) => ApiError::from(refusal).into_response(),
    };
    if let Some(site) = site {
        response.extensions_mut().insert(SiteName(site));
    }
    Ok(response)
}

/// [`verification::retrieve`] for the sites in `for_key`, counted in the metrics and the site's
/// statistics whichever API asked; also returns the site's name, for the access log.
pub(super) async fn counted(
    state: &AppState,
    for_key: Option<std::sync::Arc<KeySites>>,
    id: &str,
    client_failover: bool,
    ip: Option<std::net::IpAddr>,
) -> (
    Result<verification::Retrieved, verification::Refusal>,
    Option<std::sync::Arc<str>>,
) {
    // Looked up once: the core judges the key by it, the metrics and the log name its site.
    let site = for_key
        .as_ref()
        .and_then(|sites| sites.sites.first().map(|site| site.name.clone()));
    let answer = verification::retrieve(state, for_key, id, client_failover, ip).await;
    let outcome = match &answer {
        Ok(retrieved) => retrieved.outcome,
        Err(refusal) => refusal.label(),
    };
    state.metrics.retrieved(site.as_ref(), outcome);
    if let Some(site) = &site {
        state
            .statistics
            .count(site, Event::named("retrieval", outcome));
    }
    (answer, site)
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
