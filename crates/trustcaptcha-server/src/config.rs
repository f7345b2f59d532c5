//! The server's configuration: a TOML file of server settings and sites, validated into
//! [`Config`], with every problem reported at its location.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! trusted_proxies = ["127.0.0.1/32"]
//!
//! [[sites]]
//! name = "shop"
//! site_key = "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b"
//! api_keys = ["sha256:…"]            # or the key in clear; or TRUSTCAPTCHA_SHOP_API_KEYS
//! allowed_origins = ["https://shop.example.com"]
//! ```
//!
//! Secrets can stay out of the file: `TRUSTCAPTCHA_<SITE>_API_KEYS` and
//! `TRUSTCAPTCHA_<SITE>_BYPASS_KEYS` (comma-separated; `<SITE>` is the site's name in upper case
//! with other characters than letters and digits as `_`) replace the file's lists.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use uuid::Uuid;

use crate::access::{Action, Rule};
pub use crate::client_address::ClientAddressHeader;
use crate::networks::NetworkSet;
use crate::rules::{AdaptiveDifficulty, OriginPattern};
use crate::secret::KeyHash;

/// The sandbox site's key, as the official client test suites use it.
pub const SANDBOX_SITE_KEY: Uuid = Uuid::nil();

/// The sandbox site's API key: `ak_` followed by 49 `x`.
pub const SANDBOX_API_KEY: &str = "ak_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// A validated configuration. Its `Debug` output shows only the store URL's scheme, since a
/// store URL may carry credentials.
#[derive(Clone)]
pub struct Config {
    /// Process-wide settings.
    pub server: ServerSettings,
    /// The sites (captchas) this server serves.
    pub sites: Vec<Site>,
    /// Where verifications are kept (`[store] url`, or `TRUSTCAPTCHA_STORE_URL`):
    /// `sqlite://PATH`, `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT[,HOST:PORT…]` or
    /// `memory://` (see [`crate::store::open`]). `None` (a configuration made in code) keeps them in
    /// memory; [`load`] defaults to a SQLite file beside the configuration file.
    pub store_url: Option<String>,
}

/// Process-wide settings (`[server]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Where `serve` listens unless `--listen` says otherwise.
    pub listen: SocketAddr,
    /// Where `serve` answers `/healthz`, `/readyz`, `/metrics` and `POST /admin/reload` on a
    /// connection budget of their own (`HOST:PORT`); by default 127.0.0.1 on the public port + 1
    /// (any free port when the public port is 0).
    pub admin_listen: Option<String>,
    /// The token the admin listener wants (`Authorization: Bearer …`) when it is reachable
    /// beyond loopback: `TRUSTCAPTCHA_ADMIN_TOKEN`, or `admin_token` (in clear or
    /// `sha256:<hex>`). Beyond loopback without one, the admin listener refuses everything.
    pub admin_token: Option<KeyHash>,
    /// The largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// The most verifications (pending and finished) held at once; beyond it, creating one
    /// answers 503 until expired ones are evicted. A result retrieved as often as allowed
    /// leaves its place (a small marker stays, bounded apart).
    pub max_verifications: usize,
    /// The most client connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and, on a new connection, its
    /// first byte).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// After two seconds, a request body must keep arriving at this many bytes per second.
    pub min_body_bytes_per_sec: u64,
    /// Connections from one client network (trusted proxies excepted) served at once; further
    /// ones are closed at once. A backend that verifies tokens from one address counts too, so
    /// keep this above its connection pool.
    pub max_connections_per_network: usize,
    /// Requests handled at once; further ones wait. Bounds the memory held by request bodies
    /// (this times `body_limit_bytes`).
    pub max_requests_in_flight: usize,
    /// After this long a connection is closed gracefully (its requests finish), so that idle
    /// HTTP/2 connections do not hold a slot for ever.
    pub max_connection_age: Duration,
    /// Reverse proxies in front of the server: from these peers (and only these) the client's
    /// address is read from `client_address_header`. See [`crate::client_address`].
    pub trusted_proxies: Vec<IpNet>,
    /// The one header the trusted proxies set to the client's address; required with
    /// `trusted_proxies`. No other forwarding header is ever read.
    pub client_address_header: Option<ClientAddressHeader>,
    /// A MaxMind-format country database for `countryCode`; without it the code is empty.
    pub geoip_database: Option<PathBuf>,
    /// The official widget's npm package (a directory holding its `dist/` and `LICENSE`), served
    /// under `/widget/` so that pages need no CDN: e.g. `/widget/dist/bundles/trustcaptcha.umd.min.js`.
    pub widget_dir: Option<PathBuf>,
    /// Files of networks to block on every site that does not opt out (`reputation_lists =
    /// false`): Tor exit lists, public block lists; see [`NetworkSet::read`] for the formats.
    pub reputation_lists: Vec<PathBuf>,
    /// How long after downtime on record failover claims are answered (at most 15 minutes, the
    /// life of a widget's failover token); `docs/operators.md`, "Failover", says when.
    pub failover_grace: Duration,
    /// Whether the time before this process started counts as an outage (off by default: a
    /// start is no evidence that widgets failed to reach the server). When on, widgets'
    /// failover claims made while the process was down get `FAILOVER` results for the grace
    /// window after every start.
    pub outage_before_start: bool,
    /// Create (and, separately, submit) requests per minute one client network may make,
    /// sustained; beyond it the widget gets 429 with `Retry-After`.
    pub widget_requests_per_minute: u32,
    /// How many requests a client network may make at once before the rate applies.
    pub widget_burst: u32,
    /// Challenges one client network may have outstanding (handed out, not yet submitted or
    /// expired).
    pub max_pending_per_network: usize,
    /// Challenges one site may have outstanding, so that no site can fill the store.
    pub max_pending_per_site: usize,
    /// Failed API-key or bypass-key guesses one client network may make per hour; past them
    /// it is locked out for the rest of the hour, even with a correct key.
    pub failed_keys_per_hour: u32,
    /// A block's budgets (an IPv4 /24, an IPv6 /48) as a multiple of one network's (an IPv4
    /// address, an IPv6 /64): request rates, open challenges and failed key guesses.
    pub block_budget_multiple: u32,
    /// The server's public URL (`https://captcha.example.com`), written into every token as
    /// `apiEndpoint`, which the 2.x backend libraries require. Never taken from a request's
    /// `Host`: a library that calls the token's endpoint would send its key wherever a client
    /// pointed it.
    pub public_url: Option<String>,
}

