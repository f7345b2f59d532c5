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

use std::sync::Arc;

use uuid::Uuid;

use crate::clock::ManualClock;
use crate::config::{Config, Site};
use crate::integrity::{BrowserInformation, integrity_hash};
use crate::pow;
use crate::protocol::{
    Answer, Challenge, CreateRequest, HoneypotField, SubmitRequest, UserEvent, WidgetInfo,
};
pub use crate::store::redis_servers::{RedisCluster, RedisServer};
use crate::store::{Counts, Finished, Lease, Mark, Pending, Retrieval, Store, StoreError};
use crate::{AppState, Spawned, spawn};
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use trustcaptcha::TrustCaptcha;

/// Every route the public listener serves (for the check against `docs/openapi.json`).
#[must_use]
pub fn routes() -> &'static [&'static str] {
    &crate::api::ROUTES
}

/// The page origin the helpers present (in the `Origin` header and `browserInformation`).
pub const ORIGIN: &str = "http://shop.localhost:3000";

/// A running embedded server; it stops when this is dropped. The widget's and a backend's
/// requests to it are [`Remote`]'s, which it dereferences to.
#[derive(Debug)]
pub struct TestServer {
    /// The server's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The server's state.
    pub state: AppState,
    /// The admin listener (health, readiness, metrics, reload).
    pub admin: Remote,
    remote: Remote,
    _server: Spawned,
}

impl std::ops::Deref for TestServer {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

/// A server reached over HTTP (an embedded one, or a `trustcaptcha-server` process), with the
/// requests a widget and a backend make as helpers.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// An HTTP client that presents itself as the browser of [`create_request`] (its
    /// User-Agent, `Accept-Language` and fetch metadata), for requests the helpers do not cover.
    pub http: reqwest::Client,
    /// The server's clock, when the test holds it: [`Remote::submit`] moves it by the time a
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
            remote: Remote {
                pace: Some(clock.clone()),
                ..Remote::new(&server.url)
            },
            clock,
            state,
            admin: Remote::new(&server.admin_url),
            _server: server,
        }
    }

    /// Starts a server for `config` on a [`FaultStore`] of 100 verifications, and returns that
    /// store too, for tests that take it down or stall it.
    pub async fn with_fault_store(config: Config) -> (Self, Arc<FaultStore>) {
        let mut made = None;
        let server = Self::start_with(config, |clock| {
            let store = Arc::new(FaultStore::new(100, clock));
            made = Some(Arc::clone(&store));
            Some(store)
        })
        .await;
        (server, made.expect("the store was made"))
    }

    /// Starts a server with only the sandbox site (`serve --sandbox`): the official client test
    /// suites' API key and fixtures, low difficulty.
    pub async fn sandbox() -> Self {
        Self::start(Config::new(vec![Site::sandbox()])).await
    }

    /// How many verifications the server's store holds.
    pub async fn stored(&self) -> usize {
        self.state.store.count().await.expect("the store answers")
    }
}

