//! The service core: create, submit and retrieve a verification, as domain operations with
//! domain outcomes. No HTTP here: the handlers in [`crate::api`] extract what these need and
//! render what they return. Each outcome is counted once, through [`crate::events`].
//!
//! * [`create`]: a sequence of steps (admit, look at the visitor, then a bypass key finishes at
//!   once, or a challenge is made and handed out);
//! * [`submit`]: claims the pending verification under a lease, verifies the proof-of-work,
//!   scores the visitor and stores the finished result; cancelling it (the client went away)
//!   releases the claim, so neither the verification nor a valid solution is lost;
//! * [`retrieve`]: the backend's retrieval, counted atomically by the store; a widget's
//!   failover claim gets a flagged FAILOVER result only with an outage on record.
//!
//! A request is either refused ([`Refusal`], the client's doing) or not served because the
//! store failed ([`Error::Store`], a 503).

mod create;
mod retrieve;
mod submit;

pub(crate) use create::{Created, RequestContext, create};
pub(crate) use retrieve::retrieve;
pub(crate) use submit::submit;

use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, DecisionType, VerificationResult, VerificationToken};
use uuid::Uuid;

use crate::alerts::Kind;
use crate::config::Site;
use crate::counters::{self, QUOTA_WINDOW};
use crate::limits::Limited;
use crate::pow::PowError;
use crate::protocol::{Finished as FinishedWire, FinishedBody};
use crate::scoring::Verdict;
use crate::state::AppState;
use crate::store::{Finished, Store as _, StoreError};
use crate::visitor::Visitor;

/// A new verification's id: the creation time in milliseconds, then 74 random bits (a UUID of
/// version 7). The random bits keep ids unguessable, as the widget's submit and the backend's
/// retrieval name a verification by its id alone; the time in front makes ids created close
/// together sort together, so a store indexed by id (SQLite's B-tree) writes new and recently
/// used verifications into a few pages instead of one random page each.
pub(super) fn new_id(now: OffsetDateTime) -> Uuid {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

/// The score of a synthesized failover result: nothing is known about the visitor, so it sits
/// at the recommended threshold (`score > 0.5` is not true; a stricter policy rejects it).
pub(crate) const FAILOVER_SCORE: f64 = 0.5;

/// Why a request was refused: each maps to one HTTP status in [`crate::api`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// No site has this site key (404).
    #[error("no captcha for this site key")]
    UnknownSite,
    /// The page's origin may not use this site (403).
    #[error("the captcha is not accessible from this origin")]
    OriginNotAllowed,
    /// The widget's minimal-data mode differs from the site's (422).
    #[error("the widget's minimal-data mode does not match the captcha configuration")]
    ModeMismatch,
    /// The site is locked (423 on create).
    #[error("this captcha is locked")]
    SiteLocked,
    /// The site's hourly quota is used up (402).
    #[error("the captcha's verification quota is used up for this hour")]
    QuotaExhausted,
    /// No pending verification with this id: unknown, expired, already submitted (404).
    #[error("no pending verification with this id")]
    NoPendingVerification,
    /// The submitted proof-of-work is wrong (409).
    #[error("{0}")]
    ProofOfWork(PowError),
    /// The API key is not valid for any site (403).
    #[error("the api key is not valid")]
    InvalidKey,
    /// No verification the key may see has this id (404).
    #[error("no such verification")]
    NotFound,
    /// The result has expired (410).
    #[error("the verification result has expired")]
    Expired,
    /// The verification is not finished (423).
    #[error("the verification has not been finished yet")]
    NotFinished,
    /// The result was retrieved as often as allowed (429).
    #[error("the verification result was already retrieved as often as allowed")]
    RetrievalLimitReached,
    /// A client-reported failover without an outage on record (412).
    #[error("the client reported a failover, but no recent outage is on record")]
    NoOutageOnRecord,
    /// A bypass key was sent, and it is not one of the site's (403; nothing is stored).
    #[error("the bypass key is not valid for this captcha")]
    BypassKeyRejected,
    /// A limit per client network or per site (429, or 403 for key guessing).
    #[error("{}", match .0 {
        Limited::Rate(_) => "too many requests from this network; retry later",
        Limited::Pending => "too many open challenges; solve or let them expire first",
        Limited::Guessing(_) => "too many failed key attempts from this network; retry later",
    })]
    Limited(Limited),
}