/// One site (a captcha with its keys and rules).
#[derive(Debug, Clone)]
pub struct Site {
    /// A name for logs, metrics and environment overrides (shared, as every request names it).
    pub name: Arc<str>,
    /// The widget's `sitekey`.
    pub site_key: Uuid,
    /// The `captchaId` of results: by default derived from the site key (stable across
    /// restarts); settable, so that a backend that checks it keeps working after moving from
    /// the hosted service.
    pub captcha_id: Uuid,
    /// Keys that may fetch this site's results.
    pub api_keys: Vec<KeyHash>,
    /// Origins whose pages may use the widget.
    pub allowed_origins: Vec<OriginPattern>,
    /// Leading zero bits each task needs.
    pub difficulty: u8,
    /// Tasks per challenge.
    pub tasks: u8,
    /// How long a challenge may take to be solved.
    pub challenge_lifetime: Duration,
    /// How long a finished result can be fetched.
    pub result_lifetime: Duration,
    /// How often a result can be fetched.
    pub max_retrievals: u32,
    /// Whether the widget must run in minimal-data mode.
    pub minimal_data_mode: bool,
    /// Whether a bot score is computed (otherwise it is 0).
    pub risk_scoring: bool,
    /// Scores above this get `decisionAction: BLOCK`.
    pub score_threshold: f64,
    /// Bypass keys: a widget carrying one finishes at once.
    pub bypass_keys: Vec<KeyHash>,
    /// Clients that pass with score 0.
    pub allow_ips: NetworkSet,
    /// Clients that fail with score 1 (they win over `allow_ips`).
    pub block_ips: NetworkSet,
    /// When not empty, visitors from any other country (or an unknown one) are blocked.
    pub countries_allowed: Vec<String>,
    /// Visitors from these countries are blocked.
    pub countries_blocked: Vec<String>,
    /// Proof-of-work rules, in order: the first that matches a visitor applies.
    pub rules: Vec<Rule>,
    /// Whether the server's reputation lists apply to this site.
    pub reputation_lists: bool,
    /// Rising difficulty for busy clients.
    pub adaptive: AdaptiveDifficulty,
    /// Whether the official client test fixtures are answered (the sandbox site).
    pub fixtures: bool,
    /// Whether the site is locked: widgets get 423 and show "Captcha blocked".
    pub locked: bool,
    /// Verifications that may be started per clock hour; beyond it widgets get 402.
    pub hourly_quota: Option<u32>,
    /// Whether a widget's failover claim gets a flagged `FAILOVER` result while an outage is
    /// on record (otherwise always 412).
    pub failover_answers: bool,
    /// Whether the older results API (`GET /verifications/{id}/assessments`, the 2.x backend
    /// libraries) answers for this site's verifications.
    pub older_results_api: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.store_url.as_deref().map(|url| {
            url.split_once("://")
                .map_or("<invalid>", |(scheme, _)| scheme)
        });
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("sites", &self.sites)
            .field("store", &store)
            .finish()
    }
}

impl Config {
    /// `sites` with the default server settings: the embedded server of tests, examples and
    /// demos.
    #[must_use]
    pub fn new(sites: Vec<Site>) -> Self {
        Config {
            server: ServerSettings::default(),
            sites,
            store_url: None,
        }
    }
}

impl Config {
    /// Every problem with these settings, each with its location (`server.…`, `sites[i].…`):
    /// what `check-config` reports and what [`AppState`](crate::AppState) refuses to start with,
    /// however the configuration was made.
    ///
    /// # Errors
    ///
    /// The problems, when there are any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems: Vec<(String, String)> = self
            .server
            .check()
            .into_iter()
            .map(|(field, message)| (format!("server.{field}"), message))
            .collect();
        let mut seen = HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            problems.extend(
                site.check()
                    .into_iter()
                    .map(|(field, message)| (format!("sites[{i}].{field}"), message)),
            );
            if !seen.insert(site.site_key) {
                problems.push((
                    format!("sites[{i}].site_key"),
                    "is used by an earlier site".into(),
                ));
            }
        }
        if self.sites.is_empty() {
            problems.push(("sites".into(), NO_SITES.into()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

const NO_SITES: &str =
    "no site is configured: add a [[sites]] table with at least a name and a site_key";

/// The longest lifetime of a challenge: an unsolved challenge holds a store slot this long.
pub const MAX_CHALLENGE_LIFETIME: Duration = Duration::from_secs(3600);
/// The result lifetimes the widget can handle: it resets itself 30 s before expiry, and its
/// timer overflows past about 24.8 days.
pub const RESULT_LIFETIMES: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(86_400);

/// The problems a check finds, as `(field, message)`.
#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    /// Records `message` for `field` unless `ok`.
    fn require(&mut self, ok: bool, field: &'static str, message: &str) {
        if !ok {
            self.0.push((field, message.to_owned()));
        }
    }
}

impl ServerSettings {
    /// The `[server]` keys whose value in `new` differs from `self`'s among those a running
    /// server cannot change (every one but `reputation_lists`): a reload that changes one is
    /// refused, naming them, rather than answered as applied while the old values stay.
    #[must_use]
    pub fn needing_restart(&self, new: &ServerSettings) -> Vec<&'static str> {
        // Destructured, so that a new setting cannot be forgotten here.
        let ServerSettings {
            listen,
            admin_listen,
            admin_token,
            body_limit_bytes,
            max_verifications,
            max_connections,
            header_read_timeout,
            body_read_timeout,
            min_body_bytes_per_sec,
            max_connections_per_network,
            max_requests_in_flight,
            max_connection_age,
            trusted_proxies,
            client_address_header,
            geoip_database,
            widget_dir,
            failover_grace,
            outage_before_start,
            widget_requests_per_minute,
            widget_burst,
            max_pending_per_network,
            max_pending_per_site,
            failed_keys_per_hour,
            block_budget_multiple,
            public_url,
            reputation_lists: _,
        } = new;
        let mut changed = Vec::new();
        macro_rules! compare {
            ($($field:ident => $key:literal),*) => {
                $(if *$field != self.$field { changed.push($key); })*
            };
        }
        compare!(
        listen => "listen",
        admin_listen => "admin_listen",
        admin_token => "admin_token",
        body_limit_bytes => "body_limit_bytes",
        max_verifications => "max_verifications",
        max_connections => "max_connections",
        header_read_timeout => "header_read_timeout_secs",
        body_read_timeout => "body_read_timeout_secs",
        min_body_bytes_per_sec => "min_body_bytes_per_sec",
        max_connections_per_network => "max_connections_per_network",
        max_requests_in_flight => "max_requests_in_flight",
        max_connection_age => "max_connection_age_secs",
        trusted_proxies => "trusted_proxies",
        client_address_header => "client_address_header",
        geoip_database => "geoip_database",
        widget_dir => "widget_dir",
        failover_grace => "failover_grace_secs",
        outage_before_start => "outage_before_start",
        widget_requests_per_minute => "widget_requests_per_minute",
        widget_burst => "widget_burst",
        max_pending_per_network => "max_pending_per_network",
        max_pending_per_site => "max_pending_per_site",
        failed_keys_per_hour => "failed_keys_per_hour",
        block_budget_multiple => "block_budget_multiple",
        public_url => "public_url"
        );
        changed
    }
    /// Where client addresses come from.
    pub(crate) fn proxies(&self) -> crate::client_address::Proxies<'_> {
        crate::client_address::Proxies {
            trusted: &self.trusted_proxies,
            header: self.client_address_header,
        }
    }

    /// Every problem with these settings, as `(field, message)`.
    #[must_use]
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Problems::default();
        problems.require(
            (64 * 1024..=16 * 1024 * 1024).contains(&self.body_limit_bytes),
            "body_limit_bytes",
            "must be between 65536 and 16777216: the widget's create request can approach 1 MB",
        );
        problems.require(
            self.max_verifications >= 1,
            "max_verifications",
            "must be at least 1",
        );
        problems.require(
            self.max_connections >= 1,
            "max_connections",
            "must be at least 1",
        );
        problems.require(
            (1..=300).contains(&self.header_read_timeout.as_secs()),
            "header_read_timeout_secs",
            "must be between 1 and 300",
        );
        problems.require(
            (1..=300).contains(&self.body_read_timeout.as_secs()),
            "body_read_timeout_secs",
            "must be between 1 and 300",
        );
        problems.require(
            self.min_body_bytes_per_sec >= 1,
            "min_body_bytes_per_sec",
            "must be at least 1",
        );
        problems.require(
            self.max_connections_per_network >= 1,
            "max_connections_per_network",
            "must be at least 1",
        );
        problems.require(
            self.max_requests_in_flight >= 1,
            "max_requests_in_flight",
            "must be at least 1",
        );
        problems.require(
            (10..=86_400).contains(&self.max_connection_age.as_secs()),
            "max_connection_age_secs",
            "must be between 10 and 86400",
        );
        problems.require(
            self.failover_grace <= crate::failover::MAX_FAILOVER_GRACE,
            "failover_grace_secs",
            "must be at most 900: a widget's failover token lives 15 minutes, so no honest claim \
             comes later",
        );
        problems.require(
            self.widget_requests_per_minute >= 1 && self.widget_burst >= 1,
            "widget_requests_per_minute",
            "widget_requests_per_minute and widget_burst must be at least 1",
        );
        problems.require(
            self.max_pending_per_network >= 1,
            "max_pending_per_network",
            "must be at least 1",
        );
        problems.require(
            (1..=self.max_verifications).contains(&self.max_pending_per_site),
            "max_pending_per_site",
            "must be between 1 and max_verifications",
        );
        problems.require(
            self.trusted_proxies.is_empty() == self.client_address_header.is_none(),
            "client_address_header",
            "is required with trusted_proxies, and means nothing without them: name the one \
             header your proxy sets (\"x-forwarded-for\", \"forwarded\" or \"x-real-ip\")",
        );
        problems.require(
            self.trusted_proxies.iter().all(|net| net.prefix_len() > 0),
            "trusted_proxies",
            "must not trust every address (0.0.0.0/0, ::/0): every client could then write its own \
             address; list your proxies' addresses or networks",
        );
        problems.require(
            self.failed_keys_per_hour >= 1,
            "failed_keys_per_hour",
            "must be at least 1",
        );
        problems.require(
            self.public_url.as_deref().is_none_or(|url| {
                matches!(OriginPattern::parse(url), Ok(OriginPattern::Exact(exact)) if exact != "null")
            }),
            "public_url",
            "must be the server's public origin, such as https://captcha.example.com",
        );
        problems.require(
            (1..=65_536).contains(&self.block_budget_multiple),
            "block_budget_multiple",
            "must be between 1 and 65536 (a /48 holds 65 536 /64s)",
        );
        if let Some(path) = self.geoip_database.as_ref().filter(|path| !path.is_file()) {
            problems.0.push((
                "geoip_database",
                format!("{} is not a readable file", path.display()),
            ));
        }
        if let Some(path) = self.widget_dir.as_ref().filter(|path| !path.is_dir()) {
            problems.0.push((
                "widget_dir",
                format!("{} is not a directory", path.display()),
            ));
        }
        for path in &self.reputation_lists {
            if let Err(error) = NetworkSet::read(path) {
                problems
                    .0
                    .push(("reputation_lists", format!("{}: {error}", path.display())));
            }
        }
        problems.0
    }
}

