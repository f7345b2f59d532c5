//! A site's event log: its most recent finished verifications, each as a [`Logged`] entry in
//! the store's journal `events:SITE`, bounded by `event_log_entries` and `event_log_days`.
//!
//! An entry says when, the decision, how it finished, the score, the signals and the access
//! rule that decided, the page's origin, the visitor's country, browser and system, and their
//! network (an IPv4 address cut to its /24, an IPv6 one to its /48). It never holds a token, a
//! key or a whole address. It is made from the result the site's backend gets, so a site in
//! minimal-data mode logs only what its results hold (no address, no browser).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, VerificationResult};

use crate::access::AccessRule;
use crate::signals::Signals;
use crate::store::{JournalEntry, Store as _, StoreError, TrackedStore, history::JOURNAL_PAGE};

/// A verification that finished, as the event log and statistics see it.
#[derive(Debug)]
pub(crate) struct Finished<'a> {
    /// Its result.
    pub(crate) result: &'a VerificationResult,
    /// The detection signals that fired.
    pub(crate) signals: Signals,
    /// From the challenge to the solution.
    pub(crate) solve: Duration,
    /// The access rule that decided it, if one did.
    pub(crate) access_rule: Option<AccessRule>,
    /// `proof_of_work` or `bypass_key`.
    pub(crate) how: &'static str,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Logged {
    /// The verification's id.
    pub(crate) id: uuid::Uuid,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) at: OffsetDateTime,
    /// `pass` or `block`.
    pub(crate) decision: String,
    /// `proof_of_work` or `bypass_key`.
    pub(crate) how: String,
    /// The bot score.
    pub(crate) score: f64,
    /// The signals that fired, heaviest first.
    pub(crate) signals: Vec<String>,
    /// The access rule that decided it (`allowed`, `blocked`, `globally_blocked`,
    /// `country_blocked`).
    pub(crate) rule: Option<String>,
    /// The page's origin.
    pub(crate) origin: String,
    /// Two letters, or empty.
    pub(crate) country: String,
    /// As the result names it.
    pub(crate) browser: String,
    /// As the result names it.
    pub(crate) system: String,
    /// The visitor's network, or empty (minimal-data mode).
    pub(crate) network: String,
    /// When the challenge was handed out.
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) started_at: Option<OffsetDateTime>,
    /// From the challenge to the solution, in milliseconds.
    pub(crate) solve_ms: u64,
}

impl Finished<'_> {
    /// The log entry, at `now`.
    pub(crate) fn logged(&self, now: OffsetDateTime) -> Logged {
        let result = self.result;
        Logged {
            id: result.verification_id,
            at: now,
            decision: if blocked(result) { "block" } else { "pass" }.to_owned(),
            how: self.how.to_owned(),
            score: result.score,
            signals: self.signals.fired().map(str::to_owned).collect(),
            rule: self.access_rule.map(rule_name),
            origin: result.origin.clone(),
            country: result.country_code.clone(),
            browser: result.browser.clone(),
            system: result.operating_system.clone(),
            network: network(&result.ip_address),
            started_at: result.verification_started_at,
            solve_ms: u64::try_from(self.solve.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Logged {
    /// The entry as the store's journal keeps it.
    pub(crate) fn entry(&self) -> JournalEntry {
        JournalEntry {
            at: crate::store::millis(self.at),
            id: self.id.to_string(),
            // A struct of strings and numbers always serializes.
            value: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// Whether a result refuses the visitor.
pub(crate) fn blocked(result: &VerificationResult) -> bool {
    !result.verification_passed || result.decision_action == DecisionAction::Block
}

/// An access rule as the log names it.
fn rule_name(rule: AccessRule) -> String {
    match rule {
        AccessRule::Allowed => "allowed",
        AccessRule::Blocked => "blocked",
        AccessRule::GloballyBlocked => "globally_blocked",
        AccessRule::CountryBlocked => "country_blocked",
    }
    .to_owned()
}

/// The first word of a browser or system name (`Chrome 143` → `Chrome`), `unknown` for none.
pub(crate) fn family(name: &str) -> String {
    match name.split(' ').next() {
        Some(family) if !family.is_empty() => family.to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// An address cut to its network: /24 for IPv4, /48 for IPv6; empty when there is none.
fn network(address: &str) -> String {
    let Ok(ip) = address.parse::<IpAddr>() else {
        return String::new();
    };
    let prefix = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc().to_string())
        .unwrap_or_default()
}

/// The journal holding `site`'s event log.
pub(crate) fn journal(site: &str) -> String {
    format!("events:{site}")
}

/// What to read from an event log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    /// Only `pass` or `block`.
    pub(crate) decision: Option<String>,
    /// Only entries where this signal fired.
    pub(crate) signal: Option<String>,
    /// Not before, milliseconds.
    pub(crate) from: i64,
    /// Before, milliseconds.
    pub(crate) to: i64,
    /// At most this many.
    pub(crate) limit: usize,
}

impl Query {
    fn admits(&self, logged: &Logged) -> bool {
        self.decision
            .as_ref()
            .is_none_or(|decision| *decision == logged.decision)
            && self
                .signal
                .as_ref()
                .is_none_or(|signal| logged.signals.contains(signal))
    }
}

/// The entries of `site`'s log that `query` asks for, newest first. Reads the journal a page
/// at a time until `query.limit` entries are found or the range is read (a log is bounded, so
/// this is too).
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn read(
    store: &TrackedStore,
    site: &str,
    query: &Query,
) -> Result<Vec<Logged>, StoreError> {
    let journal = journal(site);
    let mut found = Vec::new();
    let mut to = query.to;
    loop {
        let mut page = store
            .journal(&journal, query.from, to, JOURNAL_PAGE)
            .await?;
        let next = match (
            page.len() == JOURNAL_PAGE,
            page.last().map(|entry| entry.at),
        ) {
            // A full page may end amid the entries of one millisecond: those are left to the
            // next page, which ends after that millisecond (unless the whole page is one).
            (true, Some(oldest)) if page.iter().any(|entry| entry.at != oldest) => {
                page.retain(|entry| entry.at != oldest);
                Some(oldest + 1)
            }
            (true, Some(oldest)) => Some(oldest),
            _ => None,
        };
        for entry in page {
            if let Ok(logged) = serde_json::from_str::<Logged>(&entry.value)
                && query.admits(&logged)
            {
                found.push(logged);
                if found.len() >= query.limit {
                    return Ok(found);
                }
            }
        }
        match next {
            Some(next) => to = next,
            None => return Ok(found),
        }
    }
}

/// The entry `id` of `site`'s log, logged at `at` (milliseconds).
///
/// # Errors
///
/// When the store fails.
pub(crate) async fn find(
    store: &TrackedStore,
    site: &str,
    at: i64,
    id: &str,
) -> Result<Option<Logged>, StoreError> {
    let entries = store
        .journal(&journal(site), at, at.saturating_add(1), JOURNAL_PAGE)
        .await?;
    Ok(entries
        .into_iter()
        .find(|entry| entry.id == id)
        .and_then(|entry| serde_json::from_str(&entry.value).ok()))
}
