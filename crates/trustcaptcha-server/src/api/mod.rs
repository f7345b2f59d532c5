//! The HTTP API: one module per endpoint group, assembled into one router by [`router`].
//!
//! * [`widget`]: the browser widget's create and submit endpoints (with CORS);
//! * [`results`]: the backend's result endpoint;
//! * [`ops`]: health, readiness, metrics;
//! * [`extract`] and [`error`]: the extractors and the error answer they share.

pub mod error;
pub mod extract;
pub mod ops;
pub mod results;
pub mod widget;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument as _;

use time::OffsetDateTime;

use crate::state::AppState;
use crate::store::StoreError;
use error::ApiError;

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    // The widget fetches with credentials "same-origin", so a wildcard origin is enough and
    // works for every site; the per-site origin check happens in `widget::create`.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    let widget = Router::new()
        .route("/v2/verifications", post(widget::create))
        .route("/v2/verifications/{id}/challenges", post(widget::submit))
        .layer(cors);
    let backend = Router::new()
        .route("/v2/verifications/{id}/results", get(results::fetch))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    Router::new()
        .merge(widget)
        .merge(backend)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The edge of every request: a tracing span (method and route, never headers, so no key or
/// token is logged) and the request metrics.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!("request", %method, endpoint = %endpoint, status = tracing::field::Empty);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("status", status);
    tracing::debug!(parent: &span, latency_ms = elapsed.as_secs_f64() * 1000.0, "answered");
    state
        .metrics
        .request(&endpoint, method.as_str(), status, elapsed.as_secs_f64());
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response.into_response()
}

/// Maps store failures to 503 and keeps the outage record in step with the store's health.
pub(crate) fn store_result<T>(
    state: &AppState,
    now: OffsetDateTime,
    result: Result<T, StoreError>,
) -> Result<T, ApiError> {
    match result {
        Ok(value) => {
            state.outages.store_recovered(now);
            Ok(value)
        }
        Err(StoreError::Full) => Err(ApiError::unavailable(
            "too many open verifications; try again shortly",
        )),
        Err(StoreError::Duplicate) => Err(ApiError::unavailable(
            "could not allocate a verification id",
        )),
        Err(StoreError::Unavailable(reason)) => {
            tracing::error!(%reason, "store unavailable");
            state.outages.store_failed(now);
            Err(ApiError::unavailable(
                "the verification store is unavailable",
            ))
        }
    }
}
