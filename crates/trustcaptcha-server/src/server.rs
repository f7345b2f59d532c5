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

/// Concurrent streams one HTTP/2 connection may open; the widget needs one at a time.
const MAX_STREAMS: u32 = 16;

/// How long in-flight requests get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests ten seconds to finish.
///
/// Connections are bounded by `server.max_connections` (further clients wait in the listen
/// backlog) and per client network by `server.max_connections_per_network` (trusted proxies
/// excepted; further connections are closed at once). A client must send its first byte and
/// then each request's headers within `server.header_read_timeout_secs` (against slow-loris
/// clients); an HTTP/2 client may open at most 16 streams at once; every
/// connection is closed gracefully after `server.max_connection_age_secs`.
///
/// A failed connection is logged and dropped; a failed `accept` is retried after a short
/// pause, as such errors are usually transient (e.g. out of file descriptors).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = state.settings.clone();
    let tasks = crate::tasks::Tasks::start(&state).await;
    accept(listener, crate::app(state.clone()), settings, shutdown).await;
    drop(tasks);
    // What was counted since the last flush is not lost with the process.
    if let Err(error) = state
        .statistics
        .flush(&state.store, state.clock.now())
        .await
    {
        tracing::warn!(%error, "the last statistics were not stored");
    }
}

/// The most a connection buffers of a request's head (HTTP/1's read buffer, HTTP/2's header
/// list): a browser's or a backend's are a few kilobytes. hyper's default buffer grows to some
/// 400 KiB, so that unfinished headers could hold half a megabyte per connection; this bounds a
/// network's share at `max_connections_per_network` times it. Bigger heads get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most header fields in an HTTP/1 request.
const MAX_HEADERS: usize = 100;

/// Connections the admin listener serves at once.
const ADMIN_CONNECTIONS: usize = 64;

/// Connections one client network may hold on the admin listener: a few dozen half-open
/// connections from one address must not take every slot from the operator.
const ADMIN_CONNECTIONS_PER_NETWORK: usize = 8;

/// How long an admin client may take to send its first byte and each request's headers: an
/// operator's tool sends them at once.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the operator's endpoints (`/healthz`, `/readyz`, `/metrics`, `POST /admin/reload`)
/// of `state` on `listener` until `shutdown` completes. It has a connection budget of its own,
/// so these answer while the public listener is saturated. On a loopback address anyone who can
/// connect may use it; on any other, only requests with the admin token
/// (`server.admin_token`), and nobody when none is configured.
pub async fn serve_admin(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let settings = crate::config::ServerSettings {
        max_connections: ADMIN_CONNECTIONS,
        max_connections_per_network: ADMIN_CONNECTIONS_PER_NETWORK,
        header_read_timeout: ADMIN_HEADER_TIMEOUT,
        ..state.settings.clone()
    };
    let loopback = listener
        .local_addr()
        .is_ok_and(|address| address.ip().is_loopback());
    let access = match (loopback, state.settings.admin_token) {
        (true, _) => crate::api::AdminAccess::Open,
        (false, Some(token)) => crate::api::AdminAccess::Token(token),
        (false, None) => {
            tracing::error!(
                "the admin listener is reachable beyond loopback and no admin token is set: it refuses every request"
            );
            crate::api::AdminAccess::Closed
        }
    };
    accept(
        listener,
        crate::api::admin(state, access),
        settings,
        shutdown,
    )
    .await;
}

/// The accept loop shared by both listeners.
async fn accept(
    listener: TcpListener,
    app: crate::App,
    settings: crate::config::ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let per_network = Arc::new(PerNetwork::default());
    // Tells every connection to finish its requests and close.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(settings.header_read_timeout))
        .keep_alive_timeout(settings.header_read_timeout);
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
        let exempt = settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()));
        let Some(slot) = per_network.enter(peer.ip(), exempt, settings.max_connections_per_network)
        else {
            tracing::debug!(%peer, "too many connections from this network");
            continue;
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
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        let (first_byte, max_age) = (settings.header_read_timeout, settings.max_connection_age);
        tokio::spawn(async move {
            // Protocol detection waits for the client's first bytes; a client that sends none
            // is closed instead of holding a slot.
            let mut probe = [0u8; 1];
            let first = tokio::select! {
                first = tokio::time::timeout(first_byte, stream.peek(&mut probe)) => first,
                _ = stopping.changed() => return,
            };
            if !matches!(first, Ok(Ok(1..))) {
                return;
            }
            let connection = builder
                .serve_connection(
                    TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(service),
                )
                .into_owned();
            tokio::pin!(connection);
            let aged = tokio::time::sleep(max_age);
            tokio::pin!(aged);
            let mut closing = false;
            let result = loop {
                tokio::select! {
                    result = connection.as_mut() => break result,
                    () = &mut aged, if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    _ = stopping.changed(), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it has closed: all of them back means all closed.
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the shutdown grace period");
    }
}

/// Open connections per client network.
#[derive(Debug, Default)]
struct PerNetwork(parking_lot::Mutex<std::collections::HashMap<ipnet::IpNet, usize>>);

/// One connection's place; dropping it frees the place (exempt connections count nowhere).
struct Slot {
    counts: Arc<PerNetwork>,
    network: Option<ipnet::IpNet>,
}

impl PerNetwork {
    /// A place for a connection from `ip`, unless its network has `max` already.
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, exempt: bool, max: usize) -> Option<Slot> {
        if exempt {
            return Some(Slot {
                counts: Arc::clone(self),
                network: None,
            });
        }
        let network = crate::networks::network(ip);
        let mut counts = self.0.lock();
        let count = counts.entry(network).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: Arc::clone(self),
            network: Some(network),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(network) = self.network else {
            return;
        };
        let mut counts = self.counts.0.lock();
        if let Some(count) = counts.get_mut(&network) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&network);
            }
        }
    }
}

/// A server started by [`spawn`]; dropping it shuts the server down gracefully.
#[derive(Debug)]
pub struct Spawned {
    /// The base URL, e.g. `http://127.0.0.1:41234`, to give the widget and the client.
    pub url: String,
    /// The admin listener's base URL (health, readiness, metrics, reload), on loopback.
    pub admin_url: String,
    shutdown: Option<tokio::sync::watch::Sender<()>>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already have stopped; then there is nothing to tell.
            let _ = shutdown.send(());
        }
    }
}

/// Binds `address` (e.g. `127.0.0.1:0`) and serves `state` on the current runtime, with its
/// admin listener on a free loopback port: the embedded server of tests, examples and demos.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn spawn(state: AppState, address: SocketAddr) -> std::io::Result<Spawned> {
    let listener = TcpListener::bind(address).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let admin = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let admin_url = format!("http://{}", admin.local_addr()?);
    // Before returning, so that what a test does next sees the start-up evidence recorded.
    crate::tasks::on_start(&state).await;
    let (shutdown, stopped) = tokio::sync::watch::channel(());
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
        let _ = stopped.changed().await;
    };
    tokio::spawn(serve_admin(
        admin,
        state.clone(),
        until_stopped(stopped.clone()),
    ));
    tokio::spawn(serve(listener, state, until_stopped(stopped)));
    Ok(Spawned {
        url,
        admin_url,
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