impl Site {
    /// Whether verifications of this site are scored: risk scoring on and not in minimal-data
    /// mode (which sends no behavioural data). Otherwise no signal is looked for and the score
    /// is 0.
    #[must_use]
    pub fn scores(&self) -> bool {
        self.risk_scoring && !self.minimal_data_mode
    }

    /// Every problem with this site, as `(field, message)`.
    #[must_use]
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Problems::default();
        problems.require(!self.name.trim().is_empty(), "name", "must not be empty");
        problems.require(
            !self.api_keys.is_empty(),
            "api_keys",
            "needs at least one key",
        );
        problems.require(
            !self.allowed_origins.is_empty(),
            "allowed_origins",
            "needs at least one origin, or \"*\"",
        );
        problems.require(
            self.difficulty <= 32,
            "difficulty",
            "must be at most 32 leading zero bits",
        );
        // What one browser worker does (headless Chromium on the benchmark machine, BENCHMARKS.md
        // "Detection"): a challenge that takes it over a minute fails real visitors.
        let seconds =
            f64::from(self.tasks) * 2f64.powi(i32::from(self.difficulty.min(32))) / 125_000.0;
        if self.difficulty <= 32 && seconds > 60.0 {
            problems.0.push((
                "difficulty",
                format!(
                    "{} bits with {} task(s) take a browser about {seconds:.0} s on average: at most \
                     60 s, i.e. lower the difficulty or the tasks",
                    self.difficulty, self.tasks
                ),
            ));
        }
        problems.require(
            (1..=32).contains(&self.tasks),
            "tasks",
            "must be between 1 and 32",
        );
        problems.require(
            !self.challenge_lifetime.is_zero() && self.challenge_lifetime <= MAX_CHALLENGE_LIFETIME,
            "challenge_lifetime_secs",
            "must be between 1 and 3600",
        );
        problems.require(
            RESULT_LIFETIMES.contains(&self.result_lifetime),
            "result_lifetime_secs",
            "must be between 60 and 86400",
        );
        problems.require(
            self.max_retrievals >= 1,
            "max_retrievals",
            "must be at least 1",
        );
        problems.require(
            (0.0..=1.0).contains(&self.score_threshold),
            "score_threshold",
            "must be between 0 and 1",
        );
        problems.require(
            !self.adaptive.window.is_zero() && self.adaptive.window <= Duration::from_secs(86_400),
            "adaptive_difficulty.window_secs",
            "must be between 1 and 86400",
        );
        problems.require(
            self.hourly_quota != Some(0),
            "hourly_quota",
            "must be at least 1 (or left out)",
        );
        problems.0
    }

    /// A site with the documented defaults.
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>, site_key: Uuid) -> Self {
        Site {
            name: name.into(),
            site_key,
            captcha_id: captcha_id_for(site_key),
            api_keys: Vec::new(),
            allowed_origins: vec![OriginPattern::Any],
            // About 300 ms of the official widget in headless Chromium on 2 cores (13 × 4:
            // 32 768 expected attempts; BENCHMARKS.md, "Proof-of-work cost").
            difficulty: 13,
            tasks: 4,
            challenge_lifetime: Duration::from_secs(300),
            result_lifetime: Duration::from_secs(900),
            max_retrievals: 1,
            minimal_data_mode: false,
            risk_scoring: true,
            score_threshold: 0.5,
            bypass_keys: Vec::new(),
            allow_ips: NetworkSet::default(),
            block_ips: NetworkSet::default(),
            countries_allowed: Vec::new(),
            countries_blocked: Vec::new(),
            rules: Vec::new(),
            reputation_lists: true,
            adaptive: AdaptiveDifficulty::default(),
            fixtures: false,
            locked: false,
            hourly_quota: None,
            failover_answers: true,
            older_results_api: true,
        }
    }

    /// The sandbox site of `serve --sandbox`: any origin, low difficulty, the official test
    /// suites' API key and fixtures, and no risk scoring: it is where automated tests pass
    /// (score 0), so it is served only when asked for.
    #[must_use]
    pub fn sandbox() -> Self {
        Site {
            api_keys: vec![KeyHash::of(SANDBOX_API_KEY)],
            difficulty: 8,
            tasks: 2,
            fixtures: true,
            risk_scoring: false,
            ..Site::new("sandbox", SANDBOX_SITE_KEY)
        }
    }
}

