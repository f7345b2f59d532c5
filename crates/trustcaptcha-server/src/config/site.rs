//! `[[sites]]`: one captcha with its keys and rules, its defaults and its checks.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use serde::Deserialize;
use uuid::Uuid;

use super::Problems;
use crate::adaptive::{AdaptiveDifficulty, Repetition, Suspicion};
use crate::networks::NetworkSet;
use crate::origin::OriginPattern;
use crate::secret::KeyHash;

/// The sandbox site's key, as the official client test suites use it.
pub const SANDBOX_SITE_KEY: Uuid = Uuid::nil();

/// The sandbox site's API key: `ak_` followed by 49 `x`.
pub const SANDBOX_API_KEY: &str = "ak_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// The longest lifetime of a challenge: an unsolved challenge holds a store slot this long.
pub const MAX_CHALLENGE_LIFETIME: Duration = Duration::from_secs(3600);

/// The result lifetimes the widget can handle: it resets itself 30 s before expiry, and its
/// timer overflows past about 24.8 days.
pub const RESULT_LIFETIMES: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(86_400);

/// One site (a captcha with its keys and rules). Keys ending in `_secs` are the field of the
/// same name without the suffix, in whole seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// A name for logs, metrics and environment overrides (shared, as every request names it).
    pub name: Arc<str>,
    /// The widget's `sitekey`.
    pub site_key: Uuid,
    /// The `captchaId` of results when set (so that a backend that checks it keeps working
    /// after moving from the hosted service); otherwise derived from the site key, stable across
    /// restarts. See [`Site::captcha_id`].
    #[serde(default)]
    pub captcha_id: Option<Uuid>,
    /// Keys that may fetch this site's results.
    #[serde(default)]
    pub api_keys: Vec<KeyHash>,
    /// Origins whose pages may use the widget.
    #[serde(default = "defaults::allowed_origins")]
    pub allowed_origins: Vec<OriginPattern>,
    /// Leading zero bits each task needs.
    #[serde(default = "defaults::difficulty")]
    pub difficulty: u8,
    /// Tasks per challenge.
    #[serde(default = "defaults::tasks")]
    pub tasks: u8,
    /// How long a challenge may take to be solved.
    #[serde(
        rename = "challenge_lifetime_secs",
        with = "crate::clock::seconds",
        default = "defaults::challenge_lifetime"
    )]
    pub challenge_lifetime: Duration,
    /// How long a finished result can be fetched.
    #[serde(
        rename = "result_lifetime_secs",
        with = "crate::clock::seconds",
        default = "defaults::result_lifetime"
    )]
    pub result_lifetime: Duration,
    /// How often a result can be fetched.
    #[serde(default = "defaults::max_retrievals")]
    pub max_retrievals: u32,
    /// Whether the widget must run in minimal-data mode.
    #[serde(default)]
    pub minimal_data_mode: bool,
    /// Whether a bot score is computed (otherwise it is 0).
    #[serde(default = "defaults::yes")]
    pub risk_scoring: bool,
    /// Scores above this get `decisionAction: BLOCK`.
    #[serde(default = "defaults::score_threshold")]
    pub score_threshold: f64,
    /// Bypass keys: a widget carrying one finishes at once.
    #[serde(default)]
    pub bypass_keys: Vec<KeyHash>,
    /// Clients that pass with score 0.
    #[serde(default)]
    pub allow_ips: NetworkSet,
    /// Clients that fail with score 1 (they win over `allow_ips`).
    #[serde(default)]
    pub block_ips: NetworkSet,
    /// When not empty, visitors from any other country (or an unknown one) are blocked.
    #[serde(default, deserialize_with = "super::values::countries")]
    pub countries_allowed: Vec<String>,
    /// Visitors from these countries are blocked.
    #[serde(default, deserialize_with = "super::values::countries")]
    pub countries_blocked: Vec<String>,
    /// Proof-of-work rules, in order: the first that matches a visitor applies.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Whether the server's reputation lists apply to this site.
    #[serde(default = "defaults::yes")]
    pub reputation_lists: bool,
    /// Rising difficulty for busy clients.
    #[serde(default)]
    pub adaptive_difficulty: AdaptiveDifficulty,
    /// Rising difficulty for visitors whose create request already looks suspicious.
    #[serde(default)]
    pub suspicion: Suspicion,
    /// When one device fingerprint from many networks is a signal (`repeated`).
    #[serde(default)]
    pub repetition: Repetition,
    /// Whether the official client test fixtures are answered (the sandbox site).
    #[serde(default)]
    pub sandbox_fixtures: bool,
    /// Whether the site is locked: widgets get 423 and show "Captcha blocked".
    #[serde(default)]
    pub locked: bool,
    /// Verifications that may be started per clock hour; beyond it widgets get 402.
    #[serde(default)]
    pub hourly_quota: Option<u32>,
    /// Whether a widget's failover claim gets a flagged `FAILOVER` result while an outage is
    /// on record (otherwise always 412).
    #[serde(default = "defaults::yes")]
    pub failover_answers: bool,
    /// Whether the older results API (`GET /verifications/{id}/assessments`, the 2.x backend
    /// libraries) answers for this site's verifications.
    #[serde(default = "defaults::yes")]
    pub older_results_api: bool,
}

