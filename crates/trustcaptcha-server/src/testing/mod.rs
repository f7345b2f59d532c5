//! Test support (feature `test-support`): a real server on 127.0.0.1:0 with a manual clock,
//! helpers that speak the widget's protocol over HTTP, and a log capture. The one way this
//! workspace's tests, examples, benchmarks and demo start an embedded server.
//!
//! ```
//! # async fn run() {
//! use trustcaptcha_server::testing::TestServer;
//!
//! let server = TestServer::sandbox().await;
//! let token = server.solve(&trustcaptcha_server::config::SANDBOX_SITE_KEY.to_string()).await;
//! let result = server.fetch(trustcaptcha_server::config::SANDBOX_API_KEY, &token).await;
//! assert!(result.verification_passed);
//! # }
//! ```

//!
//! The parts: [`TestServer`] and [`TestClient`] (here), the widget's side of the protocol as a test
//! plays it ([`widget`], re-exported here), a store with faults a test switches on
//! ([`faults`]), hooks that fill a server's state without HTTP for benchmarks ([`hooks`]), a
//! capture of the log ([`LogCapture`]), and real Redis servers and clusters ([`RedisServer`],
//! [`RedisCluster`]) and a real load balancer ([`HaProxy`]) on loopback.

pub mod faults;
mod haproxy;
pub mod hooks;
mod logs;
pub mod widget;

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use trustcaptcha::TrustCaptcha;

pub use self::haproxy::{Backend, HaProxy};
#[cfg(feature = "cli")]
pub use self::logs::install_general_log;
pub use self::logs::{LogCapture, log_access_lines};
pub use self::widget::*;
use crate::clock::ManualClock;
use crate::config::{Config, Site};
use crate::store::Store;
pub use crate::store::redis_servers::{ClusterNode, RedisCluster, RedisServer};
use crate::{AppState, Spawned, spawn};
use faults::FaultStore;

/// Every route the public listener serves (for the check against `docs/openapi.json`).
#[must_use]
pub fn routes() -> &'static [&'static str] {
    &crate::api::ROUTES
}

/// Every route of the admin listener's API, as `docs/admin-openapi.json` must document them.
#[must_use]
pub fn admin_routes() -> Vec<&'static str> {
    crate::api::admin_routes()
}

/// The page origin the helpers present (in the `Origin` header and `browserInformation`).
pub const ORIGIN: &str = "http://shop.localhost:3000";

/// A client that connects from 127.0.0.2: the trusted proxy of the tests' configurations, so
/// that an `x-forwarded-for` it sends names the client.
///
/// # Panics
///
/// When the client cannot be built (a test cannot go on without it).
#[must_use]
pub fn via_proxy() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .no_proxy()
        .build()
        .expect("client")
}

/// A running embedded server; it stops when this is dropped. The widget's and a backend's
/// requests to it are [`TestClient`]'s, which it dereferences to.
#[derive(Debug)]
pub struct TestServer {
    /// The server's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The server's state.
    pub state: AppState,
    /// The admin listener (health, readiness, metrics, reload).
    pub admin: TestClient,
    remote: TestClient,
    _server: Spawned,
}

impl std::ops::Deref for TestServer {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.remote
    }
}

/// A server reached over HTTP (an embedded one, or a `trustcaptcha-server` process), with the
/// requests a widget and a backend make as helpers.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// An HTTP client that presents itself as the browser of [`create_request`] (its
    /// User-Agent, `Accept-Language` and fetch metadata), for requests the helpers do not cover.
    pub http: reqwest::Client,
    /// The server's clock, when the test holds it: [`TestClient::submit`] moves it by the time a
    /// browser would have needed for the answers, as a browser's submission would come later.
    pace: Option<Arc<ManualClock>>,
}