/// A v4-format UUID derived from the site key.
fn captcha_id_for(site_key: Uuid) -> Uuid {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(site_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            admin_token: None,
            body_limit_bytes: 1024 * 1024,
            max_verifications: 100_000,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            min_body_bytes_per_sec: 4096,
            max_connections_per_network: 1024,
            max_requests_in_flight: 512,
            max_connection_age: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
            client_address_header: None,
            geoip_database: None,
            widget_dir: None,
            reputation_lists: Vec::new(),
            failover_grace: Duration::from_secs(300),
            outage_before_start: false,
            widget_requests_per_minute: 120,
            widget_burst: 30,
            max_pending_per_network: 100,
            max_pending_per_site: 50_000,
            failed_keys_per_hour: 20,
            block_budget_multiple: 16,
            public_url: None,
        }
    }
}

/// Everything wrong with a configuration, each problem with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// `(location, problem)` pairs, e.g. `("sites[0].site_key", "…")`.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{count} problem{} in the configuration",
            if count == 1 { "" } else { "s" }
        )?;
        for (location, problem) in &self.problems {
            write!(f, "\n  {location}: {problem}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    server: RawServer,
    sites: Vec<RawSite>,
    store: RawStore,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    admin_listen: Option<String>,
    admin_token: Option<String>,
    body_limit_bytes: usize,
    max_verifications: usize,
    max_connections: usize,
    header_read_timeout_secs: u64,
    body_read_timeout_secs: u64,
    min_body_bytes_per_sec: u64,
    max_connections_per_network: usize,
    max_requests_in_flight: usize,
    max_connection_age_secs: u64,
    trusted_proxies: Vec<String>,
    client_address_header: Option<ClientAddressHeader>,
    geoip_database: Option<PathBuf>,
    widget_dir: Option<PathBuf>,
    reputation_lists: Vec<PathBuf>,
    failover_grace_secs: u64,
    outage_before_start: bool,
    widget_requests_per_minute: u32,
    widget_burst: u32,
    max_pending_per_network: usize,
    max_pending_per_site: usize,
    failed_keys_per_hour: u32,
    block_budget_multiple: u32,
    public_url: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        let d = ServerSettings::default();
        RawServer {
            listen: d.listen.to_string(),
            admin_listen: None,
            admin_token: None,
            body_limit_bytes: d.body_limit_bytes,
            max_verifications: d.max_verifications,
            max_connections: d.max_connections,
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            body_read_timeout_secs: d.body_read_timeout.as_secs(),
            min_body_bytes_per_sec: d.min_body_bytes_per_sec,
            max_connections_per_network: d.max_connections_per_network,
            max_requests_in_flight: d.max_requests_in_flight,
            max_connection_age_secs: d.max_connection_age.as_secs(),
            trusted_proxies: Vec::new(),
            client_address_header: None,
            geoip_database: None,
            widget_dir: None,
            reputation_lists: Vec::new(),
            failover_grace_secs: d.failover_grace.as_secs(),
            outage_before_start: d.outage_before_start,
            widget_requests_per_minute: d.widget_requests_per_minute,
            widget_burst: d.widget_burst,
            max_pending_per_network: d.max_pending_per_network,
            max_pending_per_site: d.max_pending_per_site,
            failed_keys_per_hour: d.failed_keys_per_hour,
            block_budget_multiple: d.block_budget_multiple,
            public_url: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    site_key: String,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default = "any_origin")]
    allowed_origins: Vec<String>,
    difficulty: Option<u8>,
    tasks: Option<u8>,
    challenge_lifetime_secs: Option<u64>,
    result_lifetime_secs: Option<u64>,
    max_retrievals: Option<u32>,
    #[serde(default)]
    minimal_data_mode: bool,
    risk_scoring: Option<bool>,
    score_threshold: Option<f64>,
    #[serde(default)]
    bypass_keys: Vec<String>,
    captcha_id: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    block_ips: Vec<String>,
    #[serde(default)]
    countries_allowed: Vec<String>,
    #[serde(default)]
    countries_blocked: Vec<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
    reputation_lists: Option<bool>,
    #[serde(default)]
    adaptive_difficulty: Option<RawAdaptive>,
    #[serde(default)]
    sandbox_fixtures: bool,
    #[serde(default)]
    locked: bool,
    hourly_quota: Option<u32>,
    failover_answers: Option<bool>,
    older_results_api: Option<bool>,
}