impl Refusal {
    /// A short stable name for metrics and logs.
    #[must_use]
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refusal::UnknownSite => "unknown_site",
            Refusal::OriginNotAllowed => "origin_not_allowed",
            Refusal::ModeMismatch => "mode_mismatch",
            Refusal::SiteLocked => "site_locked",
            Refusal::QuotaExhausted => "quota_exhausted",
            Refusal::NoPendingVerification => "no_pending_verification",
            Refusal::ProofOfWork(error) => error.label(),
            Refusal::InvalidKey => "invalid_key",
            Refusal::NotFound => "not_found",
            Refusal::Expired => "expired",
            Refusal::NotFinished => "not_finished",
            Refusal::RetrievalLimitReached => "limit_reached",
            Refusal::NoOutageOnRecord => "failover_rejected",
            Refusal::BypassKeyRejected => "bypass_key_rejected",
            Refusal::Limited(Limited::Rate(_)) => "rate_limited",
            Refusal::Limited(Limited::Pending) => "too_many_pending",
            Refusal::Limited(Limited::Guessing(_)) => "locked_out",
        }
    }
}

impl From<Limited> for Refusal {
    fn from(limited: Limited) -> Self {
        Refusal::Limited(limited)
    }
}

/// Why a request was not served: refused (the client's request, or its limits), or the store
/// failed (503; not the client's doing, so never counted as a refusal of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// Refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store could not serve the request.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// A short stable name for metrics and logs.
    #[must_use]
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Error::Refused(refusal) => refusal.label(),
            Error::Store(StoreError::Full) => "store_full",
            Error::Store(_) => "store_unavailable",
        }
    }
}

impl From<Limited> for Error {
    fn from(limited: Limited) -> Self {
        Error::Refused(Refusal::Limited(limited))
    }
}

/// What the core answers, with the site the request was for (when it named a known one), so
/// that handlers need not look it up again to name it.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    /// The site.
    pub site: Option<Arc<Site>>,
    /// The outcome.
    pub outcome: Result<T, Error>,
}

/// How a finished verification counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counted {
    /// Solved: against the quota, and as a solve of the client's network.
    Solved,
    /// Finished by a bypass key: against the quota only.
    Bypass,
    /// Refused by an access rule: nothing; a blocked visitor spends no one's quota.
    Blocked,
}

/// Counts a finished verification in the store, for every server sharing it: against the
/// site's hourly quota and the client block's part of it, and as a solve of the client's network
/// (adaptive difficulty). The result is stored already, so a failure here is logged, not
/// returned.
pub(super) async fn count_finished(
    state: &AppState,
    site: &Site,
    ip: Option<IpAddr>,
    counted: Counted,
    now: OffsetDateTime,
) {
    let mut raised = Vec::with_capacity(3);
    if site.hourly_quota.is_some() && counted != Counted::Blocked {
        raised.push((counters::quota_counter(site.site_key), QUOTA_WINDOW));
        raised.push((
            counters::quota_block_counter(site.site_key, ip),
            QUOTA_WINDOW,
        ));
    }
    if let (Some(ip), Counted::Solved | Counted::Blocked) = (ip, counted) {
        let window = site.adaptive_difficulty.window;
        raised.push((counters::solves_counter(ip, window), window));
    }
    let quota = counters::quota_counter(site.site_key);
    for (counter, window) in raised {
        match state.store.add(&counter, window, 1, now).await {
            Ok(used) if counter == quota => alert_quota(state, site, used, now),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "a finished verification was not counted"),
        }
    }
}

/// Raises the quota's alerts when `used` (the store's count, which one server at a time
/// raises) reaches 80 % or all of `site`'s hourly quota.
fn alert_quota(state: &AppState, site: &Site, used: u64, now: OffsetDateTime) {
    let Some(limit) = site.hourly_quota.map(u64::from) else {
        return;
    };
    let kind = if used == limit {
        Kind::QuotaExhausted
    } else if used == (limit * 4).div_ceil(5) {
        Kind::QuotaWarning
    } else {
        return;
    };
    let data = serde_json::json!({ "used": used, "quota": limit });
    state.alerts.raise(kind, Some(&site.name), data, now);
}

