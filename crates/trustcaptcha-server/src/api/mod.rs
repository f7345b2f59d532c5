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

const CREATE: &str = "/v2/verifications";
const SUBMIT: &str = "/v2/verifications/{id}/challenges";
const RESULTS: &str = "/v2/verifications/{id}/results";
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";

/// Every route, as the metrics label it.
const ROUTES: [&str; 6] = [CREATE, SUBMIT, RESULTS, HEALTHZ, READYZ, METRICS];

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
        .route(CREATE, post(widget::create))
        .route(SUBMIT, post(widget::submit))
        .layer(cors);
    let backend = Router::new()
        .route(RESULTS, get(results::fetch))
        .route(HEALTHZ, get(ops::healthz))
        .route(READYZ, get(ops::readyz))
        .route(METRICS, get(ops::metrics));
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
        .and_then(|path| ROUTES.into_iter().find(|route| *route == path.as_str()))
        .unwrap_or("unmatched");
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let span = tracing::info_span!("request", %method, endpoint = %endpoint, status = tracing::field::Empty);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("status", status);
    tracing::debug!(parent: &span, latency_ms = elapsed.as_secs_f64() * 1000.0, "answered");
    state
        .metrics
        .request(endpoint, method, status, elapsed.as_secs_f64());
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response.into_response()
}

/// Keeps the outage record in step with the store's health and passes the outcome on: every
/// store call of the handlers goes through here, so an outage is noticed wherever it shows.
pub(crate) fn observe_store<T>(
    state: &AppState,
    now: OffsetDateTime,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match &result {
        Ok(_) => state.outages.store_recovered(now),
        Err(StoreError::Unavailable(reason)) => {
            tracing::error!(%reason, "store unavailable");
            state.outages.store_failed(now);
        }
        Err(StoreError::Full | StoreError::Duplicate) => {}
    }
    result
}