fn any_origin() -> Vec<String> {
    vec!["*".to_owned()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    countries: Vec<String>,
    #[serde(default)]
    browsers: Vec<String>,
    #[serde(default)]
    operating_systems: Vec<String>,
    header: Option<String>,
    header_value: Option<String>,
    action: String,
    difficulty: Option<i8>,
    tasks: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdaptive {
    window_secs: u64,
    free_solves: u32,
    step: u8,
    max_extra: u8,
}

/// Reads and validates a config file, with the process environment's overrides of any key (see
/// [`with_environment`]).
///
/// # Errors
///
/// When the file cannot be read, is not valid TOML of the expected shape, or has invalid values.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![(path.display().to_string(), format!("cannot be read: {e}"))],
    })?;
    // The file as written is checked first, so that its problems are named by its own lines.
    parse(&text, env).map_err(|mut error| {
        for (location, _) in &mut error.problems {
            *location = format!("{}: {location}", path.display());
        }
        error
    })?;
    let text = with_environment(&text, std::env::vars())?;
    let mut config = parse(&text, env).map_err(|mut error| {
        for (location, _) in &mut error.problems {
            *location = format!("{}: {location}", path.display());
        }
        error
    })?;
    // Durable by default: a SQLite file beside the configuration file, named after it.
    config.store_url.get_or_insert_with(|| {
        let stem = path.file_stem().map_or_else(
            || "trustcaptcha".into(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        format!(
            "sqlite://{}",
            path.with_file_name(format!("{stem}.state.sqlite3"))
                .display()
        )
    });
    Ok(config)
}

/// Environment variables that override the configuration, prefix `TRUSTCAPTCHA_`: any key of
/// `[server]` as `TRUSTCAPTCHA_SERVER__<KEY>`, of `[store]` as `TRUSTCAPTCHA_STORE__<KEY>`, and of
/// the site named NAME as `TRUSTCAPTCHA_SITE__<NAME>__<KEY>` (NAME in upper case, every other
/// character than letters and digits as `_`), e.g. `TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS=2048`,
/// `TRUSTCAPTCHA_SITE__SHOP__LOCKED=true`, `TRUSTCAPTCHA_SITE__SHOP__ALLOW_IPS='["10.0.0.0/8"]'`.
/// A value is read as a TOML value when it is one (numbers, booleans, arrays, inline tables),
/// otherwise as a string. Returns `text` with the overrides applied.
///
/// # Errors
///
/// When `text` is not TOML, or a variable names a site the file does not have.
pub fn with_environment(
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
        problems: vec![explain(text, &e)],
    })?;
    let mut applied = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in vars {
        let Some(path) = name.strip_prefix("TRUSTCAPTCHA_") else {
            continue;
        };
        let value = toml_value(&value);
        let Some((section @ ("SERVER" | "STORE" | "SITE"), rest)) = path.split_once("__") else {
            continue;
        };
        let target = match section {
            "SITE" => {
                let Some((site, _)) = rest.split_once("__") else {
                    problems.push((
                        name.clone(),
                        "names no key: TRUSTCAPTCHA_SITE__<NAME>__<KEY>".into(),
                    ));
                    continue;
                };
                let site_table = table
                    .get_mut("sites")
                    .and_then(toml::Value::as_array_mut)
                    .and_then(|sites| {
                        sites.iter_mut().find_map(|entry| {
                            let entry = entry.as_table_mut()?;
                            let named = entry.get("name")?.as_str()?;
                            (env_name(named) == site).then_some(entry)
                        })
                    });
                let Some(site_table) = site_table else {
                    problems.push((name.clone(), format!("no site is named so ({site})")));
                    continue;
                };
                site_table
            }
            section => table
                .entry(section.to_ascii_lowercase())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError {
                    problems: vec![(name.clone(), format!("[{section}] is not a table"))],
                })?,
        };
        let key = rest.rsplit_once("__").map_or(rest, |(_, key)| key);
        target.insert(key.to_ascii_lowercase(), value);
        applied.push(name);
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    if applied.is_empty() {
        return Ok(text.to_owned());
    }
    // The values are not shown: they may be keys.
    let unfit = || ConfigError {
        problems: vec![(
            applied.join(", "),
            "a value has the wrong type for its key, or a key is unknown".into(),
        )],
    };
    let text = toml::to_string(&table).map_err(|_| unfit())?;
    toml::from_str::<RawConfig>(&text).map_err(|_| unfit())?;
    Ok(text)
}

/// A variable's value as TOML: itself when it is a TOML value, otherwise a string.
fn toml_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// A site name as environment variables spell it: upper case, other characters as `_`.
fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether the admin listener may listen on `address`: anywhere with a token, on loopback
/// without one (beyond loopback it would answer anyone).
///
/// # Errors
///
/// Why not, for an address beyond loopback without a token or one that is not an address.
pub fn admin_listener_allowed(address: &str, has_token: bool) -> Result<(), String> {
    let loopback = match address.parse::<SocketAddr>() {
        Ok(address) => address.ip().is_loopback(),
        Err(_) => {
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("`{address}` is not an address such as 127.0.0.1:8081"))?;
            port.parse::<u16>()
                .map_err(|_| format!("`{address}` has no port from 0 to 65535"))?;
            host == "localhost"
        }
    };
    if loopback || has_token {
        return Ok(());
    }
    Err(format!(
        "the admin listener on {address} would be reachable beyond loopback: set \
         TRUSTCAPTCHA_ADMIN_TOKEN (or server.admin_token), or listen on 127.0.0.1"
    ))
}

/// Parses and validates configuration text; `env` looks up secret overrides.
///
/// # Errors
///
/// Every problem found, with its location.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        problems: vec![explain(text, &e)],
    })?;
    let server_admin_token = raw.server.admin_token.take();
    let mut problems = Vec::new();
    let mut server = validate_server(raw.server, &mut problems);
    if let Some(token) = env("TRUSTCAPTCHA_ADMIN_TOKEN").or(server_admin_token) {
        let mut problem = |field: &str, message: String| {
            problems.push((format!("server.{field}"), message));
        };
        server.admin_token = keys(&[token], "admin_token", &mut problem).first().copied();
    }
    let (mut keys_seen, mut names_seen) = (HashSet::new(), HashMap::new());
    let sites = raw
        .sites
        .into_iter()
        .enumerate()
        .filter_map(|(i, site)| {
            let site = validate_site(&format!("sites[{i}]"), site, env, &mut problems)?;
            if !keys_seen.insert(site.site_key) {
                problems.push((
                    format!("sites[{i}].site_key"),
                    "is used by an earlier site".into(),
                ));
            }
            // Names key the environment overrides, metrics and logs: two sites whose names
            // read the same there would share one variable.
            if let Some(earlier) = names_seen.insert(env_name(&site.name), site.name.clone()) {
                problems.push((
                    format!("sites[{i}].name"),
                    format!(
                        "`{}` reads as `{earlier}` in environment variables \
                         (TRUSTCAPTCHA_SITE__{}__…): name sites apart",
                        site.name,
                        env_name(&site.name)
                    ),
                ));
            }
            Some(site)
        })
        .collect::<Vec<_>>();
    // A bypass key is written into pages; one that is some site's API key would hand that
    // site's results to anyone who reads the page. (Checked once every site is valid, so that
    // a site's place among `sites` is its place in the file.)
    if problems.is_empty() {
        for (i, site) in sites.iter().enumerate() {
            let reused = site.bypass_keys.iter().any(|key| {
                sites
                    .iter()
                    .any(|other| other.site_key != site.site_key && key.is_among(&other.api_keys))
            });
            if reused {
                problems.push((
                    format!("sites[{i}].bypass_keys"),
                    "holds a key that is another site's API key".into(),
                ));
            }
        }
    }
    if sites.is_empty() && problems.is_empty() {
        problems.push((
            "sites".into(),
            "no site is configured: add a [[sites]] table with at least a name and a site_key"
                .into(),
        ));
    }
    if let Some(address) = &server.admin_listen
        && let Err(problem) = admin_listener_allowed(address, server.admin_token.is_some())
    {
        problems.push(("server.admin_listen".into(), problem));
    }
    let store_url = env("TRUSTCAPTCHA_STORE_URL").or(raw.store.url);
    if let Some(Err(problem)) = store_url.as_deref().map(crate::store::check_url) {
        problems.push(("store.url".into(), problem));
    }
    if problems.is_empty() {
        Ok(Config {
            server,
            sites,
            store_url,
        })
    } else {
        Err(ConfigError { problems })
    }
}

