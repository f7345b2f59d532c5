//! The accept loop both listeners share: the connection limits (overall and per client
//! network), the header timeout, connection ages and graceful shutdown.
//!
//! The loop only accepts connections, tags each request with its peer address and hands it to
//! the app; everything a request meets after that is inside the app, so tests that drive the app
//! see what clients see.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Concurrent streams one HTTP/2 connection may open; the widget needs one at a time.
const MAX_STREAMS: u32 = 16;

/// How long in-flight requests get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long an HTTP/1 connection that is to close (too old, or the server stopping) gets to
/// close itself before it is closed anyway. Closing an idle HTTP/1 connection races with the
/// next request the client may be sending on it, which then gets no answer at all (a pooled
/// backend client reports the server unreachable); so its next response says
/// `Connection: close` instead, and only a connection with no request meanwhile is closed.
/// HTTP/2 says the same without a race (GOAWAY), at once.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The most a connection buffers of a request's head (HTTP/1's read buffer, HTTP/2's header
/// list): a browser's or a backend's are a few kilobytes. hyper's default buffer grows to some
/// 400 KiB, so that unfinished headers could hold half a megabyte per connection; this bounds a
/// network's share at `max_connections_per_network` times it. Bigger heads get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most header fields in an HTTP/1 request.
const MAX_HEADERS: usize = 100;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests ten seconds to finish.
pub(super) async fn accept(
    listener: TcpListener,
    app: crate::App,
    settings: crate::config::ServerSettings,
    tls: Option<crate::tls::Acceptor>,
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
        let app = app.clone();
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        let tls = tls.clone();
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
            let connection = Connection {
                app,
                peer,
                builder,
                stopping,
                max_age,
            };
            match tls {
                None => connection.serve(stream, None).await,
                Some(tls) => {
                    // The handshake, like a request's headers, must arrive in time.
                    match tokio::time::timeout(first_byte, tls.accept(stream)).await {
                        Ok(Ok((stream, ja4))) => connection.serve(stream, ja4).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
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

/// One accepted connection, to be served.
struct Connection {
    app: crate::App,
    peer: std::net::SocketAddr,
    builder: Builder<TokioExecutor>,
    stopping: tokio::sync::watch::Receiver<bool>,
    max_age: Duration,
}

impl Connection {
    /// Serves the connection's requests on `io` until it closes, is too old, or the server
    /// stops; each request carries the peer's address and the TLS client's fingerprint.
    async fn serve<I>(mut self, io: I, ja4: Option<crate::tls::Ja4>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let tls = ja4.map(crate::tls::TlsClient);
        let state = Arc::new(Closing::default());
        let (seen, marked) = (Arc::clone(&state), Arc::clone(&state));
        let service = self
            .app
            .map_request(move |request: axum::http::Request<hyper::body::Incoming>| {
                if request.version() >= axum::http::Version::HTTP_2 {
                    seen.http2.store(true, Ordering::Relaxed);
                }
                let mut request = request.map(axum::body::Body::new);
                let extensions = request.extensions_mut();
                extensions.insert(axum::extract::ConnectInfo(peer));
                if let Some(tls) = &tls {
                    extensions.insert(tls.clone());
                }
                request
            })
            .map_response(move |mut response: axum::response::Response| {
                if marked.due.load(Ordering::Relaxed) && !marked.http2.load(Ordering::Relaxed) {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                response
            });
        let connection = self
            .builder
            .serve_connection(
                TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        tokio::pin!(connection);
        let aged = tokio::time::sleep(self.max_age);
        tokio::pin!(aged);
        // Armed when the connection is due to close: then it closes even if idle.
        let grace = tokio::time::sleep(Duration::MAX);
        tokio::pin!(grace);
        let (mut due, mut closed) = (false, false);
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                () = &mut aged, if !due => due = true,
                _ = self.stopping.changed(), if !due => due = true,
                () = &mut grace, if due && !closed => {
                    closed = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            if due && !state.due.swap(true, Ordering::Relaxed) {
                if state.http2.load(Ordering::Relaxed) {
                    closed = true;
                    connection.as_mut().graceful_shutdown();
                } else {
                    grace
                        .as_mut()
                        .reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// What a connection's requests and responses tell its serving loop, and back: whether it
/// speaks HTTP/2, and whether it is due to close.
#[derive(Debug, Default)]
struct Closing {
    http2: AtomicBool,
    due: AtomicBool,
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
