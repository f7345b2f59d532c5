//! A real `trustcaptcha-server` on 127.0.0.1:0 with a manual clock, and helpers that speak the
//! widget's protocol over HTTP.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use trustcaptcha::TrustCaptcha;
use trustcaptcha_server::clock::ManualClock;
use trustcaptcha_server::config::{self, Config};
use trustcaptcha_server::integrity::{BrowserInformation, integrity_hash};
use trustcaptcha_server::pow;
use trustcaptcha_server::{AppState, Spawned, spawn};

pub const SITE_A: &str = "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b";
pub const SITE_B: &str = "1c7d7c9f-3a6b-4d2f-8b4e-6a8f9e0d1b2c";
pub const SITE_MINIMAL: &str = "2d8e8da0-4b7c-4e3a-9c5f-7b9a0f1e2c3d";
pub const SITE_LISTS: &str = "3e9f9eb1-5c8d-4f4b-8d6a-8cab1a2f3d4e";
pub const KEY_A: &str = "ak_site_a_secret_0123456789";
pub const KEY_B: &str = "ak_site_b_secret_9876543210";
pub const BYPASS_A: &str = "bypass_secret_for_e2e_tests";
pub const ORIGIN: &str = "http://shop.localhost:3000";

pub fn config_text(extra_server: &str) -> String {
    format!(
        r#"
        [server]
        trusted_proxies = ["127.0.0.2/32"]
        failover_grace_secs = 300
        outage_before_start = false
        {extra_server}

        [[sites]]
        name = "a"
        site_key = "{SITE_A}"
        api_keys = ["{KEY_A}"]
        allowed_origins = ["{ORIGIN}"]
        difficulty = 4
        tasks = 3
        bypass_keys = ["sha256:{bypass}"]
        adaptive_difficulty = {{ window_secs = 60, free_solves = 3, step = 2, max_extra = 4 }}

        [[sites]]
        name = "b"
        site_key = "{SITE_B}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        max_retrievals = 1000

        [[sites]]
        name = "minimal"
        site_key = "{SITE_MINIMAL}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        minimal_data_mode = true

        [[sites]]
        name = "lists"
        site_key = "{SITE_LISTS}"
        api_keys = ["{KEY_B}"]
        difficulty = 2
        tasks = 1
        allow_ips = ["127.0.0.0/8"]
        block_ips = ["127.0.0.9"]
        "#,
        bypass = hex::encode(sha2_digest(BYPASS_A)),
    )
}

fn sha2_digest(key: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

pub fn config(extra_server: &str) -> Config {
    config::parse(&config_text(extra_server), &|_| None).expect("test config is valid")
}

pub struct TestServer {
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub http: reqwest::Client,
    _server: Spawned,
}

impl TestServer {
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

    pub async fn default() -> Self {
        Self::start(config("")).await
    }

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

pub fn honeypots() -> Value {
    json!([0, 1, 2].map(|index| json!({"index": index, "value": "", "firstInteractionMsRelativeToBoxCreation": null, "firstInteractionEvent": null})))
}

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