/// A TOML error as a `(location, problem)` pair that names the key and, where the value is
/// of the wrong kind, what the key expects. TOML's own message for an unquoted text
/// (`listen = 127.0.0.1:8080`) only says what the parser did not expect, so such a line is
/// tried again with the value quoted: if it then parses, the value needs quotes; if it then
/// has the wrong type, that error says what the key expects.
fn explain(text: &str, error: &toml::de::Error) -> (String, String) {
    let Some(span) = error.span() else {
        return ("file".to_owned(), error.message().to_owned());
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let number = text[..start].matches('\n').count() + 1;
    let column = start - line_start + 1;
    let location = format!("line {number}, column {column}");
    let Some((key, value)) = line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
        return (location, error.message().to_owned());
    };
    // A bare word may be text missing its quotes; a number (even a negative one) is not.
    let quoted_value = !value.starts_with(['"', '\'', '[', '{']) && value.parse::<f64>().is_err();
    if !key.is_empty() && quoted_value {
        let retried = format!(
            "{}{key} = \"{}\"{}",
            &text[..line_start],
            value.replace('\\', "\\\\").replace('"', "\\\""),
            &text[line_end..]
        );
        match toml::from_str::<RawConfig>(&retried) {
            Ok(_) => {
                return (
                    location,
                    format!("`{key}` is text and must be in quotes: {key} = \"{value}\""),
                );
            }
            Err(retry) if retry.span().is_some_and(|s| s.start >= line_start) => {
                return (
                    location,
                    format!("`{key} = {value}`: {}", plain(retry.message())),
                );
            }
            Err(_) => {}
        }
    }
    (location, format!("`{key}`: {}", plain(error.message())))
}

/// Serde's type names in words a configuration's reader knows.
fn plain(message: &str) -> String {
    [
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.trim().to_owned(), |text, (from, to)| {
        text.replace(from, to)
    })
}

fn validate_server(raw: RawServer, problems: &mut Vec<(String, String)>) -> ServerSettings {
    let mut server = ServerSettings::default();
    match raw.listen.parse() {
        Ok(listen) => server.listen = listen,
        Err(_) => problems.push((
            "server.listen".into(),
            "is not an address such as 127.0.0.1:8080".into(),
        )),
    }
    server.admin_listen = raw.admin_listen;
    server.body_limit_bytes = raw.body_limit_bytes;
    server.max_verifications = raw.max_verifications;
    server.max_connections = raw.max_connections;
    server.header_read_timeout = Duration::from_secs(raw.header_read_timeout_secs);
    server.body_read_timeout = Duration::from_secs(raw.body_read_timeout_secs);
    server.min_body_bytes_per_sec = raw.min_body_bytes_per_sec;
    server.max_connections_per_network = raw.max_connections_per_network;
    server.max_requests_in_flight = raw.max_requests_in_flight;
    server.max_connection_age = Duration::from_secs(raw.max_connection_age_secs);
    server.trusted_proxies = networks("server.trusted_proxies", &raw.trusted_proxies, problems);
    server.client_address_header = raw.client_address_header;
    server.geoip_database = raw.geoip_database;
    server.widget_dir = raw.widget_dir;
    server.reputation_lists = raw.reputation_lists;
    server.failover_grace = Duration::from_secs(raw.failover_grace_secs);
    server.outage_before_start = raw.outage_before_start;
    server.widget_requests_per_minute = raw.widget_requests_per_minute;
    server.widget_burst = raw.widget_burst;
    server.max_pending_per_network = raw.max_pending_per_network;
    server.max_pending_per_site = raw.max_pending_per_site;
    server.failed_keys_per_hour = raw.failed_keys_per_hour;
    server.block_budget_multiple = raw.block_budget_multiple;
    server.public_url = raw
        .public_url
        .map(|url| url.trim().trim_end_matches('/').to_owned());
    problems.extend(
        server
            .check()
            .into_iter()
            .map(|(field, message)| (format!("server.{field}"), message)),
    );
    server
}

fn validate_site(
    at: &str,
    raw: RawSite,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<(String, String)>,
) -> Option<Site> {
    let mut problem =
        |field: &str, message: String| problems.push((format!("{at}.{field}"), message));
    let Ok(site_key) = Uuid::parse_str(raw.site_key.trim()) else {
        problem("site_key", format!("`{}` is not a UUID", raw.site_key));
        return None;
    };
    let mut site = Site::new(raw.name.as_str(), site_key);
    let env_name = env_name(&raw.name);
    let split = |value: String| -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let api_keys = env(&format!("TRUSTCAPTCHA_{env_name}_API_KEYS")).map_or(raw.api_keys, split);
    let bypass_keys =
        env(&format!("TRUSTCAPTCHA_{env_name}_BYPASS_KEYS")).map_or(raw.bypass_keys, split);
    site.api_keys = keys(&api_keys, "api_keys", &mut problem);
    if api_keys.is_empty() {
        problem(
            "api_keys",
            format!("needs at least one key (or set TRUSTCAPTCHA_{env_name}_API_KEYS)"),
        );
    }
    site.bypass_keys = keys(&bypass_keys, "bypass_keys", &mut problem);
    if site
        .bypass_keys
        .iter()
        .any(|key| key.is_among(&site.api_keys))
    {
        problem(
            "bypass_keys",
            "holds a key that is also an API key: a page would then carry the backend's secret"
                .into(),
        );
    }
    site.allowed_origins = raw
        .allowed_origins
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            OriginPattern::parse(entry)
                .map_err(|e| problem(&format!("allowed_origins[{i}]"), e))
                .ok()
        })
        .collect();
    if raw.allowed_origins.is_empty() {
        problem(
            "allowed_origins",
            "needs at least one origin, or \"*\"".into(),
        );
    }
    site.difficulty = raw.difficulty.unwrap_or(site.difficulty);
    site.tasks = raw.tasks.unwrap_or(site.tasks);
    site.challenge_lifetime = raw
        .challenge_lifetime_secs
        .map_or(site.challenge_lifetime, Duration::from_secs);
    site.result_lifetime = raw
        .result_lifetime_secs
        .map_or(site.result_lifetime, Duration::from_secs);
    site.max_retrievals = raw.max_retrievals.unwrap_or(site.max_retrievals);
    site.minimal_data_mode = raw.minimal_data_mode;
    site.risk_scoring = raw.risk_scoring.unwrap_or(true);
    site.score_threshold = raw.score_threshold.unwrap_or(site.score_threshold);
    if let Some(captcha_id) = raw.captcha_id {
        match Uuid::parse_str(captcha_id.trim()) {
            Ok(id) => site.captcha_id = id,
            Err(_) => problems.push((
                format!("{at}.captcha_id"),
                format!("`{captcha_id}` is not a UUID"),
            )),
        }
    }
    let allow_ips = networks(&format!("{at}.allow_ips"), &raw.allow_ips, problems);
    if allow_ips.iter().any(|net| net.prefix_len() == 0) {
        problems.push((
            format!("{at}.allow_ips"),
            "allows every address (0.0.0.0/0, ::/0): every visitor would pass with score 0, \
             which turns the captcha off; list the networks you trust"
                .into(),
        ));
    }
    site.allow_ips = NetworkSet::new(allow_ips);
    site.block_ips = NetworkSet::new(networks(
        &format!("{at}.block_ips"),
        &raw.block_ips,
        problems,
    ));
    site.countries_allowed = countries(
        &format!("{at}.countries_allowed"),
        &raw.countries_allowed,
        problems,
    );
    site.countries_blocked = countries(
        &format!("{at}.countries_blocked"),
        &raw.countries_blocked,
        problems,
    );
    site.rules = raw
        .rules
        .into_iter()
        .enumerate()
        .filter_map(|(i, rule)| validate_rule(&format!("{at}.rules[{i}]"), rule, problems))
        .collect();
    site.reputation_lists = raw.reputation_lists.unwrap_or(true);
    if let Some(adaptive) = raw.adaptive_difficulty {
        site.adaptive = AdaptiveDifficulty {
            window: Duration::from_secs(adaptive.window_secs),
            free_solves: adaptive.free_solves,
            step: adaptive.step,
            max_extra: adaptive.max_extra,
        };
    }
    site.fixtures = raw.sandbox_fixtures;
    site.locked = raw.locked;
    site.hourly_quota = raw.hourly_quota;
    site.failover_answers = raw.failover_answers.unwrap_or(true);
    site.older_results_api = raw.older_results_api.unwrap_or(true);
    problems.extend(
        site.check()
            .into_iter()
            // Reported above, more precisely, from the entries as written.
            .filter(|(field, _)| !matches!(*field, "api_keys" | "allowed_origins"))
            .map(|(field, message)| (format!("{at}.{field}"), message)),
    );
    Some(site)
}