/// A proof-of-work rule: conditions (all must match; none matches everyone) and an action.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The client's network is in this set (when it is not empty).
    #[serde(default)]
    pub networks: NetworkSet,
    /// The client's country (two letters, upper case) is one of these.
    #[serde(default, deserialize_with = "super::values::countries")]
    pub countries: Vec<String>,
    /// The browser's family (`Chrome`, `Firefox`, …; case-insensitive) is one of these.
    #[serde(default)]
    pub browsers: Vec<String>,
    /// The operating system's family (`Windows`, `Linux`, `iOS`, …) is one of these.
    #[serde(default)]
    pub operating_systems: Vec<String>,
    /// The request carries this header…
    #[serde(default, deserialize_with = "super::values::header_name")]
    pub header: Option<HeaderName>,
    /// …with this value, when one is given.
    #[serde(default)]
    pub header_value: Option<String>,
    /// What happens to a visitor it matches.
    pub action: Action,
    /// For `adjust`: difficulty bits added (negative: removed), after adaptive difficulty.
    #[serde(default)]
    pub difficulty: Option<i8>,
    /// For `adjust`: the number of tasks instead of the site's.
    #[serde(default)]
    pub tasks: Option<u8>,
}

/// What a matching [`Rule`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The result fails (`CUSTOM_ACCESS_RULE`, `BLOCK`).
    Block,
    /// The result passes (`CUSTOM_ACCESS_RULE`, `ALLOW`).
    Allow,
    /// The challenge changes (`difficulty`, `tasks`); scoring decides as usual.
    Adjust,
}

/// The documented defaults, one place for [`Site::new`] and the file.
mod defaults {
    use super::{Duration, OriginPattern};

    pub(super) fn allowed_origins() -> Vec<OriginPattern> {
        vec![OriginPattern::Any]
    }
    /// About 300 ms of the official widget in headless Chromium on 2 cores (13 × 4: 32 768
    /// expected attempts; BENCHMARKS.md, "Proof-of-work cost").
    pub(super) fn difficulty() -> u8 {
        13
    }
    pub(super) fn tasks() -> u8 {
        4
    }
    pub(super) fn challenge_lifetime() -> Duration {
        Duration::from_secs(300)
    }
    pub(super) fn result_lifetime() -> Duration {
        Duration::from_secs(900)
    }
    pub(super) fn max_retrievals() -> u32 {
        1
    }
    pub(super) fn score_threshold() -> f64 {
        0.5
    }
    pub(super) fn yes() -> bool {
        true
    }
}