/// The finished verification for a verdict.
pub(super) fn finished(
    site: &Site,
    id: Uuid,
    visitor: Visitor,
    (started_at, now): (OffsetDateTime, OffsetDateTime),
    verdict: Verdict,
) -> Finished {
    let result = VerificationResult {
        captcha_id: site.captcha_id(),
        verification_id: id,
        verification_passed: verdict.passed,
        score: verdict.score,
        decision_type: verdict.decision_type,
        decision_action: verdict.decision_action,
        gateway_failover_active: false,
        risk_scoring_enabled: site.risk_scoring,
        minimal_data_mode_enabled: site.minimal_data_mode,
        origin: visitor.origin.into(),
        ip_address: visitor.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        country_code: visitor.country_code.into(),
        device_family: visitor.device_family.to_string(),
        operating_system: visitor.operating_system.to_string(),
        browser: visitor.browser.to_string(),
        verification_started_at: Some(started_at),
        verification_finished_at: Some(now),
        result_expires_at: Some(now + site.result_lifetime),
        result_first_fetched_at: None,
        result_last_fetched_at: None,
    };
    Finished {
        result,
        site_key: site.site_key,
        max_retrievals: site.max_retrievals,
        access_rule: verdict.access_rule,
    }
}

/// The widget's 201 answer for a verification finished at `now`. With a `public_url`, the
/// token also names it as `apiEndpoint`, which the 2.x backend libraries require (the 3.x ones
/// ignore it).
pub(super) fn token_for(
    state: &AppState,
    site: &Site,
    id: Uuid,
    now: OffsetDateTime,
) -> FinishedBody {
    use base64::Engine as _;
    let expires_in_ms = u64::try_from(site.result_lifetime.as_millis()).unwrap_or(u64::MAX);
    let token = VerificationToken::new(id, now + site.result_lifetime);
    let with_endpoint = state.settings.public_url.as_ref().and_then(|url| {
        let mut json = serde_json::to_value(token).ok()?;
        json.as_object_mut()?
            .insert("apiEndpoint".to_owned(), url.clone().into());
        Some(base64::engine::general_purpose::STANDARD.encode(json.to_string()))
    });
    FinishedBody {
        finished: FinishedWire {
            verification_token: with_endpoint.unwrap_or_else(|| token.encode()),
            expires_in_ms,
        },
    }
}

/// A result made up for a widget's failover claim during or after an outage.
pub(super) fn synthesized(
    site: &Site,
    id: Uuid,
    now: OffsetDateTime,
    decision_type: DecisionType,
) -> VerificationResult {
    VerificationResult {
        captcha_id: site.captcha_id(),
        verification_id: id,
        verification_passed: true,
        score: FAILOVER_SCORE,
        decision_type,
        decision_action: DecisionAction::Allow,
        gateway_failover_active: true,
        risk_scoring_enabled: site.risk_scoring,
        minimal_data_mode_enabled: site.minimal_data_mode,
        origin: String::new(),
        ip_address: String::new(),
        country_code: String::new(),
        device_family: String::new(),
        operating_system: String::new(),
        browser: String::new(),
        verification_started_at: Some(now),
        verification_finished_at: Some(now),
        result_expires_at: Some(now + site.result_lifetime),
        result_first_fetched_at: Some(now),
        result_last_fetched_at: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_sort_by_creation_time_and_stay_unguessable() {
        let now = OffsetDateTime::now_utc();
        let later = now + Duration::from_millis(1);
        let (first, second, third) = (new_id(now), new_id(now), new_id(later));
        assert_eq!(first.get_version_num(), 7);
        assert!(
            first < third && second < third,
            "a later millisecond sorts after"
        );
        // Within one millisecond only the random bits tell ids apart.
        assert_ne!(first, second);
        assert_ne!(first.as_bytes()[6..], second.as_bytes()[6..]);
    }
}