/// Keys given in clear must be at least this long, so that guessing them is hopeless.
pub const MIN_KEY_CHARS: usize = 16;

fn keys(entries: &[String], field: &str, problem: &mut impl FnMut(&str, String)) -> Vec<KeyHash> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let entry = entry.trim();
            if !entry.starts_with("sha256:") && entry.chars().count() < MIN_KEY_CHARS {
                problem(
                    &format!("{field}[{i}]"),
                    format!("is shorter than {MIN_KEY_CHARS} characters"),
                );
                return None;
            }
            KeyHash::from_config(entry)
                .map_err(|e| problem(&format!("{field}[{i}]"), e.to_owned()))
                .ok()
        })
        .collect()
}

/// Two-letter country codes, upper case.
fn countries(at: &str, entries: &[String], problems: &mut Vec<(String, String)>) -> Vec<String> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let code = entry.trim().to_ascii_uppercase();
            if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                Some(code)
            } else {
                problems.push((
                    format!("{at}[{i}]"),
                    format!("`{entry}` is not a two-letter country code"),
                ));
                None
            }
        })
        .collect()
}

fn validate_rule(at: &str, raw: RawRule, problems: &mut Vec<(String, String)>) -> Option<Rule> {
    let action = match (raw.action.as_str(), raw.difficulty, raw.tasks) {
        ("block", None, None) => Action::Block,
        ("allow", None, None) => Action::Allow,
        ("adjust", difficulty, tasks) if difficulty.is_some() || tasks.is_some() => {
            if tasks.is_some_and(|tasks| !(1..=32).contains(&tasks)) {
                problems.push((format!("{at}.tasks"), "must be between 1 and 32".into()));
            }
            Action::Adjust {
                difficulty: difficulty.unwrap_or(0),
                tasks,
            }
        }
        ("block" | "allow", _, _) => {
            problems.push((
                format!("{at}.action"),
                "takes no `difficulty` or `tasks` (those are for \"adjust\")".into(),
            ));
            return None;
        }
        ("adjust", _, _) => {
            problems.push((
                format!("{at}.action"),
                "\"adjust\" needs `difficulty` (bits to add or remove) or `tasks`".into(),
            ));
            return None;
        }
        (other, _, _) => {
            problems.push((
                format!("{at}.action"),
                format!("`{other}` is not an action: use \"block\", \"allow\" or \"adjust\""),
            ));
            return None;
        }
    };
    let header = match (raw.header, raw.header_value) {
        (Some(name), value) => match axum::http::HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(name) => Some((name, value)),
            Err(_) => {
                problems.push((
                    format!("{at}.header"),
                    format!("`{name}` is not a header name"),
                ));
                return None;
            }
        },
        (None, Some(_)) => {
            problems.push((format!("{at}.header_value"), "needs `header`".into()));
            return None;
        }
        (None, None) => None,
    };
    for (field, names, os) in [
        ("browsers", &raw.browsers, false),
        ("operating_systems", &raw.operating_systems, true),
    ] {
        for (i, name) in names.iter().enumerate() {
            if !crate::access::known_family(name, os) {
                problems.push((
                    format!("{at}.{field}[{i}]"),
                    format!(
                        "`{name}` names no {} the server recognises (e.g. {}), so the rule \
                         would never match",
                        if os { "operating system" } else { "browser" },
                        if os {
                            "Windows, Mac OSX, Linux, Android, iOS"
                        } else {
                            "Chrome, Firefox, Safari, Edge"
                        }
                    ),
                ));
            }
        }
    }
    Some(Rule {
        networks: (!raw.networks.is_empty())
            .then(|| NetworkSet::new(networks(&format!("{at}.networks"), &raw.networks, problems))),
        countries: countries(&format!("{at}.countries"), &raw.countries, problems),
        browsers: raw.browsers,
        operating_systems: raw.operating_systems,
        header,
        action,
    })
}

