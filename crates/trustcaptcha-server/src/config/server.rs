//! `[server]`: the process-wide settings, their defaults and their checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Problems;
pub use crate::client_address::ClientAddressHeader;
use crate::origin::OriginPattern;
use crate::secret::KeyHash;

/// The longest margin after downtime in which failover claims are answered: the lifetime of the
/// token a widget makes when it fails over (15 minutes).
pub const MAX_FAILOVER_GRACE: Duration = Duration::from_secs(15 * 60);

/// Process-wide settings (`[server]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Where `serve` listens unless `--listen` says otherwise.
    pub listen: SocketAddr,
    /// Where `serve` answers `/healthz`, `/readyz`, `/metrics` and `POST /admin/reload` on a
    /// connection budget of their own (`HOST:PORT`); by default 127.0.0.1 on the public port + 1
    /// (any free port when the public port is 0).
    pub admin_listen: Option<String>,
    /// The token the admin listener wants (`Authorization: Bearer …`) when it is reachable
    /// beyond loopback (in clear or `sha256:<hex>`; best set as
    /// `TRUSTCAPTCHA_SERVER__ADMIN_TOKEN`). Beyond loopback without one, the admin listener
    /// refuses everything.
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
    #[serde(rename = "header_read_timeout_secs", with = "crate::clock::seconds")]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    #[serde(rename = "body_read_timeout_secs", with = "crate::clock::seconds")]
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
    #[serde(rename = "max_connection_age_secs", with = "crate::clock::seconds")]
    pub max_connection_age: Duration,
    /// After SIGTERM (or SIGINT), how long the server goes on serving while `/readyz` answers
    /// 503 `draining`, so that a load balancer's health check (or Kubernetes' endpoints) takes
    /// it out of rotation before it stops accepting connections; 0 (the default) stops at once.
    /// Either way requests in flight then get ten seconds to finish.
    #[serde(rename = "drain_secs", with = "crate::clock::seconds")]
    pub drain: Duration,
    /// Reverse proxies in front of the server: from these peers (and only these) the client's
    /// address is read from `client_address_header`. See [`crate::client_address`].
    #[serde(deserialize_with = "crate::networks::list")]
    pub trusted_proxies: Vec<IpNet>,
    /// The one header the trusted proxies set to the client's address; required with
    /// `trusted_proxies`. No other forwarding header is ever read.
    pub client_address_header: Option<ClientAddressHeader>,
    /// A MaxMind-format country database for `countryCode`; without it the code is empty.
    pub geoip_database: Option<PathBuf>,
    /// TLS on the public listener: its certificate and key (PEM), read again on every reload.
    pub tls: Option<crate::tls::TlsSettings>,
    /// The header a trusted proxy that terminates TLS sets to the client's JA4 fingerprint
    /// (e.g. `X-JA4`); read only from `trusted_proxies`.
    pub tls_fingerprint_header: Option<String>,
    /// The JA4 cipher hashes (its middle part) of browsers' TLS libraries, besides those the
    /// server knows (Chromium's, Firefox's and Safari's; `docs/operators.md`, "Detection").
    pub browser_tls_ciphers: Vec<String>,
    /// A MaxMind-format ASN database (GeoLite2-ASN, DB-IP's or IPinfo's): with it, a client on
    /// a hosting network ([`hosting_asns`](Self::hosting_asns)) fires the `hosting` signal.
    pub asn_database: Option<PathBuf>,
    /// Autonomous systems of hosting and data-centre networks, besides the shipped list.
    pub hosting_asns: Vec<u32>,
    /// Whether the shipped list of well-known hosting networks applies
    /// (`crates/trustcaptcha-server/data/hosting-asns.txt`).
    pub shipped_hosting_asns: bool,
    /// The official widget's npm package (a directory holding its `dist/` and `LICENSE`), served
    /// under `/widget/` so that pages need no CDN: e.g. `/widget/dist/bundles/trustcaptcha.umd.min.js`.
    pub widget_dir: Option<PathBuf>,
    /// Files of networks to block on every site that does not opt out (`reputation_lists =
    /// false`): Tor exit lists, public block lists; see [`NetworkSet::read`](crate::networks::NetworkSet::read) for the formats.
    pub reputation_lists: Vec<PathBuf>,
    /// How long after downtime on record failover claims are answered (at most 15 minutes, the
    /// life of a widget's failover token); `docs/operators.md`, "Failover", says when.
    #[serde(rename = "failover_grace_secs", with = "crate::clock::seconds")]
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
    /// Challenges one client network may have pending (handed out, not yet submitted or
    /// expired).
    pub max_pending_per_network: usize,
    /// Challenges one site may have pending, so that no site can fill the store.
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
    #[serde(deserialize_with = "super::values::public_url")]
    pub public_url: Option<String>,
    /// The header in which a trusted proxy in front of the admin listener names the user it
    /// signed in (`x-forwarded-user` from oauth2-proxy, `remote-user`): single sign-on for the
    /// console. Read only from `trusted_proxies`; the user must exist (`user add --no-password`).
    pub console_user_header: Option<String>,
    /// How long a console session lasts after signing in.
    #[serde(
        rename = "console_session_lifetime_secs",
        with = "crate::clock::seconds"
    )]
    pub console_session_lifetime: Duration,
    /// Whether the console's session cookie is marked `Secure` (and named `__Host-…`): browsers
    /// then send it only over HTTPS, or to `localhost`. Turn it off only for a console reached
    /// over plain HTTP on a private network.
    pub console_secure_cookie: bool,
    /// How many days each site's hourly statistics are kept.
    pub hourly_statistics_days: u32,
    /// How many days each site's daily statistics are kept.
    pub daily_statistics_days: u32,
    /// The most recent verifications each site's event log keeps, at most.
    pub event_log_entries: usize,
    /// How many days a verification stays in its site's event log, at most.
    pub event_log_days: u32,
    /// A site's refusals over the last hour are a spike (an alert to webhooks) when they are
    /// this many times its hourly average over the week before…
    pub refusal_spike_factor: f64,
    /// …and at least this many.
    pub refusal_spike_minimum: u64,
}