impl TestServer {
    /// `site`'s statistics over `window` (`hour`, `day`, `week`) as `/admin/statistics`
    /// answers them; panics unless the answer is 200.
    pub async fn statistics(&self, site: &str, window: &str) -> Value {
        let response = self.statistics_response(site, window).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// The admin listener's answer to `/admin/statistics?site={site}&window={window}`, whatever
    /// its status.
    pub async fn statistics_response(&self, site: &str, window: &str) -> reqwest::Response {
        self.admin
            .http
            .get(format!(
                "{}/admin/statistics?site={site}&window={window}",
                self.admin.url
            ))
            .send()
            .await
            .expect("statistics")
    }

    /// Starts a server for `config` with a manual clock standing at the current time.
    ///
    /// # Panics
    ///
    /// When the loopback port cannot be bound (a test cannot go on without it).
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, |_| None).await
    }

    /// Starts a server for the configuration file at `path` (in memory, whatever the file's
    /// store), which `POST /admin/reload` re-reads.
    ///
    /// # Panics
    ///
    /// When the file does not hold a valid configuration.
    pub async fn from_file(path: &std::path::Path) -> Self {
        let mut config = crate::config::load(path, []).expect("a valid configuration");
        config.store.url = None;
        Self::start_from(AppState::builder(config).config_file(path), |_| None).await
    }

    /// Starts a server for `config` on the store `store` makes from the server's clock (the
    /// default memory store when it makes none).
    pub async fn start_with(
        config: Config,
        store: impl FnOnce(Arc<ManualClock>) -> Option<Arc<dyn Store>>,
    ) -> Self {
        Self::start_from(AppState::builder(config), store).await
    }

    async fn start_from(
        builder: crate::AppStateBuilder,
        store: impl FnOnce(Arc<ManualClock>) -> Option<Arc<dyn Store>>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let mut builder = builder.clock(clock.clone());
        if let Some(store) = store(clock.clone()) {
            builder = builder.store(store);
        }
        let state = builder.build().expect("state");
        let server = spawn(state.clone(), ([127, 0, 0, 1], 0).into())
            .await
            .expect("spawn");
        TestServer {
            remote: TestClient {
                pace: Some(clock.clone()),
                ..TestClient::new(&server.url)
            },
            clock,
            state,
            admin: TestClient::operator(&server.admin_url),
            _server: server,
        }
    }

    /// Starts a server for `config` on a [`FaultStore`] of 100 verifications, and returns that
    /// store too, for tests that take it down or stall it.
    pub async fn with_fault_store(config: Config) -> (Self, FaultStore) {
        let mut made = None;
        let server = Self::start_with(config, |clock| {
            let store = faults::fault_store(100, clock);
            made = Some(store.clone());
            Some(Arc::new(store))
        })
        .await;
        (server, made.expect("the store was made"))
    }

    /// Starts a server with only the sandbox site (`serve --sandbox`): the official client test
    /// suites' API key and fixtures, low difficulty.
    pub async fn sandbox() -> Self {
        Self::start(Config::new(vec![Site::sandbox()])).await
    }

    /// Checks the sites that refused something for a spike now, as the server does every
    /// minute (the alert goes to the webhooks).
    pub async fn check_spikes(&self) {
        crate::tasks::check_spikes(&self.state).await;
    }

    /// `POST /admin/reload` (the configuration file read again): the status and the JSON body.
    pub async fn reload(&self) -> (u16, Value) {
        answer(
            self.admin
                .http
                .post(format!("{}/admin/reload", self.admin.url)),
        )
        .await
    }

    /// How many verifications the server's store holds.
    pub async fn stored(&self) -> usize {
        self.state.store.count().await.expect("the store answers")
    }
}