/// Parses CIDR blocks; a bare address means just that address.
fn networks(at: &str, entries: &[String], problems: &mut Vec<(String, String)>) -> Vec<IpNet> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let entry = entry.trim();
            crate::networks::parse_network(entry)
                .ok_or(())
                .map_err(|()| {
                    problems.push((
                        format!("{at}[{i}]"),
                        format!("`{entry}` is not an IP address or CIDR block"),
                    ));
                })
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_store_urls_scheme() {
        let config = Config {
            store_url: Some("redis://user:hunter2@cache.internal:6379/0".into()),
            ..Config::new(vec![Site::sandbox()])
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("cache.internal"),
            "{shown}"
        );
        assert!(shown.contains(r#"store: Some("redis")"#), "{shown}");
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const VALID: &str = r#"
        [server]
        listen = "127.0.0.1:9000"
        trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
        client_address_header = "x-forwarded-for"

        [[sites]]
        name = "shop-eu"
        site_key = "0B6C6B8E-2F5A-4C1E-9A3D-5F7E8D9C0A1B"
        api_keys = ["ak_shop_0123456789abcdef"]
        allowed_origins = ["https://shop.example.com", "https://*.example.org"]
        difficulty = 10
        max_retrievals = 3
        block_ips = ["192.0.2.0/24"]
        adaptive_difficulty = { window_secs = 30, free_solves = 5, step = 1, max_extra = 4 }
    "#;

    #[test]
    fn the_client_address_header_is_named_with_trusted_proxies_and_never_trusts_everyone() {
        let with = |server: &str| {
            let text = VALID.replace(
                "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n        client_address_header = \"x-forwarded-for\"",
                server,
            );
            parse(&text, &no_env).map(|config| config.server.client_address_header)
        };
        let problem = |server: &str| {
            with(server)
                .expect_err(server)
                .problems
                .into_iter()
                .map(|(location, _)| location)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            problem("trusted_proxies = [\"127.0.0.1\"]"),
            ["server.client_address_header"]
        );
        assert_eq!(
            problem("client_address_header = \"x-real-ip\""),
            ["server.client_address_header"]
        );
        for everyone in ["0.0.0.0/0", "::/0"] {
            assert_eq!(
                problem(&format!(
                    "trusted_proxies = [\"{everyone}\"]\nclient_address_header = \"forwarded\""
                )),
                ["server.trusted_proxies"],
                "{everyone}"
            );
        }
        assert!(with("client_address_header = \"x-forwarded\"").is_err());
        assert_eq!(
            with("trusted_proxies = [\"10.0.0.0/8\"]\nclient_address_header = \"forwarded\"")
                .expect("valid"),
            Some(ClientAddressHeader::Forwarded)
        );
    }

    #[test]
    fn parses_a_valid_file_with_defaults() {
        let config = parse(VALID, &no_env).expect("valid");
        assert_eq!(config.server.listen.port(), 9000);
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
        let site = &config.sites[0];
        assert_eq!(
            site.site_key.to_string(),
            "0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b"
        );
        assert_eq!(site.captcha_id.get_version_num(), 4);
        assert!(KeyHash::of("ak_shop_0123456789abcdef").is_among(&site.api_keys));
        assert_eq!(site.difficulty, 10);
        assert_eq!(site.tasks, 4);
        assert_eq!(site.result_lifetime, Duration::from_secs(900));
        assert_eq!(site.max_retrievals, 3);
        assert_eq!(site.adaptive.free_solves, 5);
        assert!(!format!("{config:?}").contains("ak_shop_0123456789abcdef"));
    }

    #[test]
    fn the_shipped_example_is_valid_and_uses_the_defaults() {
        let config = parse(include_str!("../server.example.toml"), &no_env).expect("valid");
        let defaults = Site::new("x", Uuid::nil());
        let site = &config.sites[0];
        assert_eq!(site.difficulty, defaults.difficulty);
        assert_eq!(site.result_lifetime, defaults.result_lifetime);
        assert_eq!(site.adaptive, defaults.adaptive);
        assert_eq!(
            config.server.failover_grace,
            ServerSettings::default().failover_grace
        );
    }

    #[test]
    fn environment_overrides_replace_secrets() {
        let env = |name: &str| {
            (name == "TRUSTCAPTCHA_SHOP_EU_API_KEYS")
                .then(|| "ak_a_0123456789abcdef, ak_b_0123456789abcdef".to_owned())
        };
        let config = parse(VALID, &env).expect("valid");
        let keys = &config.sites[0].api_keys;
        assert_eq!(keys.len(), 2);
        assert!(KeyHash::of("ak_b_0123456789abcdef").is_among(keys));
        assert!(!KeyHash::of("ak_shop_0123456789abcdef").is_among(keys));
    }

    #[test]
    fn reports_every_problem_with_its_location() {
        let text = r#"
            [server]
            listen = "nowhere"
            body_limit_bytes = 10

            [[sites]]
            name = "a"
            site_key = "not-a-uuid"
            api_keys = ["k"]

            [[sites]]
            name = "b"
            site_key = "00000000-0000-4000-8000-000000000001"
            api_keys = ["sha256:zz"]
            allowed_origins = ["example.com"]
            difficulty = 99
            score_threshold = 2.0
            block_ips = ["10.0.0.0/33"]

            [[sites]]
            name = "c"
            site_key = "00000000-0000-4000-8000-000000000001"
        "#;
        let error = parse(text, &no_env).expect_err("invalid");
        let locations: Vec<&str> = error.problems.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            locations,
            [
                "server.listen",
                "server.body_limit_bytes",
                "sites[0].site_key",
                "sites[1].api_keys[0]",
                "sites[1].allowed_origins[0]",
                "sites[1].block_ips[0]",
                "sites[1].difficulty",
                "sites[1].score_threshold",
                "sites[2].api_keys",
                "sites[2].site_key",
            ]
        );
        assert!(
            error
                .to_string()
                .starts_with("10 problems in the configuration\n")
        );
    }

    #[test]
    fn syntax_and_shape_errors_have_a_line_and_column() {
        let error = parse("[server]\nlisten = \n", &no_env).expect_err("invalid");
        assert_eq!(error.problems[0].0, "line 2, column 10");
        let error = parse(
            "[[sites]]\nname = \"a\"\nsite_key = \"x\"\ncolour = 1\n",
            &no_env,
        )
        .expect_err("unknown field");
        assert!(error.problems[0].0.starts_with("line 4"), "{error}");
        assert!(
            error.problems[0].1.contains("unknown field `colour`"),
            "{error}"
        );
    }

    #[test]
    fn the_environment_overrides_any_key_of_the_server_the_store_and_a_named_site() {
        let text = "[server]\nmax_connections = 10\n\n[[sites]]\nname = \"web shop\"\nsite_key = \"0b6c6b8e-2f5a-4c1e-9a3d-5f7e8d9c0a1b\"\napi_keys = [\"ak_environment_test_key\"]\n";
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        let text = with_environment(
            text,
            vars(&[
                ("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS", "2048"),
                ("TRUSTCAPTCHA_SERVER__LISTEN", "0.0.0.0:8080"),
                ("TRUSTCAPTCHA_STORE__URL", "memory://"),
                ("TRUSTCAPTCHA_SITE__WEB_SHOP__LOCKED", "true"),
                (
                    "TRUSTCAPTCHA_SITE__WEB_SHOP__ALLOW_IPS",
                    r#"["10.0.0.0/8"]"#,
                ),
                (
                    "TRUSTCAPTCHA_SITE__WEB_SHOP__ADAPTIVE_DIFFICULTY",
                    "{ window_secs = 30, free_solves = 5, step = 1, max_extra = 4 }",
                ),
                ("TRUSTCAPTCHA_STORE_URL", "not an override of this form"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .expect("applied");
        let config = parse(&text, &no_env).expect("valid");
        assert_eq!(config.server.max_connections, 2048);
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.store_url.as_deref(), Some("memory://"));
        let site = &config.sites[0];
        assert!(site.locked);
        assert!(site.allow_ips.contains("10.1.2.3".parse().expect("ip")));
        assert_eq!(site.adaptive.free_solves, 5);

        let unknown_site =
            with_environment(&text, vars(&[("TRUSTCAPTCHA_SITE__NOPE__LOCKED", "true")]));
        assert!(
            unknown_site
                .expect_err("no such site")
                .to_string()
                .contains("NOPE")
        );
        let secret = "ak_must_never_be_echoed_0123";
        let unfit = with_environment(
            &text,
            vars(&[("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS", secret)]),
        )
        .expect_err("a string where a number belongs");
        let message = unfit.to_string();
        assert!(
            message.contains("TRUSTCAPTCHA_SERVER__MAX_CONNECTIONS"),
            "{message}"
        );
        assert!(!message.contains(secret), "{message}");
    }
}
