//! Extractors with rejections that are [`ApiError`]s: a JSON body that answers 400 (never
//! axum's 422, which the widget would show as a minimal-data-mode mismatch) or 413, a
//! verification id from the path that answers 404 when malformed, the client's IP, and the
//! bearer key.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use crate::secret::KeyHash;
use crate::state::AppState;
use crate::tls::{Ja4, TlsClient};
use crate::verification::RequestContext;

/// A JSON body, whatever its `Content-Type` (the widget always sends JSON).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large()
                } else if timed_out(&rejection) {
                    ApiError::body_timeout()
                } else {
                    ApiError::bad_request("the request body could not be read")
                }
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!("the body is not valid JSON for this endpoint: {e}"))
        })
    }
}

/// Whether reading the body stopped because the body timeout elapsed.
fn timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(current) = cause {
        if current.is::<tower_http::timeout::TimeoutError>()
            || current.is::<super::body_rate::TooSlow>()
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// The `{id}` path segment as a verification id (any case); malformed ids are unknown ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerificationId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for VerificationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("no pending verification with this id"))?;
        Uuid::parse_str(&id)
            .map(VerificationId)
            .map_err(|_| ApiError::not_found("no pending verification with this id"))
    }
}

/// The client's address as [`crate::client_address`] reads it: the peer, or what the trusted
/// proxy's header says. Worked out once per request, by the edge layer, which logs it too;
/// `None` when the request did not come through a connection (a router driven in-process) or
/// the proxy's entry cannot be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The client of a request from `peer` with `headers`.
    pub(crate) fn of(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        ClientIp(peer.and_then(|peer| state.settings.proxies().client(peer.ip(), headers)))
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<ClientIp>() {
            return Ok(*client);
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp::of(state, peer.map(|peer| peer.0), &parts.headers))
    }
}

/// What a widget request tells beyond its body: the client's address, `Origin`, `User-Agent`,
/// the headers, and the TLS client's fingerprint (the connection's, or from a trusted proxy
/// that terminates TLS, its `tls_fingerprint_header`; from anyone else that header is a claim
/// and is not read).
impl FromRequestParts<AppState> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let from_proxy = state
            .settings
            .tls_fingerprint_header
            .as_deref()
            .filter(|_| peer.is_some_and(|peer| state.settings.proxies().trusts(peer.0.ip())));
        let tls = match from_proxy {
            Some(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(Ja4::parse),
            None => parts
                .extensions
                .get::<TlsClient>()
                .map(|client| client.0.clone()),
        };
        Ok(RequestContext {
            ip,
            origin: header(axum::http::header::ORIGIN),
            user_agent: header(axum::http::header::USER_AGENT),
            headers: parts.headers.clone(),
            tls,
        })
    }
}

/// The digest of the `Authorization: Bearer <key>` key; a missing or malformed header is 403.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerKey(pub KeyHash);

impl<S: Send + Sync> FromRequestParts<S> for BearerKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        bearer(&parts.headers).map(BearerKey).ok_or_else(|| {
            ApiError::forbidden("an api key is required as Authorization: Bearer <key>")
        })
    }
}

/// The digest of the `Authorization: Bearer <key>` key, if the header has that form with a key
/// that is not empty (the scheme in any case): the backend's API key, the admin token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<KeyHash> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty()).then(|| KeyHash::of(key))
}
