//! The HTTP layer: handlers that extract what the [service core](crate::verification) needs
//! and render what it returns, one module per endpoint group, assembled by [`app`] (and
//! [`admin`] for the operator's listener).
//!
//! * [`widget`]: the browser widget's create and submit endpoints (with CORS, and the bounds on
//!   their bodies: size, time, and [`body_rate`]);
//! * [`results`]: the backend's results endpoint, and [`assessments`], the older one;
//! * [`widget_files`]: the official widget's package, when `widget_dir` is set;
//! * [`ops`]: health, readiness, metrics, reload and statistics;
//! * [`console`]: the console's pages, sign-in and the admin API;
//! * [`edge`]: what every request passes on its way in and out (access log, metrics);
//! * [`extract`] and [`error`]: the extractors and the error answer they share.

pub(crate) mod assessments;
pub(crate) mod body_rate;
pub(crate) mod console;
pub(crate) mod edge;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod ops;
pub(crate) mod results;
pub(crate) mod widget;
pub(crate) mod widget_files;

pub(crate) use ops::AdminAccess;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer as _, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::state::AppState;
use error::ApiError;

const CREATE: &str = "/v2/verifications";
const SUBMIT: &str = "/v2/verifications/{id}/challenges";
const RESULTS: &str = "/v2/verifications/{id}/results";
const ASSESSMENTS: &str = "/verifications/{id}/assessments";
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const RELOAD: &str = "/admin/reload";
const STATISTICS: &str = "/admin/statistics";
/// Where the official widget's package is served from, when `server.widget_dir` is set.
const WIDGET: &str = "/widget";
const METRICS: &str = "/metrics";

/// Every route of the public listener, as the metrics label it and `docs/openapi.json`
/// documents it.
pub(crate) const ROUTES: [&str; 5] = [CREATE, SUBMIT, RESULTS, ASSESSMENTS, HEALTHZ];

/// Every route of the admin listener's API (not the console's pages), as
/// `docs/admin-openapi.json` documents it.
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn admin_routes() -> Vec<&'static str> {
    let mut routes = vec![HEALTHZ, READYZ, METRICS, RELOAD, STATISTICS];
    routes.extend(console::API_ROUTES);
    routes
}

/// The service the server runs: the router behind path normalisation. The widget joins
/// `api-url` and `/v2/verifications`, so an `api-url` with a trailing slash asks for
/// `//v2/verifications`; normalising before routing makes that work.
pub type App = NormalizePath<Router>;

/// Builds the service over `state`: exactly what the server serves.
pub fn app(state: AppState) -> App {
    // The widget fetches with credentials "same-origin", so a wildcard origin is enough and
    // works for every site; the per-site origin check happens in the service core.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    // Only the widget's endpoints read bodies, so only they pay for bounding them.
    let bodies = ServiceBuilder::new()
        // A body that arrives, but too slowly to be a browser's, is cut off (408)…
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body_rate::minimum_rate,
        ))
        // …and so is one that trickles in for too long: a stalled client cannot hold memory.
        .layer(RequestBodyTimeoutLayer::new(
            state.settings.body_read_timeout,
        ))
        .map_request(|request: Request<_>| request.map(axum::body::Body::new))
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes))
        .layer(cors);
    let widget = Router::new()
        .route(CREATE, post(widget::create))
        .route(SUBMIT, post(widget::submit))
        .layer(bodies);
    // Readiness and metrics are the operator's: they answer on the admin listener.
    let backend = Router::new()
        // axum answers HEAD with the GET handler; here that would spend a retrieval.
        .route(RESULTS, get(results::retrieve).head(results::head))
        .route(ASSESSMENTS, get(assessments::retrieve).head(results::head))
        .route(HEALTHZ, get(ops::healthz));
    let mut router = Router::new().merge(widget).merge(backend);
    if let Some(dir) = &state.settings.widget_dir {
        let files = widget_files::WidgetFiles::new(dir);
        router = router.nest_service(
            WIDGET,
            tower::service_fn(move |request| {
                let files = files.clone();
                async move { Ok::<_, std::convert::Infallible>(files.serve(request).await) }
            }),
        );
    }
    // One stack, so that a request passes one boxed service, not one per layer.
    let every_request = ServiceBuilder::new()
        .layer(edge::EdgeLayer(state.clone()))
        // A bug must cost one request a 500, never the connection (which the client would read
        // as an outage) or the process.
        .layer(CatchPanicLayer::custom(panicked))
        // Requests beyond this wait before their bodies are read: body memory stays bounded.
        .layer(GlobalConcurrencyLimitLayer::new(
            state.settings.max_requests_in_flight,
        ));
    let router = router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(every_request)
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The answer to a request whose handler panicked: logged at error level, 500 to the client.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let reason = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown");
    tracing::error!(%reason, "a request handler panicked");
    ApiError::internal().into_response()
}

/// The admin listener's service: health, readiness, metrics and reload, answered on a
/// connection budget of their own, to whom `access` lets in.
pub(crate) fn admin(state: AppState, access: ops::AdminAccess) -> App {
    let router = Router::new()
        .route(READYZ, get(ops::readyz))
        .route(METRICS, get(ops::metrics))
        .route(RELOAD, post(ops::reload))
        .route(STATISTICS, get(ops::statistics))
        .merge(console::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            move |State(state): State<AppState>, request, next| {
                console::auth::guard(state, access, request, next)
            },
        ))
        // Health answers anyone, before the guard.
        .route(HEALTHZ, get(ops::healthz))
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The site a request was for, when a handler knows it: the access log names it.
#[derive(Debug, Clone)]
pub(crate) struct SiteName(pub(crate) Arc<str>);

/// Set on the answer to a visitor of a minimal-data site: the access log names only the
/// visitor's block (an IPv4 /24, an IPv6 /48), not its network.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinimalData;

/// Why a request was refused (the error code of the answer): the access log names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reason(pub(crate) &'static str);
