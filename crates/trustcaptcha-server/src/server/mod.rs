//! Serving: [`Server`] binds the public and the admin listener for an [`AppState`], prepares
//! its store and serves both until told to stop, with the state's background work
//! (`crate::tasks`) beside them. `main` and [`spawn`] (the embedded server of tests, examples
//! and demos) both go through it. [`serve`] and [`serve_admin`] are its two halves, for
//! embedders that bind their own listeners; [`shutdown_signal`] is what `main` stops on.

mod accept;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::state::AppState;
use crate::store::StoreError;

/// Why a [`Server`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store cannot be used (unreachable, refusing writes, a file of a newer schema).
    #[error("the store {store} cannot be used: {source}")]
    Store {
        /// The store's URL, without credentials.
        store: String,
        /// What the store answered.
        source: StoreError,
    },
    /// An address cannot be bound.
    #[error("cannot listen on {address}{}: {source}", if *.admin { " (admin)" } else { "" })]
    Bind {
        /// The address asked for.
        address: String,
        /// Whether it is the admin listener's.
        admin: bool,
        /// Why not.
        source: std::io::Error,
    },
    /// The admin listener would be reachable beyond loopback without a token.
    #[error("{0}")]
    OpenAdmin(String),
}

/// Builds a [`Server`]: the public address (default `server.listen`) and the admin address
/// (default `server.admin_listen`, else 127.0.0.1 on the public port + 1, or any free port when
/// the public port is 0).
#[derive(Debug)]
#[must_use]
pub struct ServerBuilder {
    state: AppState,
    listen: Option<String>,
    admin_listen: Option<String>,
    reload_on_hangup: bool,
}

impl ServerBuilder {
    /// Listens on `address` (`HOST:PORT`; a host name is resolved, the first address that can be
    /// bound is used).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Some(address.into());
        self
    }

    /// Listens for the operator's endpoints on `address`.
    pub fn admin_listen(mut self, address: impl Into<String>) -> Self {
        self.admin_listen = Some(address.into());
        self
    }

    /// Re-reads the state's configuration file on every `SIGHUP` while serving (what `serve`
    /// does).
    pub fn reload_on_hangup(mut self) -> Self {
        self.reload_on_hangup = true;
        self
    }

    /// Prepares the store and binds both listeners.
    ///
    /// # Errors
    ///
    /// When the store cannot be used, an address cannot be bound, or the admin listener would be
    /// reachable beyond loopback without a token.
    pub async fn bind(self) -> Result<Server, ServeError> {
        let settings = self.state.settings().clone();
        let address = self.listen.unwrap_or_else(|| settings.listen.to_string());
        let admin_address = self.admin_listen.or(settings.admin_listen);
        self.state
            .prepare_store()
            .await
            .map_err(|source| ServeError::Store {
                store: self.state.store_name(),
                source,
            })?;
        let bind = |address: String, admin: bool| async move {
            TcpListener::bind(address.as_str())
                .await
                .map_err(|source| ServeError::Bind {
                    address,
                    admin,
                    source,
                })
        };
        let listener = bind(address.clone(), false).await?;
        let bound = local_addr(&listener, &address, false)?;
        let admin_address = admin_address.unwrap_or_else(|| {
            let any = address.rsplit_once(':').map(|(_, port)| port) == Some("0");
            let port = if any {
                0
            } else {
                bound.port().saturating_add(1)
            };
            format!("127.0.0.1:{port}")
        });
        let has_token = settings.admin_token.is_some();
        // Checked before binding too, so that nothing listens beyond loopback unguarded.
        crate::config::admin_listener_allowed(&admin_address, has_token)
            .map_err(ServeError::OpenAdmin)?;
        let admin = bind(admin_address.clone(), true).await?;
        let admin_bound = local_addr(&admin, &admin_address, true)?;
        crate::config::admin_listener_allowed(&admin_bound.to_string(), has_token)
            .map_err(ServeError::OpenAdmin)?;
        // What the console's integration snippets name when no public URL is configured.
        let _ = self.state.bound_url.set(base_url(&self.state, bound));
        Ok(Server {
            state: self.state,
            listener,
            admin,
            bound,
            admin_bound,
            reload_on_hangup: self.reload_on_hangup,
        })
    }
}

/// The public listener's base URL at `bound`: `https://` when it serves TLS.
fn base_url(state: &AppState, bound: SocketAddr) -> String {
    let scheme = if state.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{bound}")
}

fn local_addr(
    listener: &TcpListener,
    address: &str,
    admin: bool,
) -> Result<SocketAddr, ServeError> {
    listener.local_addr().map_err(|source| ServeError::Bind {
        address: address.to_owned(),
        admin,
        source,
    })
}