impl Remote {
    /// The server at `url`.
    ///
    /// # Panics
    ///
    /// When no HTTP client can be made.
    #[must_use]
    pub fn new(url: &str) -> Self {
        Remote {
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

    /// POSTs `body` to `path`, with `origin` as the `Origin` header; the status and the JSON
    /// body (or the text as a JSON string).
    pub async fn post(&self, path: &str, body: &Value, origin: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GETs `path` with `key` as a bearer key; the status and the JSON body (or the text).
    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
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

/// The User-Agent of the browser the helpers play.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// The headers a browser's `fetch` from the test origin's page carries besides its
/// User-Agent: its languages and fetch metadata.
#[must_use]
pub fn browser_headers() -> reqwest::header::HeaderMap {
    [
        ("accept-language", "en-US,en;q=0.9"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-site", "cross-site"),
    ]
    .into_iter()
    .map(|(name, value)| {
        (
            reqwest::header::HeaderName::from_static(name),
            reqwest::header::HeaderValue::from_static(value),
        )
    })
    .collect()
}

/// What a person's hand leaves in the widget's event log on the way to the checkbox: a
/// pointer slowing down as it arrives (steps of varying length), then a click that is held
/// for 85 ms. Page time in milliseconds; the window sits at (10, 97) on the screen.
#[must_use]
pub fn human_events() -> Vec<UserEvent> {
    let mouse = |kind: &str, time: f64, (x, y): (f64, f64), detail: u8| {
        UserEvent(raw(&json!({
            "isTrusted": true, "timeStamp": time, "type": kind, "detail": detail,
            "x": x, "y": y, "screenX": x + 10.0, "screenY": y + 97.0,
        })))
    };
    let path = [
        (212.0, 340.0),
        (236.0, 331.0),
        (271.0, 318.0),
        (300.0, 309.0),
        (318.0, 305.0),
        (326.0, 303.0),
    ];
    let mut events: Vec<UserEvent> = path
        .iter()
        .zip(0u8..)
        .map(|(point, step)| {
            mouse(
                "mousemove",
                16.6f64.mul_add(f64::from(step), 1000.0),
                *point,
                0,
            )
        })
        .collect();
    let target = path[path.len() - 1];
    events.push(mouse("mousedown", 1180.0, target, 1));
    events.push(mouse("mouseup", 1265.0, target, 1));
    events.push(mouse("click", 1265.0, target, 1));
    events
}

/// A create request shaped like the widget's (standard or minimal mode), with a correct
/// integrity hash, clean honeypots, human-like timing and, in standard mode, the events of
/// [`human_events`].
pub fn create_request(site_key: &str, minimal: bool) -> CreateRequest {
    let info: BrowserInformation = [
        ("window-navigator-userAgent", json!(USER_AGENT)),
        ("window-origin", json!(ORIGIN)),
        (
            "window-location-href",
            json!(format!("{ORIGIN}/signup?step=2#form")),
        ),
        ("window-navigator-languages", json!(["en-US", "en"])),
        ("window-devicePixelRatio", json!(1.25)),
        ("dom-automationNote", json!(false)),
        ("window-navigator-webdriver", json!(false)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), raw(&value)))
    .collect();
    let now = OffsetDateTime::now_utc();
    let events = if minimal { Vec::new() } else { human_events() };
    CreateRequest {
        site_key: site_key.to_owned(),
        widget: WidgetInfo {
            box_creation_timestamp: Some(now - time::Duration::seconds(3)),
            start_solving_timestamp: Some(now),
            minimal_data_mode: minimal,
            bypass_key: Some(String::new()),
        },
        integrity_hash: integrity_hash(&info),
        browser_information: info,
        honeypot_fields: HoneypotField::untouched(),
        user_events: events,
    }
}

/// [`create_request`] as JSON, for tests that change it the way a bot or a proxy might.
pub fn create_body(site_key: &str, minimal: bool) -> Value {
    serde_json::to_value(create_request(site_key, minimal)).expect("serializable")
}

/// The least time a browser needs to find `tasks` (answers as JSON): its largest nonce counted
/// up to at the fastest rate a browser's worker reaches, plus a millisecond.
#[must_use]
pub fn browser_time(tasks: &Value) -> std::time::Duration {
    let largest = tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task| {
            task["nonce"]
                .as_str()?
                .strip_prefix("tcn")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    std::time::Duration::from_secs_f64(
        f64::from(largest) / crate::detection::BROWSER_ATTEMPTS_PER_SECOND,
    ) + std::time::Duration::from_millis(1)
}

/// A submission of `tasks` (answers as JSON) with plausible timing: solving claimed to have
/// taken 300 ms, or what a browser needs for these answers if that is longer.
pub fn submit_body(tasks: &Value) -> Value {
    let now = OffsetDateTime::now_utc();
    let claimed = browser_time(tasks).max(std::time::Duration::from_millis(300));
    let request = SubmitRequest {
        start_solving_timestamp: Some(now - claimed),
        solved_timestamp: Some(now),
        tasks: serde_json::from_value(tasks.clone()).unwrap_or_default(),
        honeypot_fields: HoneypotField::untouched(),
        user_events: Vec::new(),
    };
    let mut body = serde_json::to_value(request).expect("serializable");
    // Tests also submit malformed answers; send them as they are.
    body["tasks"] = tasks.clone();
    body
}

/// Correct answers to every task of `challenge` (a challenge as JSON).
pub fn answers(challenge: &Value) -> Value {
    let challenge: Challenge = serde_json::from_value(challenge.clone()).expect("a challenge");
    let answers: Vec<Answer> = challenge
        .tasks
        .iter()
        .map(|task| {
            let input = base64::engine::general_purpose::STANDARD
                .decode(&task.input)
                .expect("standard base64");
            Answer {
                number: task.number,
                nonce: pow::solve(&input, challenge.difficulty),
            }
        })
        .collect();
    serde_json::to_value(answers).expect("serializable")
}

fn raw(value: &Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(value.to_string()).expect("valid JSON")
}

/// A pending verification of `site_key` handed out at `now`, expiring at `expires_at`, shaped as
/// a create stores it: for filling a store in benchmarks without the HTTP round trips.
#[must_use]
pub fn pending_for(site_key: Uuid, now: OffsetDateTime, expires_at: OffsetDateTime) -> Pending {
    Pending {
        site_key,
        tasks: pow::Tasks::generate(1),
        difficulty: 1,
        created_at: now,
        expires_at,
        visitor: crate::visitor::Visitor {
            ip: Some(std::net::IpAddr::from([192, 0, 2, 1])),
            origin: ORIGIN.into(),
            country_code: "DE".into(),
            device_family: "Other".into(),
            operating_system: "Linux".into(),
            browser: "Chrome 131.0.0.0".into(),
        },
        signals: crate::signals::Signals::default(),
        access_rule: None,
    }
}

/// Counts one solve for each of `networks` client networks (IPv4 addresses from 10.0.0.0 on)
/// in `store`, for the adaptive-difficulty window `window`, as that many submissions would.
///
/// # Errors
///
/// When the store refuses.
pub async fn track_networks(
    store: &dyn Store,
    networks: u32,
    window: std::time::Duration,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        store
            .add(&crate::counters::solves_counter(ip, window), window, 1, now)
            .await?;
    }
    Ok(())
}

/// Records one outstanding challenge for `site` from each of `networks` client networks
/// (10.0.0.0 onwards) in `state`'s limits, handed out at `now` and expiring at `expires_at`, as
/// that many create requests would. Returns how many were recorded: fewer when the site's
/// `max_pending_per_site` is reached.
pub fn hand_out_challenges(
    state: &AppState,
    networks: u32,
    site: Uuid,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> u32 {
    let mut recorded = 0;
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        if state
            .limits
            .hand_out(Some(ip), site, now, expires_at)
            .is_ok()
        {
            recorded += 1;
        }
    }
    recorded
}

/// Records one failed key guess from each of `networks` client networks (10.0.0.0 onwards) at
/// `now`, as that many requests with a wrong key would: fills the guess record for benchmarks.
pub fn fail_guesses(state: &AppState, networks: u32, now: OffsetDateTime) {
    for network in 0..networks {
        let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + network));
        state.limits.failed_guess(Some(ip), now);
    }
}

/// One pass of the limits' housekeeping (forgetting expired outstanding challenges and full
/// rate budgets, with its pauses), as the server runs it every 30 s on the blocking pool; for
/// benchmarks that must see it at a known moment. Blocks for as long as the pass takes.
pub fn limits_housekeeping(state: &AppState, now: OffsetDateTime) {
    state.limits.housekeeping(now);
}

/// The token a widget with `failover-enabled` makes up when it cannot reach the server (or a
/// page that blocked the request claims to have made): `id` with `clientFailover: true`.
pub fn failover_claim(id: &str) -> String {
    token_for(id, r#","clientFailover":true"#)
}

/// A token for any id, as a widget or attacker could make it.
pub fn token_for(id: &str, extra: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"verificationId":"{id}"{extra}}}"#))
}

/// Captures everything `tracing` logs on the current thread (at every level, without colour)
/// while the guard from [`LogCapture::start`] lives. Use it in a current-thread test runtime,
/// so that the server, the client and the test share the thread.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<parking_lot::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Starts capturing; capturing stops when the returned guard is dropped.
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// What was logged so far.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A [`MemoryStore`](crate::store::memory::MemoryStore) with faults a test can switch on: the
/// whole store down (every call answers `Unavailable`, as an unreachable remote store would), or
/// the next `finish_claimed` never returning (to cancel a submission between its claim and its
/// result). It also says when a claim was taken and when one was released.
#[derive(Debug)]
pub struct FaultStore {
    inner: crate::store::memory::MemoryStore,
    down: std::sync::atomic::AtomicBool,
    stall_next_finish: std::sync::atomic::AtomicBool,
    claimed: tokio::sync::Notify,
    released: tokio::sync::Notify,
}

impl FaultStore {
    /// A working store of `capacity` verifications, judging expiry by `clock`.
    #[must_use]
    pub fn new(capacity: usize, clock: Arc<dyn crate::clock::Clock>) -> Self {
        FaultStore {
            inner: crate::store::memory::MemoryStore::new(capacity, clock),
            down: Default::default(),
            stall_next_finish: Default::default(),
            claimed: tokio::sync::Notify::new(),
            released: tokio::sync::Notify::new(),
        }
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes the next `finish_claimed` wait forever.
    pub fn stall_next_finish(&self) {
        self.stall_next_finish
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Resolves once a claim has been taken (since the last call).
    pub async fn claimed(&self) {
        self.claimed.notified().await;
    }

    /// Resolves once a claim has been released (since the last call).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError::Unavailable("taken down by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for FaultStore {
    async fn insert_pending(
        &self,
        id: Uuid,
        pending: Pending,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.insert_pending(id, pending, now).await
    }

    async fn claim(
        &self,
        id: Uuid,
        lease: Lease,
        now: OffsetDateTime,
    ) -> Result<Option<Pending>, StoreError> {
        self.up()?;
        let claimed = self.inner.claim(id, lease, now).await;
        self.claimed.notify_one();
        claimed
    }

    async fn finish_claimed(
        &self,
        id: Uuid,
        lease: Lease,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.up()?;
        if self
            .stall_next_finish
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            std::future::pending::<()>().await;
        }
        self.inner.finish_claimed(id, lease, finished, now).await
    }

    async fn insert_finished(
        &self,
        id: Uuid,
        finished: Finished,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.insert_finished(id, finished, now).await
    }

    async fn release(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.up()?;
        let released = self.inner.release(id, lease).await;
        self.released.notify_one();
        released
    }

    async fn abandon(&self, id: Uuid, lease: Lease) -> Result<(), StoreError> {
        self.up()?;
        self.inner.abandon(id, lease).await
    }

    async fn retrieve(
        &self,
        id: Uuid,
        authorized: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<Retrieval, StoreError> {
        self.up()?;
        self.inner.retrieve(id, authorized, now).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.up()?;
        self.inner.count().await
    }

    async fn mark(&self, mark: Mark, at: OffsetDateTime) -> Result<(), StoreError> {
        self.up()?;
        self.inner.mark(mark, at).await
    }

    async fn latest(&self, mark: Mark) -> Result<Option<OffsetDateTime>, StoreError> {
        self.up()?;
        self.inner.latest(mark).await
    }

    async fn add(
        &self,
        counter: &str,
        length: std::time::Duration,
        by: u64,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.up()?;
        self.inner.add(counter, length, by, now).await
    }

    async fn counts(
        &self,
        counter: &str,
        length: std::time::Duration,
        now: OffsetDateTime,
    ) -> Result<Counts, StoreError> {
        self.up()?;
        self.inner.counts(counter, length, now).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.up()?;
        self.inner.ping().await
    }
}

/// The fuzz targets' entry points (`fuzz/`), one per input a client or an operator controls.
/// Each asserts what must hold for any input; `cargo fuzz` drives them on nightly, and the
/// corpus is replayed through them on stable by the test suite.
pub mod fuzz {
    use crate::integrity::integrity_hash;
    use crate::protocol::{CreateRequest, SubmitRequest};
    use crate::{config, detection, pow};

    /// A verification token: any text decodes to a token or to a token error.
    pub fn token(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Err(error) = trustcaptcha::VerificationToken::decode(text) {
            assert_eq!(
                error.kind(),
                trustcaptcha::ErrorKind::VerificationTokenInvalid
            );
        }
    }

    /// A create body: parsing, the integrity hash and the scoring signals never panic, and the
    /// hash, when there is one, is 64 hex digits.
    pub fn create(data: &[u8]) {
        let Ok(request) = serde_json::from_slice::<CreateRequest>(data) else {
            return;
        };
        if let Some(hash) = integrity_hash(&request.browser_information) {
            assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let signals = detection::at_create(&request, &axum::http::HeaderMap::new());
        assert!((0.0..=1.0).contains(&signals.score()));
    }

    /// A submission: arbitrary answers never pass proof-of-work at difficulty 32.
    pub fn submit(data: &[u8]) {
        let Ok(request) = serde_json::from_slice::<SubmitRequest>(data) else {
            return;
        };
        assert!(pow::verify(&pow::Tasks::generate(3), 32, &request.tasks).is_err());
        let signals = detection::at_submit(
            crate::signals::Signals::default(),
            &request,
            std::time::Duration::from_millis(500),
        );
        assert!((0.0..=1.0).contains(&signals.score()));
    }

    /// A configuration file: it is accepted and then also valid as a whole, or refused with at
    /// least one located problem.
    pub fn config(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        match config::parse(text) {
            Ok(config) => assert_eq!(config.validate(), Ok(())),
            Err(error) => assert!(!error.problems.is_empty()),
        }
    }
}
