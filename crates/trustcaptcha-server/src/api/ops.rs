//! Operational endpoints: `GET /healthz` (the process answers), `GET /readyz` (the store can
//! serve and has room for new verifications), `GET /metrics` (Prometheus text), `POST
//! /admin/reload` (re-read the configuration file). All but `/healthz` answer on the admin
//! listener only, past its guard (`console::auth`).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use crate::secret::KeyHash;

use crate::state::AppState;
use crate::store::{Store as _, StoreError};

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 `ready`, or 503 with why not (the admin listener is the operator's):
/// `draining` once the server was told to stop, or what the store says.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".to_owned());
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(StoreError::Full) => (StatusCode::SERVICE_UNAVAILABLE, "store full".to_owned()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let stored = state.store.count().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(stored),
    )
}

/// `POST /admin/reload`: 200 when the configuration file was read and applied; 422 with every
/// problem when it was not (the running configuration stays).
pub(crate) async fn reload(State(state): State<AppState>) -> Response {
    match state.reload_from_file().await {
        Ok(()) => Json(json!({"reloaded": true})).into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "reloaded": false,
                "problems": error
                    .problems
                    .iter()
                    .map(|(location, message)| json!({"location": location, "message": message}))
                    .collect::<Vec<_>>(),
            })),
        )
            .into_response(),
    }
}

/// The query of `GET /admin/statistics`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct StatisticsQuery {
    site: String,
    #[serde(default = "day")]
    window: String,
}

fn day() -> String {
    "day".to_owned()
}

/// `GET /admin/statistics?site=NAME&window=hour|day|week`: the site's counts over that window,
/// from the store (every instance's), this instance's latest counts included.
pub(crate) async fn statistics(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<StatisticsQuery>,
) -> Result<Response, ApiError> {
    let Some((_, length)) = crate::statistics::series::WINDOWS
        .into_iter()
        .find(|(name, _)| *name == query.window)
    else {
        return Err(ApiError::bad_request("window must be hour, day or week"));
    };
    let unavailable = |_| ApiError::from(StoreError::Unavailable("statistics".into()));
    state.flush_statistics().await.map_err(unavailable)?;
    let mut counts =
        crate::statistics::series::totals(&state.store, &query.site, length, state.clock.now())
            .await
            .map_err(unavailable)?;
    // Every reported event, counted or not (the visitors' families only when counted).
    for event in crate::statistics::reported_events() {
        counts.entry(event).or_default();
    }
    Ok(Json(json!({"site": query.site, "window": query.window, "counts": counts})).into_response())
}

/// Who may use the admin listener.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AdminAccess {
    /// Anyone who can connect (a loopback listener).
    Open,
    /// Requests carrying `Authorization: Bearer <token>` with this token.
    Token(KeyHash),
    /// Nobody: the listener is reachable beyond loopback and no token is configured.
    Closed,
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::AdminAccess;
    use crate::config::{Config, Site};
    use crate::secret::KeyHash;
    use crate::state::AppState;

    async fn status(access: AdminAccess, authorization: Option<&str>) -> u16 {
        status_of("/metrics", access, authorization).await
    }

    async fn status_of(path: &str, access: AdminAccess, authorization: Option<&str>) -> u16 {
        let state = AppState::builder(Config::new(vec![Site::sandbox()]))
            .build()
            .expect("state");
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        crate::api::admin(state, access)
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn beyond_loopback_only_the_admin_token_opens_the_admin_listener() {
        let token = AdminAccess::Token(KeyHash::of("admin-token-0123456789"));
        assert_eq!(
            status(token, Some("Bearer admin-token-0123456789")).await,
            200
        );
        assert_eq!(
            status(token, Some("bearer admin-token-0123456789")).await,
            200
        );
        assert_eq!(
            status(token, Some("Bearer admin-token-012345678")).await,
            403
        );
        assert_eq!(status(token, Some("admin-token-0123456789")).await, 403);
        assert_eq!(status(token, None).await, 403);
        assert_eq!(
            status(AdminAccess::Closed, Some("Bearer admin-token-0123456789")).await,
            403
        );
        assert_eq!(status(AdminAccess::Open, None).await, 200);
    }

    #[tokio::test]
    async fn readiness_answers_probes_without_credentials_on_any_admin_listener() {
        let token = AdminAccess::Token(KeyHash::of("admin-token-0123456789"));
        for access in [token, AdminAccess::Closed, AdminAccess::Open] {
            assert_eq!(status_of("/readyz", access, None).await, 200);
        }
        assert_eq!(status_of("/healthz", token, None).await, 200);
        assert_eq!(status_of("/metrics", token, None).await, 403);
    }

    #[tokio::test]
    async fn wrong_admin_tokens_lock_their_network_out_even_for_the_right_one() {
        let mut config = Config::new(vec![Site::sandbox()]);
        config.server.failed_keys_per_hour = 3;
        let state = AppState::builder(config).build().expect("state");
        let token = AdminAccess::Token(KeyHash::of("admin-token-0123456789"));
        let status = |authorization: &'static str| {
            let request = Request::get("/metrics")
                .header("authorization", authorization)
                .body(Body::empty())
                .expect("request");
            let service = crate::api::admin(state.clone(), token);
            async move {
                service
                    .oneshot(request)
                    .await
                    .expect("infallible")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(status("Bearer admin-token-0123456789").await, 200);
        for _ in 0..3 {
            assert_eq!(status("Bearer admin-token-guess-0000").await, 403);
        }
        assert_eq!(
            status("Bearer admin-token-0123456789").await,
            403,
            "locked out for the hour"
        );
    }
}