/// A server whose listeners are bound and whose store is ready: [`Server::run`] serves it.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    admin: TcpListener,
    /// The listeners' addresses, read when they were bound.
    bound: SocketAddr,
    admin_bound: SocketAddr,
    reload_on_hangup: bool,
}

impl Server {
    /// A builder for a server of `state`.
    pub fn builder(state: AppState) -> ServerBuilder {
        ServerBuilder {
            state,
            listen: None,
            admin_listen: None,
            reload_on_hangup: false,
        }
    }

    /// The public listener's address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    /// The admin listener's address.
    #[must_use]
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_bound
    }

    /// Serves both listeners until `shutdown` completes and `server.drain_secs` have passed
    /// (meanwhile `/readyz` answers 503 `draining`); then in-flight requests get ten seconds to
    /// finish, and what was counted since the last flush is stored.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop, stopped) = tokio::sync::watch::channel(());
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };
        let draining = self.state.clone();
        let reload = self
            .reload_on_hangup
            .then(|| reload_on_hangup(self.state.clone(), until_stopped(stopped.clone())));
        tokio::join!(
            async {
                shutdown.await;
                draining
                    .draining
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let drain = draining.settings().drain;
                if !drain.is_zero() {
                    tracing::info!(seconds = drain.as_secs(), "draining");
                    tokio::time::sleep(drain).await;
                }
                let _ = stop.send(());
            },
            async {
                if let Some(reload) = reload {
                    reload.await;
                }
            },
            serve(
                self.listener,
                self.state.clone(),
                until_stopped(stopped.clone())
            ),
            serve_admin(self.admin, self.state, until_stopped(stopped)),
        );
    }

    /// The public listener's base URL: `https://` when it serves TLS (`[server.tls]`).
    #[must_use]
    pub fn url(&self) -> String {
        base_url(&self.state, self.local_addr())
    }

    /// Serves on the current runtime until the returned handle is dropped: the embedded
    /// server of tests, examples and demos. The start-up evidence of downtime is looked at
    /// before this returns, so that what a test does next sees it.
    pub async fn spawn(self) -> Spawned {
        crate::tasks::on_start(&self.state).await;
        let url = self.url();
        let admin_url = format!("http://{}", self.admin_addr());
        let (shutdown, mut stopped) = tokio::sync::watch::channel(());
        tokio::spawn(self.run(async move {
            let _ = stopped.changed().await;
        }));
        Spawned {
            url,
            admin_url,
            shutdown: Some(shutdown),
        }
    }
}

/// Binds `address` (e.g. `127.0.0.1:0`) and serves `state` on the current runtime, with its
/// admin listener on a free loopback port: [`Server::spawn`] in one call.
///
/// # Errors
///
/// When the store cannot be used or the address cannot be bound.
pub async fn spawn(state: AppState, address: SocketAddr) -> Result<Spawned, ServeError> {
    Ok(Server::builder(state)
        .listen(address.to_string())
        .admin_listen("127.0.0.1:0")
        .bind()
        .await?
        .spawn()
        .await)
}

/// Re-reads the configuration file on every `SIGHUP` until `stopped` completes; a
/// configuration that is not valid is logged and the running one kept.
async fn reload_on_hangup(state: AppState, stopped: impl Future<Output = ()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be handled: reload through the admin listener");
            return;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => return,
                Some(()) = hangups.recv() => {
                    // The outcome is logged by the reload itself.
                    let _ = state.reload_from_file().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        stopped.await;
    }
}

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting and gives
/// in-flight requests ten seconds to finish.
///
/// Connections are bounded by `server.max_connections` (further clients wait in the listen
/// backlog) and per client network by `server.max_connections_per_network` (trusted proxies
/// excepted; further connections are closed at once). A client must send its first byte and
/// then each request's headers within `server.header_read_timeout_secs` (against slow-loris
/// clients); an HTTP/2 client may open at most 16 streams at once; every
/// connection is closed gracefully after `server.max_connection_age_secs`, and on shutdown: an
/// HTTP/1 connection by its next response saying `Connection: close` (or after two idle
/// seconds), never under a request the client is sending; an HTTP/2 one with GOAWAY.
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
    accept::accept(
        listener,
        crate::app(state.clone()),
        settings,
        state.tls.clone(),
        shutdown,
    )
    .await;
    drop(tasks);
    // What was counted since the last flush is not lost with the process.
    if let Err(error) = state.flush_statistics().await {
        tracing::warn!(%error, "the last statistics were not stored");
    }
}

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
    // The admin listener is for operators and health checks on a private network: plain HTTP.
    accept::accept(
        listener,
        crate::api::admin(state, access),
        settings,
        None,
        shutdown,
    )
    .await;
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
