//! `trustcaptcha-server`: a self-hosted server that the official TrustCaptcha widget and backend
//! libraries work against.
//!
//! How a verification flows through the modules:
//!
//! 1. The widget calls `POST /v2/verifications` → [`api::widget`] checks the site, origin and
//!    mode ([`config`], [`rules`]), honours bypass keys ([`secret`]), raises the difficulty for
//!    busy clients ([`rules::SolveTracker`]), makes a challenge ([`pow`]) and keeps it in the
//!    [`store`].
//! 2. The widget solves it and calls `POST …/challenges` → [`pow`] verifies it, [`scoring`]
//!    (with [`integrity`]) judges the client, [`client_info`] describes it, and the result is
//!    stored; the widget gets a verification token.
//! 3. The site's backend calls `GET …/results` (e.g. with the `trustcaptcha` crate) →
//!    [`api::results`] checks the key, counts the retrieval atomically and returns the 20-field
//!    result, or a failover answer per [`failover`].
//!
//! [`app`] builds the router, so tests drive exactly what [`serve`] serves. [`state`] holds what
//! handlers share; [`clock`] lets tests move time; [`metrics`] feeds `/metrics`; [`solve`] is the
//! widget without a browser.

#![deny(missing_docs)]

pub mod api;
pub mod client_info;
pub mod clock;
pub mod config;
pub mod failover;
pub mod integrity;
pub mod metrics;
pub mod pow;
pub mod rules;
pub mod scoring;
pub mod secret;
pub mod solve;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// How often expired verifications are evicted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The server's router over `state`.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes in-flight requests.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep(state.clone()));
    // Routing happens inside the router, so the path is normalised before it.
    let service = tower::ServiceBuilder::new()
        .map_request(collapse_slashes)
        .service(app(state));
    let result =
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(service),
        )
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    result
}

/// Collapses repeated slashes in the path: the widget concatenates `api-url` and
/// `/v2/verifications`, so an `api-url` with a trailing slash asks for `//v2/verifications`.
fn collapse_slashes(mut request: axum::extract::Request) -> axum::extract::Request {
    let uri = request.uri();
    if !uri.path().contains("//") {
        return request;
    }
    let mut path = String::with_capacity(uri.path().len());
    for segment in uri.path().split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = path.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

async fn sweep(state: AppState) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        let evicted = state.store.evict_expired(state.clock.now());
        if evicted > 0 {
            tracing::debug!(evicted, "evicted expired verifications");
        }
    }
}

/// A server started by [`spawn`]; dropping it shuts the server down gracefully.
#[derive(Debug)]
pub struct Spawned {
    /// The base URL, e.g. `http://127.0.0.1:41234`, to give the widget and the client.
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already have stopped; then there is nothing to tell.
            let _ = shutdown.send(());
        }
    }
}

/// Binds `address` (e.g. `127.0.0.1:0`) and serves `state` on the current runtime: the embedded
/// server of tests, examples and demos.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn spawn(state: AppState, address: SocketAddr) -> std::io::Result<Spawned> {
    let listener = TcpListener::bind(address).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        if let Err(error) = serve(listener, state, stopped).await {
            tracing::error!(%error, "embedded server failed");
        }
    });
    Ok(Spawned {
        url,
        shutdown: Some(shutdown),
    })
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed, only SIGTERM ends the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
