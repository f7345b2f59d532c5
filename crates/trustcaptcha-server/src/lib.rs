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
use std::sync::Arc;
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

/// How long in-flight requests get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests ten seconds to finish.
///
/// Connections are bounded by `server.max_connections` (further clients wait in the listen
/// backlog), and a client must send its headers within `server.header_read_timeout_secs`
/// (against slow-loris clients).
///
/// A failed connection is logged and dropped; a failed `accept` is retried after a short
/// pause, as such errors are usually transient (e.g. out of file descriptors).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt as _;

    let sweeper = tokio::spawn(sweep(state.clone()));
    let limit = Arc::new(tokio::sync::Semaphore::new(state.settings.max_connections));
    let header_read_timeout = state.settings.header_read_timeout;
    let app = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service =
            app.clone()
                .map_request(move |request: axum::http::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    // Routing happens inside the router, so the path is normalised before it.
                    collapse_slashes(request)
                });
        let connection = builder
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the shutdown grace period");
    }
    sweeper.abort();
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
    tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
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
