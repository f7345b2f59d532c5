//! `GET /verifications/{id}/assessments`, the older results API that the 2.x backend libraries
//! call (see `docs/protocol.md`, "The older results API"). It answers from the same retrieval as
//! `GET /v2/…/results`: one retrieval counts for both, with the same lifetime, limits, key-guess
//! lockout and key check; only the key's place, the result's shape and some statuses differ:
//! 400 for an id that is not a UUID, 410 for a result already retrieved as often as allowed.
//! A site with `older_results_api = false` does not answer it (its verifications read as 404).
//! No failover claim is answered: the 2.x libraries make none.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::SiteName;
use super::error::ApiError;
use super::extract::ClientIp;
use crate::protocol::Assessment;
use crate::secret::KeyHash;
use crate::state::{AppState, KeySites};
use crate::verification::{self, Error, Refusal};

/// `GET /verifications/{id}/assessments`.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(key) = key_of(&headers, query.as_deref()) else {
        return ApiError::forbidden(
            "the secret key is required in the tc-authorization or secret-key header",
        )
        .into_response();
    };
    // Only the key's sites that answer the older API: a verification of another reads as
    // unknown, and a key of no such site as one that is valid for nothing.
    let for_key = state.sites_for_key(&key).await.map(|for_key| {
        if for_key.sites.iter().all(|site| site.older_results_api) {
            return for_key;
        }
        let sites: Vec<_> = for_key
            .sites
            .iter()
            .filter(|site| site.older_results_api)
            .cloned()
            .collect();
        let site_keys = sites.iter().map(|site| site.site_key).collect();
        std::sync::Arc::new(KeySites {
            sites,
            site_keys,
            expires_at: for_key.expires_at,
            key_id: for_key.key_id,
        })
    });
    let well_formed = uuid::Uuid::parse_str(&id).is_ok();
    let answer = verification::retrieve(&state, for_key, &id, false, ip).await;
    let mut response = match answer.outcome {
        Ok(retrieved) => Json(Assessment::of(
            &retrieved.result,
            retrieved.access_rule,
            state.clock.now(),
        ))
        .into_response(),
        Err(Error::Refused(Refusal::NotFound)) if !well_formed => ApiError::from(Refusal::NotFound)
            .with_status(StatusCode::BAD_REQUEST)
            .into_response(),
        Err(Error::Refused(refusal @ Refusal::RetrievalLimitReached)) => ApiError::from(refusal)
            .with_status(StatusCode::GONE)
            .into_response(),
        Err(error) => ApiError::from(error).into_response(),
    };
    if let Some(site) = answer.site {
        response
            .extensions_mut()
            .insert(SiteName(site.name.clone()));
    }
    response
}

/// The secret key: the `tc-authorization` header (the 2.x libraries), the `secret-key` header
/// (the older API's documentation), or the `accessToken` query parameter (its oldest clients;
/// the access log never writes a query).
fn key_of(headers: &HeaderMap, query: Option<&str>) -> Option<KeyHash> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let from_query = query.and_then(|query| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "accessToken" && !value.is_empty()).then_some(value)
        })
    });
    let key = header("tc-authorization")
        .or_else(|| header("secret-key"))
        .map(std::borrow::Cow::Borrowed)
        .or_else(|| {
            from_query.and_then(|value| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .ok()
            })
        })?;
    Some(KeyHash::of(&key))
}