/// Sends `request`; the status and the JSON body (or the text as a JSON string).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl TestClient {
    /// The server at `url`.
    ///
    /// # Panics
    ///
    /// When no HTTP client can be made.
    #[must_use]
    pub fn new(url: &str) -> Self {
        TestClient {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .user_agent(USER_AGENT)
                .default_headers(browser_headers())
                .build()
                .expect("http client"),
            pace: None,
        }
    }

    /// The server at `url` as an operator's tool reaches it (`curl`, a script): no browser
    /// headers, so that the admin listener sees no cross-site browser request, and redirects
    /// answered rather than followed.
    ///
    /// # Panics
    ///
    /// When no HTTP client can be made.
    #[must_use]
    pub fn operator(url: &str) -> Self {
        TestClient {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            pace: None,
        }
    }

    /// A `trustcaptcha` client for this server.
    pub fn client(&self, api_key: &str) -> TrustCaptcha {
        TrustCaptcha::builder(api_key)
            .api_host(&self.url)
            .build()
            .expect("client")
    }

    /// POSTs `body` to the create endpoint with the test origin.
    pub async fn create(&self, body: &Value) -> (u16, Value) {
        self.post("/v2/verifications", body, Some(ORIGIN)).await
    }

    /// POSTs `body` to the create endpoint with the test origin, from a browser calling itself
    /// `user_agent`.
    pub async fn create_as(&self, body: &Value, user_agent: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}/v2/verifications", self.url))
            .header("origin", ORIGIN)
            .header("user-agent", user_agent)
            .json(body);
        answer(request).await
    }

    /// POSTs `body` to `path`, with `origin` as the `Origin` header; the status and the JSON
    /// body (or the text as a JSON string).
    pub async fn post(&self, path: &str, body: &Value, origin: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        answer(request).await
    }

    /// GETs `path` with `key` as a bearer key; the status and the JSON body (or the text).
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        answer(request).await
    }

    /// Creates a verification for `site_key` and returns its challenge.
    pub async fn challenge(&self, site_key: &str) -> Value {
        let (status, body) = self.create(&create_body(site_key, false)).await;
        assert_eq!(status, 200, "{body}");
        body["challenge"].clone()
    }

    /// Creates, solves and submits; returns the verification token.
    pub async fn solve(&self, site_key: &str) -> String {
        self.solve_body(&create_body(site_key, false)).await
    }

    /// Creates with `body` (from the test origin), solves and submits.
    pub async fn solve_body(&self, body: &Value) -> String {
        let (status, created) = self.create(body).await;
        assert_eq!(status, 200, "{created}");
        self.finish(&created["challenge"]).await
    }

    /// One full flow (create, solve, submit) for `site_key`: the verification token, or the
    /// first status that was not a success. For tests where refusals are expected.
    pub async fn flow(&self, site_key: &str) -> Result<String, u16> {
        let (status, created) = self.create(&create_body(site_key, false)).await;
        if status != 200 {
            return Err(status);
        }
        let challenge = &created["challenge"];
        let (status, finished) = self.submit(challenge, &answers(challenge)).await;
        if status != 201 {
            return Err(status);
        }
        Ok(finished["finished"]["verificationToken"]
            .as_str()
            .expect("token")
            .to_owned())
    }

    /// Solves and submits `challenge`; returns the verification token.
    pub async fn finish(&self, challenge: &Value) -> String {
        let (status, body) = self.submit(challenge, &answers(challenge)).await;
        assert_eq!(status, 201, "{body}");
        body["finished"]["verificationToken"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Fetches the result of `token` with `api_key`; it must succeed.
    pub async fn fetch(&self, api_key: &str, token: &str) -> trustcaptcha::VerificationResult {
        self.client(api_key)
            .get_verification_result(token)
            .await
            .expect("result")
    }

    /// Submits `tasks` as the answers to `challenge`, no sooner than a browser could have
    /// found them (on the server's clock when the test holds it, else by waiting that long;
    /// some milliseconds at test difficulties).
    pub async fn submit(&self, challenge: &Value, tasks: &Value) -> (u16, Value) {
        let id = challenge["verificationId"].as_str().expect("id");
        let browser = browser_time(tasks);
        match &self.pace {
            Some(clock) => clock.advance(browser),
            None => tokio::time::sleep(browser).await,
        }
        self.post(
            &format!("/v2/verifications/{id}/challenges"),
            &submit_body(tasks),
            Some(ORIGIN),
        )
        .await
    }
}

/// Starts a process that listens on the loopback port it is given (`command(port)`, its output
/// discarded) and returns it with that port once it accepts connections. The port is found free
/// by binding and releasing it, so another process may take it first: then the child exits and
/// another port is tried (five in all); `None` when none worked within 20 s each.
pub fn start_listening(
    mut command: impl FnMut(u16) -> std::process::Command,
) -> Option<(std::process::Child, u16)> {
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::time::{Duration, Instant};
    for _ in 0..5 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .ok()?
            .port();
        let mut child = command(port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken meanwhile: try another
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Some((child, port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}
