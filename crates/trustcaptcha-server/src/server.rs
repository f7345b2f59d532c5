//! Serving: the accept loop with its connection limit and header timeout, graceful shutdown,
//! [`spawn`] for embedded servers, and [`shutdown_signal`].
//!
//! The loop only accepts connections, tags each request with its peer address and hands it to
//! [`crate::app`]; everything a request meets after that is inside the app, so tests that drive
//! the app see what clients see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::state::AppState;

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
    let limit = Arc::new(tokio::sync::Semaphore::new(state.settings.max_connections));
    let header_read_timeout = state.settings.header_read_timeout;
    let app = crate::app(state);
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
                    request
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