impl Site {
    /// A site with the documented defaults.
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>, site_key: Uuid) -> Self {
        Site {
            name: name.into(),
            site_key,
            captcha_id: None,
            api_keys: Vec::new(),
            allowed_origins: defaults::allowed_origins(),
            difficulty: defaults::difficulty(),
            tasks: defaults::tasks(),
            challenge_lifetime: defaults::challenge_lifetime(),
            result_lifetime: defaults::result_lifetime(),
            max_retrievals: defaults::max_retrievals(),
            minimal_data_mode: false,
            risk_scoring: defaults::yes(),
            score_threshold: defaults::score_threshold(),
            bypass_keys: Vec::new(),
            allow_ips: NetworkSet::default(),
            block_ips: NetworkSet::default(),
            countries_allowed: Vec::new(),
            countries_blocked: Vec::new(),
            rules: Vec::new(),
            reputation_lists: defaults::yes(),
            adaptive_difficulty: AdaptiveDifficulty::default(),
            suspicion: Suspicion::default(),
            repetition: Repetition::default(),
            sandbox_fixtures: false,
            locked: false,
            hourly_quota: None,
            failover_answers: defaults::yes(),
            older_results_api: defaults::yes(),
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
            sandbox_fixtures: true,
            risk_scoring: false,
            ..Site::new("sandbox", SANDBOX_SITE_KEY)
        }
    }

    /// The `captchaId` of this site's results: the configured one, or a v4-format UUID derived
    /// from the site key.
    #[must_use]
    pub fn captcha_id(&self) -> Uuid {
        self.captcha_id.unwrap_or_else(|| {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(self.site_key.as_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest[..16]);
            uuid::Builder::from_random_bytes(bytes).into_uuid()
        })
    }

    /// Whether verifications of this site are scored: risk scoring on and not in minimal-data
    /// mode (which sends no behavioural data). Otherwise no signal is looked for and the score
    /// is 0.
    #[must_use]
    pub fn scores(&self) -> bool {
        self.risk_scoring && !self.minimal_data_mode
    }

    /// Every problem with this site, as `(field, message)`.
    #[must_use]
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Problems::default();
        problems.require(!self.name.trim().is_empty(), "name", "must not be empty");
        problems.require(
            !self.api_keys.is_empty(),
            "api_keys",
            &format!(
                "needs at least one key (or set TRUSTCAPTCHA_SITE__{}__API_KEYS)",
                super::environment::env_name(&self.name)
            ),
        );
        problems.require(
            !self
                .bypass_keys
                .iter()
                .any(|key| key.is_among(&self.api_keys)),
            "bypass_keys",
            "holds a key that is also an API key: a page would then carry the backend's secret",
        );
        problems.require(
            !self.allowed_origins.is_empty(),
            "allowed_origins",
            "needs at least one origin, or \"*\"",
        );
        problems.require(
            !self.allow_ips.contains_everything(),
            "allow_ips",
            "allows every address (0.0.0.0/0, ::/0): every visitor would pass with score 0, \
             which turns the captcha off; list the networks you trust",
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
            problems.push(
                "difficulty",
                format!(
                    "{} bits with {} task(s) take a browser about {seconds:.0} s on average: at most \
                     60 s, i.e. lower the difficulty or the tasks",
                    self.difficulty, self.tasks
                ),
            );
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
        let window = self.adaptive_difficulty.window;
        problems.require(
            !window.is_zero() && window <= Duration::from_secs(86_400),
            "adaptive_difficulty.window_secs",
            "must be between 1 and 86400",
        );
        let window = self.repetition.window;
        problems.require(
            !window.is_zero() && window <= Duration::from_secs(86_400),
            "repetition.window_secs",
            "must be between 1 and 86400",
        );
        problems.require(
            self.repetition.networks <= 100,
            "repetition.networks",
            "must be at most 100 (0 turns the signal off)",
        );
        problems.require(
            (0.0..1.0).contains(&self.repetition.share),
            "repetition.share",
            "must be at least 0 and below 1",
        );
        problems.require(
            self.suspicion.score_per_bit > 0.0 && self.suspicion.score_per_bit <= 1.0,
            "suspicion.score_per_bit",
            "must be above 0 and at most 1",
        );
        problems.require(
            self.hourly_quota != Some(0),
            "hourly_quota",
            "must be at least 1 (or left out)",
        );
        for (i, rule) in self.rules.iter().enumerate() {
            for (field, message) in rule.check() {
                problems.push(&format!("rules[{i}].{field}"), message);
            }
        }
        problems.0
    }
}

impl Rule {
    /// Every problem with this rule, as `(field, message)`.
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Problems::default();
        let adjusts = self.difficulty.is_some() || self.tasks.is_some();
        match self.action {
            Action::Block | Action::Allow => problems.require(
                !adjusts,
                "action",
                "takes no `difficulty` or `tasks` (those are for \"adjust\")",
            ),
            Action::Adjust => problems.require(
                adjusts,
                "action",
                "\"adjust\" needs `difficulty` (bits to add or remove) or `tasks`",
            ),
        }
        problems.require(
            self.tasks.is_none_or(|tasks| (1..=32).contains(&tasks)),
            "tasks",
            "must be between 1 and 32",
        );
        problems.require(
            self.header.is_some() || self.header_value.is_none(),
            "header_value",
            "needs `header`",
        );
        for (field, names, os) in [
            ("browsers", &self.browsers, false),
            ("operating_systems", &self.operating_systems, true),
        ] {
            for (i, name) in names.iter().enumerate() {
                if !crate::visitor::known_family(name, os) {
                    problems.push(
                        &format!("{field}[{i}]"),
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
                    );
                }
            }
        }
        problems.0
    }
}