impl ServerSettings {
    /// The `[server]` keys whose value in `new` differs from `self`'s among those a running
    /// server cannot change (every one but `reputation_lists`): a reload that changes one is
    /// refused, naming them, rather than answered as applied while the old values stay.
    /// Compared as the file writes them, so that no setting can be forgotten here.
    #[must_use]
    pub fn needing_restart(&self, new: &ServerSettings) -> Vec<String> {
        let (Ok(toml::Value::Table(old)), Ok(toml::Value::Table(mut new))) =
            (toml::Value::try_from(self), toml::Value::try_from(new))
        else {
            // Every setting has a TOML form; were one to lack it, nothing would be applied.
            return vec!["(settings)".to_owned()];
        };
        let mut changed: Vec<String> = Vec::new();
        for (key, value) in old {
            if new.remove(&key).as_ref() != Some(&value) {
                changed.push(key);
            }
        }
        changed.extend(new.into_iter().map(|(key, _)| key));
        changed.retain(|key| key != "reputation_lists");
        changed.sort();
        changed.dedup();
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
    pub fn check(&self) -> Vec<(String, String)> {
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
            self.drain.as_secs() <= 300,
            "drain_secs",
            "must be at most 300",
        );
        problems.require(
            self.failover_grace <= MAX_FAILOVER_GRACE,
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
            self.tls_fingerprint_header
                .as_deref()
                .is_none_or(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()),
            "tls_fingerprint_header",
            "must be a header name such as x-ja4",
        );
        problems.require(
            self.tls_fingerprint_header.is_none() || !self.trusted_proxies.is_empty(),
            "tls_fingerprint_header",
            "is read only from trusted proxies: list yours in trusted_proxies (from anyone else \
             the header is the client's own claim)",
        );
        problems.require(
            self.browser_tls_ciphers
                .iter()
                .all(|hash| hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
            "browser_tls_ciphers",
            "must be JA4 cipher hashes: the 12 hex digits between a JA4's underscores",
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
        problems.require(
            self.console_user_header
                .as_deref()
                .is_none_or(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()),
            "console_user_header",
            "must be a header name such as x-forwarded-user",
        );
        problems.require(
            self.console_user_header.is_none() || !self.trusted_proxies.is_empty(),
            "console_user_header",
            "is read only from trusted proxies: list yours in trusted_proxies (from anyone else \
             the header would sign anyone in as anyone)",
        );
        problems.require(
            (1..=366).contains(&self.hourly_statistics_days),
            "hourly_statistics_days",
            "must be between 1 and 366",
        );
        problems.require(
            (1..=3_660).contains(&self.daily_statistics_days),
            "daily_statistics_days",
            "must be between 1 and 3660 (ten years)",
        );
        problems.require(
            (1..=100_000).contains(&self.event_log_entries),
            "event_log_entries",
            "must be between 1 and 100000",
        );
        problems.require(
            (1..=90).contains(&self.event_log_days),
            "event_log_days",
            "must be between 1 and 90",
        );
        problems.require(
            (1.0..=1_000.0).contains(&self.refusal_spike_factor),
            "refusal_spike_factor",
            "must be between 1 and 1000",
        );
        problems.require(
            self.refusal_spike_minimum >= 1,
            "refusal_spike_minimum",
            "must be at least 1",
        );
        problems.require(
            (60..=30 * 86_400).contains(&self.console_session_lifetime.as_secs()),
            "console_session_lifetime_secs",
            "must be between 60 and 2592000 (30 days)",
        );
        if let Some(address) = &self.admin_listen
            && let Err(problem) = admin_listener_allowed(address, self.admin_token.is_some())
        {
            problems.push("admin_listen", problem);
        }
        problems.0
    }
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
            tls: None,
            tls_fingerprint_header: None,
            browser_tls_ciphers: Vec::new(),
            asn_database: None,
            hosting_asns: Vec::new(),
            shipped_hosting_asns: true,
            widget_dir: None,
            reputation_lists: Vec::new(),
            failover_grace: Duration::from_secs(300),
            drain: Duration::ZERO,
            outage_before_start: false,
            widget_requests_per_minute: 120,
            widget_burst: 30,
            max_pending_per_network: 100,
            max_pending_per_site: 50_000,
            failed_keys_per_hour: 20,
            block_budget_multiple: 16,
            public_url: None,
            console_user_header: None,
            console_session_lifetime: Duration::from_secs(12 * 3600),
            console_secure_cookie: true,
            hourly_statistics_days: 90,
            daily_statistics_days: 730,
            event_log_entries: 10_000,
            event_log_days: 7,
            refusal_spike_factor: 3.0,
            refusal_spike_minimum: 50,
        }
    }
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
         TRUSTCAPTCHA_SERVER__ADMIN_TOKEN (or server.admin_token), or listen on 127.0.0.1"
    ))
}
