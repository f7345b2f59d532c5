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

use crate::clock::ManualClock;
use crate::config::{Config, Site};
use crate::integrity::{BrowserInformation, integrity_hash};
use crate::pow;
use crate::{AppState, Spawned, spawn};
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use trustcaptcha::TrustCaptcha;

/// The page origin the helpers present (in the `Origin` header and `browserInformation`).
pub const ORIGIN: &str = "http://shop.localhost:3000";

/// A running embedded server; it stops when this is dropped.
#[derive(Debug)]
pub struct TestServer {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The server's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The server's state.
    pub state: AppState,
    /// A plain HTTP client, for requests the helpers do not cover.
    pub http: reqwest::Client,
    _server: Spawned,
}

impl TestServer {
    /// Starts a server for `config` with a manual clock standing at the current time.
    ///
    /// # Panics
    ///
    /// When the loopback port cannot be bound (a test cannot go on without it).
    pub async fn start(config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let state = AppState::builder(config)
            .clock(clock.clone())
            .build()
            .expect("state");
        let server = spawn(state.clone(), ([127, 0, 0, 1], 0).into())
            .await
            .expect("spawn");
        TestServer {
            url: server.url.clone(),
            clock,
            state,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            _server: server,
        }
    }

    /// Starts a server with only the sandbox site (`serve --sandbox`): the official client test
    /// suites' API key and fixtures, low difficulty.
    pub async fn sandbox() -> Self {
        Self::start(Config::new(vec![Site::sandbox()])).await
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

    /// Submits `tasks` as the answers to `challenge`.
    pub async fn submit(&self, challenge: &Value, tasks: &Value) -> (u16, Value) {
        let id = challenge["verificationId"].as_str().expect("id");
        self.post(
            &format!("/v2/verifications/{id}/challenges"),
            &submit_body(tasks),
            Some(ORIGIN),
        )
        .await
    }
}

/// A create body shaped like the widget's (standard or minimal mode), with a correct
/// integrity hash, clean honeypots, human-like timing and one user event.
pub fn create_body(site_key: &str, minimal: bool) -> Value {
    let info: BrowserInformation = serde_json::from_value(json!({
        "window-navigator-userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
        "window-origin": ORIGIN,
        "window-location-href": format!("{ORIGIN}/signup?step=2#form"),
        "window-navigator-languages": ["en-US", "en"],
        "window-devicePixelRatio": 1.25,
        "dom-automationNote": false,
        "window-navigator-webdriver": false,
    }))
    .expect("info");
    let now = OffsetDateTime::now_utc();
    let ts = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("ts")
    };
    json!({
        "siteKey": site_key,
        "widget": {
            "boxCreationTimestamp": ts(now - time::Duration::seconds(3)),
            "startSolvingTimestamp": ts(now),
            "timezone": "Europe/Berlin",
            "minimalDataMode": minimal,
            "bypassToken": "",
            "settings": {"language": "auto", "currentLanguage": "en"},
        },
        "metadata": {"framework": "other", "libraryVersion": "3.0.2"},
        "integrityHash": integrity_hash(&info),
        "browserInformation": info,
        "fingerprints": {"audio": "", "canvas": "", "webgl": "", "fonts": "", "navigator": "", "screen": ""},
        "honeypotFields": honeypots(),
        "userEvents": if minimal { json!([]) } else { json!([{"isTrusted": true, "timeStamp": 12.5, "type": "mousemove"}]) },
    })
}

/// Three untouched honeypots, as the widget sends them.
pub fn honeypots() -> Value {
    json!([0, 1, 2].map(|index| json!({"index": index, "value": "", "firstInteractionMsRelativeToBoxCreation": null, "firstInteractionEvent": null})))
}

/// A submission of `tasks` with plausible timing.
pub fn submit_body(tasks: &Value) -> Value {
    let now = OffsetDateTime::now_utc();
    let ts = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("ts")
    };
    json!({
        "startSolvingTimestamp": ts(now),
        "solvedTimestamp": ts(now),
        "tasks": tasks,
        "honeypotFields": honeypots(),
        "userEvents": [],
    })
}

/// Correct answers to every task of `challenge`.
pub fn answers(challenge: &Value) -> Value {
    let difficulty =
        u8::try_from(challenge["difficulty"].as_u64().expect("difficulty")).expect("u8");
    let tasks: Vec<Value> = challenge["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|task| {
            let input = base64::engine::general_purpose::STANDARD
                .decode(task["input"].as_str().expect("input"))
                .expect("standard base64");
            json!({"number": task["number"], "nonce": pow::solve(&input, difficulty)})
        })
        .collect();
    Value::Array(tasks)
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
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

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
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
