//! The service core: create, submit and retrieve a verification, as domain operations with
//! domain outcomes. No HTTP here: the handlers in [`crate::api`] extract what these need and
//! render what they return.
//!
//! * [`create`]: site, origin, mode, lock and quota checks, then a bypass key finishes at once
//!   or a proof-of-work challenge is handed out and stored as pending;
//! * [`submit`]: claims the pending verification under a lease, verifies the proof-of-work,
//!   scores the visitor and stores the finished result; cancelling it (the client went away)
//!   releases the claim, so neither the verification nor a valid solution is lost;
//! * [`retrieve`]: the backend's retrieval, counted atomically by the store; a widget's
//!   failover claim gets a flagged FAILOVER result only with an outage on record.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, DecisionType, VerificationResult, VerificationToken};
use uuid::Uuid;

use crate::access::{self, Seen};
use crate::adaptive;
use crate::config::Site;
use crate::counters::{self, QUOTA_WINDOW};
use crate::detection;
use crate::limits::Limited;
use crate::origin::origin_allowed;
use crate::pow::{self, PowError};
use crate::protocol::{
    Challenge, ChallengeBody, CreateRequest, Finished as FinishedWire, FinishedBody, SubmitRequest,
    Task,
};
use crate::scoring::{self, Verdict};
use crate::secret::KeyHash;
use crate::signals::Signals;
use crate::state::{AppState, KeySites};
use crate::store::{Finished, Lease, Pending, Retrieval, Store as _, StoreError, Tracked};
use crate::visitor::{MAX_FIELD_BYTES, Visitor, truncated};

/// A new verification's id: the creation time in milliseconds, then 74 random bits (a UUID of
/// version 7). The random bits keep ids unguessable, as the widget's submit and the backend's
/// retrieval name a verification by its id alone; the time in front makes ids created close
/// together sort together, so a store indexed by id (SQLite's B-tree) writes new and recently
/// used verifications into a few pages instead of one random page each.
fn new_id(now: OffsetDateTime) -> Uuid {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

/// How long a submission holds its claim before another submission of the same verification
/// may take over (a claimant that crashed strands nothing for longer).
const CLAIM_LEASE: Duration = Duration::from_secs(30);

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
        Limited::Outstanding => "too many open challenges; solve or let them expire first",
        Limited::Guessing(_) => "too many failed key attempts from this network; retry later",
    })]
    Limited(Limited),
    /// The store could not serve the request (503).
    #[error("{0}")]
    Store(StoreError),
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
            Refusal::Limited(Limited::Outstanding) => "too_many_pending",
            Refusal::Limited(Limited::Guessing(_)) => "locked_out",
            Refusal::Store(StoreError::Full) => "store_full",
            Refusal::Store(_) => "store_unavailable",
        }
    }
}

impl From<Limited> for Refusal {
    fn from(limited: Limited) -> Self {
        Refusal::Limited(limited)
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Store(error)
    }
}

/// What the HTTP layer knows about the request beyond its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The visitor's address (the peer, or the forwarded one from a trusted proxy).
    pub ip: Option<IpAddr>,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Every header, for the proof-of-work rules that look at one.
    pub headers: axum::http::HeaderMap,
}

/// What a create request gets.
#[derive(Debug)]
pub(crate) enum Created {
    /// A challenge to solve (200).
    Challenge(ChallengeBody),
    /// Finished at once by a bypass key (201).
    Finished(FinishedBody),
}

/// Starts a verification.
///
/// # Errors
///
/// A [`Refusal`] for an unknown site, a foreign origin, a mode mismatch, a locked site, a used
/// up quota, or a store that cannot take it.
pub(crate) async fn create(
    state: &AppState,
    request: CreateRequest,
    context: RequestContext,
) -> Result<Created, Refusal> {
    let now = state.clock.now();
    let site = Uuid::parse_str(request.site_key.trim())
        .ok()
        .and_then(|key| state.site(key))
        .ok_or(Refusal::UnknownSite)?;

    // A browser always sends `Origin` (`null` from a sandboxed frame or a file); only a client
    // without one, which is not a browser, is judged by the origin its body claims.
    let header_origin = context.origin.as_deref();
    let page_origin = detection::text(&request.browser_information, "window-origin");
    if !origin_allowed(
        &site.allowed_origins,
        header_origin.or(page_origin.as_deref()),
    ) {
        return Err(Refusal::OriginNotAllowed);
    }
    if request.widget.minimal_data_mode != site.minimal_data_mode {
        return Err(Refusal::ModeMismatch);
    }
    if site.locked {
        return Err(Refusal::SiteLocked);
    }
    let ip = context.ip;
    check_quota(state, &site, ip, now).await?;
    state.limits.create(ip)?;

    let mut visitor = visitor(state, &context, &request, header_origin);
    let decision = access::decide(
        &site,
        &state.catalog().reputation,
        &Seen {
            ip,
            country: &visitor.country_code,
            browser: &visitor.browser,
            operating_system: &visitor.operating_system,
            headers: &context.headers,
        },
    );
    if site.minimal_data_mode {
        // The mode's promise: nothing about the visitor is kept, nor shown in the result.
        visitor = Visitor::default();
    }
    if let Some(key) = request
        .widget
        .bypass_key
        .as_deref()
        .filter(|key| !key.trim().is_empty())
    {
        state.limits.guessing(ip, now)?;
        if !KeyHash::of(key).is_among(&site.bypass_keys) {
            state.limits.failed_guess(ip, now);
            return Err(Refusal::BypassKeyRejected);
        }
        let verdict = Verdict {
            passed: true,
            score: 0.0,
            decision_type: DecisionType::BypassKey,
            decision_action: DecisionAction::Allow,
        };
        let id = new_id(now);
        let finished = finished(&site, id, visitor, (now, now), verdict);
        let result = finished.result.clone();
        state.store.insert_finished(id, finished, now).await?;
        count_finished(state, &site, ip, Counted::Bypass, now).await;
        state.metrics.solved(&site.name, "bypass_key");
        state.statistics.count(&site.name, "solved");
        state
            .statistics
            .finished(&site.name, &result, &Signals::default(), Duration::ZERO);
        return Ok(Created::Finished(token_for(state, &site, id, now)));
    }

    // Signals are looked for only where they are scored (nor counted in statistics elsewhere).
    let mut signals = if site.scores() {
        detection::at_create(&request, &context.headers)
    } else {
        Signals::default()
    };
    // Outstanding challenges count like solves, so that creating many first and solving them
    // later does not keep the base difficulty.
    let outstanding = state.limits.outstanding(ip, now);
    let solved = match ip {
        Some(ip) => {
            let window = site.adaptive_difficulty.window;
            let counter = counters::solves_counter(ip, window);
            state
                .store
                .counts(&counter, window, now)
                .await?
                .sliding(window, now)
        }
        None => 0,
    };
    signals.set(
        Signals::VELOCITY,
        site.scores() && detection::busy_network(solved, &site.adaptive_difficulty),
    );
    let extra = adaptive::extra_bits(solved, outstanding, &site.adaptive_difficulty);
    let difficulty =
        (i16::from(site.difficulty) + i16::from(extra) + i16::from(decision.difficulty))
            .clamp(1, 32);
    let difficulty = u8::try_from(difficulty).unwrap_or(32);
    let pow_tasks = pow::Tasks::generate(decision.tasks.unwrap_or(site.tasks));
    let tasks = pow_tasks
        .inputs()
        .zip(0u32..)
        .map(|(input, number)| Task {
            number,
            input: pow::encode_input(&input),
        })
        .collect();
    let id = new_id(now);
    let pending = Pending {
        site_key: site.site_key,
        tasks: pow_tasks,
        difficulty,
        created_at: now,
        expires_at: now + site.challenge_lifetime,
        visitor,
        signals,
        access_rule: decision.access,
    };
    state
        .limits
        .hand_out(ip, site.site_key, now, pending.expires_at)?;
    if let Err(error) = state.store.insert_pending(id, pending, now).await {
        state.limits.settle(ip, site.site_key);
        return Err(error.into());
    }
    state.metrics.created(&site.name);
    state.statistics.count(&site.name, "created");
    Ok(Created::Challenge(ChallengeBody {
        challenge: Challenge {
            verification_id: id,
            difficulty,
            tasks,
        },
        finished: None,
    }))
}

/// What a submission that solved the proof-of-work gets, and what the access log names.
#[derive(Debug)]
pub(crate) struct Solved {
    /// The verification token (201).
    pub body: FinishedBody,
    /// The site it was for.
    pub site: Arc<Site>,
    /// The detection signals that fired.
    pub signals: Signals,
}

/// Verifies a submission and finishes the verification.
///
/// # Errors
///
/// [`Refusal::NoPendingVerification`] when nothing can be claimed,
/// [`Refusal::ProofOfWork`] when the answers are wrong (the verification is then forgotten), or
/// a store failure.
pub(crate) async fn submit(
    state: &AppState,
    id: Uuid,
    request: SubmitRequest,
    ip: Option<IpAddr>,
) -> Result<Solved, Refusal> {
    let now = state.clock.now();
    state.limits.submit(ip)?;
    let lease = Lease::new(now, CLAIM_LEASE);
    let pending = state
        .store
        .claim(id, lease, now)
        .await?
        .ok_or(Refusal::NoPendingVerification)?;
    // In minimal-data mode no address was kept: the submitter's stands in.
    state
        .limits
        .settle(pending.visitor.ip.or(ip), pending.site_key);
    let claim = Claim {
        store: state.store.clone(),
        id,
        lease: Some(lease),
    };
    let Some(site) = state.site(pending.site_key) else {
        // The site was removed from the configuration since the challenge was handed out.
        claim.abandon().await?;
        return Err(Refusal::NoPendingVerification);
    };

    if let Err(error) = pow::verify(&pending.tasks, pending.difficulty, &request.tasks) {
        claim.abandon().await?;
        state.metrics.failed(&site.name, error.label());
        state.statistics.count(&site.name, "failed");
        return Err(Refusal::ProofOfWork(error));
    }

    let observed = (now - pending.created_at).try_into().unwrap_or_default();
    let signals = if site.scores() {
        detection::at_submit(pending.signals, &request, observed)
    } else {
        pending.signals
    };
    let verdict = scoring::verdict(&site, pending.access_rule, &signals);
    // Only an access rule fails a verification; one that fails spends no one's quota.
    let counted = if !verdict.passed {
        Counted::Blocked
    } else {
        Counted::Solved
    };
    let visitor_ip = pending.visitor.ip.or(ip);
    let finished = finished(
        &site,
        id,
        pending.visitor,
        (pending.created_at, now),
        verdict,
    );
    let result = finished.result.clone();
    // Judged at the time of finishing: verifying the work took a while since `now`.
    claim.finish(finished, state.clock.now()).await?;
    count_finished(state, &site, visitor_ip, counted, now).await;
    state.metrics.solved(&site.name, "proof_of_work");
    state.statistics.count(&site.name, "solved");
    let solve = (now - pending.created_at).try_into().unwrap_or_default();
    state
        .statistics
        .finished(&site.name, &result, &signals, solve);
    Ok(Solved {
        body: token_for(state, &site, id, now),
        site,
        signals,
    })
}

/// Whether `site`'s hourly quota has room at `now` for a verification from `ip`. The quota is
/// counted when a verification finishes (work done), so starting many and solving none cannot
/// use it up; here it is only checked. Once half of it is used, the rest goes only to blocks
/// below an equal share of that half ([`crate::limits::fair`]), so that a few blocks cannot spend
/// a site's hour.
async fn check_quota(
    state: &AppState,
    site: &Site,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<(), Refusal> {
    let Some(limit) = site.hourly_quota else {
        return Ok(());
    };
    let as_usize = |count: u64| usize::try_from(count).unwrap_or(usize::MAX);
    let (limit, counter) = (
        as_usize(u64::from(limit)),
        counters::quota_counter(site.site_key),
    );
    let used = as_usize(
        state
            .store
            .counts(&counter, QUOTA_WINDOW, now)
            .await?
            .current,
    );
    if used >= limit {
        return Err(Refusal::QuotaExhausted);
    }
    if used >= limit.div_ceil(2) {
        let counter = counters::quota_block_counter(site.site_key, ip);
        let held = as_usize(
            state
                .store
                .counts(&counter, QUOTA_WINDOW, now)
                .await?
                .current,
        );
        if !crate::limits::fair(held, used, limit, state.limits.active_blocks()) {
            return Err(Refusal::QuotaExhausted);
        }
    }
    Ok(())
}

/// How a finished verification counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
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
async fn count_finished(
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
    for (counter, window) in raised {
        if let Err(error) = state.store.add(&counter, window, 1, now).await {
            tracing::warn!(%error, "a finished verification was not counted");
        }
    }
}

/// A claim held by a submission. Dropped while still held (the submission was cancelled), it
/// releases the verification back to pending in the background.
struct Claim {
    store: Tracked,
    id: Uuid,
    lease: Option<Lease>,
}

impl Claim {
    /// Stores the result. The lease stays in `self` until the store has answered, so a
    /// cancellation during the call still releases the claim; a failure releases it too, so the
    /// widget (or its retry) can submit again.
    async fn finish(mut self, finished: Finished, now: OffsetDateTime) -> Result<(), StoreError> {
        let lease = self.lease.expect("held until finished or abandoned");
        self.store
            .finish_claimed(self.id, lease, finished, now)
            .await?;
        self.lease = None;
        Ok(())
    }

    async fn abandon(mut self) -> Result<(), StoreError> {
        let lease = self.lease.expect("held until finished or abandoned");
        self.store.abandon(self.id, lease).await?;
        self.lease = None;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // NotClaimant: the lease lapsed and someone else holds it; nothing to undo.
                if let Err(error) = store.release(id, lease).await {
                    tracing::debug!(%error, "a cancelled submission's claim was not released");
                }
            });
        }
        // Without a runtime the lease simply lapses.
    }
}

/// A successful retrieval, with the label the metrics count it under.
#[derive(Debug)]
pub(crate) struct Retrieved {
    /// The result to return.
    pub result: VerificationResult,
    /// `ok`, `fixture`, `failover` or `failover_tolerance`.
    pub outcome: &'static str,
}

/// The backend's retrieval of a result with a key valid for the sites in `for_key` (`None`: a key
/// of no site).
///
/// A key may be valid for several sites: it sees the verifications of all of them, and a
/// synthesized failover answer names the first of them in configuration order.
///
/// # Errors
///
/// A [`Refusal`] for an invalid key and for each unsuccessful outcome of the store's
/// retrieval. A verification of a site the key is not for reads as [`Refusal::NotFound`], so
/// that a key cannot probe which ids exist elsewhere.
pub(crate) async fn retrieve(
    state: &AppState,
    for_key: Option<Arc<KeySites>>,
    id: &str,
    client_failover: bool,
    ip: Option<IpAddr>,
) -> Result<Retrieved, Refusal> {
    // A network locked out for guessing is refused before its key is looked at, so a correct
    // guess then is refused too.
    let now = state.clock.now();
    state.limits.guessing(ip, now)?;
    let Some(for_key) = for_key else {
        state.limits.failed_guess(ip, now);
        return Err(Refusal::InvalidKey);
    };
    let (sites, authorized) = (&for_key.sites, &for_key.site_keys);
    let Some(first_site) = sites.first() else {
        return Err(Refusal::InvalidKey);
    };
    let id = Uuid::parse_str(id).map_err(|_| Refusal::NotFound)?;

    if let Some(answer) = sites
        .iter()
        .find(|site| site.sandbox_fixtures)
        .and_then(|site| fixture(site, id, now))
    {
        return answer.map(|result| Retrieved {
            result,
            outcome: "fixture",
        });
    }
    if client_failover {
        // The widget could not reach us and made the id up: nothing proves it solved anything.
        // Only within the margin after downtime on record, and only for a site that allows it,
        // is it answered with a (flagged) FAILOVER result, stored so that it is answered once.
        if !first_site.failover_answers || !state.outages.grace_active(now) {
            return Err(Refusal::NoOutageOnRecord);
        }
        let synthesized = Finished {
            result: synthesized(first_site, id, now, DecisionType::Failover),
            site_key: first_site.site_key,
            max_retrievals: 1,
        };
        match state.store.insert_finished(id, synthesized, now).await {
            Ok(()) | Err(StoreError::Duplicate) => {}
            Err(error) => return Err(error.into()),
        }
    }

    // Nothing is synthesized for an id the store does not know, or while the store cannot
    // answer: a made-up id never passes, an unsolved one never passes, and a store outage is a
    // 503 (the backend's failover policy decides), never a pass.
    let outcome = if client_failover { "failover" } else { "ok" };
    match state.store.retrieve(id, authorized, now).await? {
        Retrieval::Found(result) => Ok(Retrieved {
            result: *result,
            outcome,
        }),
        Retrieval::NotFound | Retrieval::WrongSite => Err(Refusal::NotFound),
        Retrieval::NotFinished => Err(Refusal::NotFinished),
        Retrieval::Expired => Err(Refusal::Expired),
        Retrieval::LimitReached => Err(Refusal::RetrievalLimitReached),
    }
}

/// The finished verification for a verdict.
fn finished(
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
    }
}

/// The widget's 201 answer for a verification finished at `now`. With a `public_url`, the
/// token also names it as `apiEndpoint`, which the 2.x backend libraries require (the 3.x ones
/// ignore it).
fn token_for(state: &AppState, site: &Site, id: Uuid, now: OffsetDateTime) -> FinishedBody {
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

/// What the result will say about the visitor. The page is identified by its URL without
/// query or fragment, falling back to the origin.
fn visitor(
    state: &AppState,
    context: &RequestContext,
    request: &CreateRequest,
    header_origin: Option<&str>,
) -> Visitor {
    let info = &request.browser_information;
    let page = detection::text(info, "window-location-href")
        .map(|href| href.split(['?', '#']).next().unwrap_or_default().to_owned())
        .or_else(|| header_origin.map(str::to_owned))
        .or_else(|| detection::text(info, "window-origin"))
        .unwrap_or_default();
    let page = Box::from(truncated(&page, MAX_FIELD_BYTES));
    let user_agent = context
        .user_agent
        .clone()
        .or_else(|| detection::text(info, "window-navigator-userAgent"))
        .unwrap_or_default();
    let device = state.inspector.device(&user_agent);
    Visitor {
        ip: context.ip,
        origin: page,
        country_code: context
            .ip
            .map(|ip| state.inspector.country_code(ip))
            .unwrap_or_default(),
        device_family: device.family,
        operating_system: device.operating_system,
        browser: device.browser,
    }
}

/// A result made up for a widget's failover claim during or after an outage.
fn synthesized(
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

/// The official client test suites' fixtures, answered as the hosted service does:
/// `…0000` passes, `…0001` 404, `…0002` 423, `…0003` 410, `…0004` 429.
fn fixture(
    site: &Site,
    id: Uuid,
    now: OffsetDateTime,
) -> Option<Result<VerificationResult, Refusal>> {
    match id.as_u128() {
        0 => Some(Ok(VerificationResult {
            gateway_failover_active: false,
            score: 0.0,
            decision_type: DecisionType::Standard,
            origin: "https://sandbox.trustcaptcha.invalid/".to_owned(),
            ip_address: "127.0.0.1".to_owned(),
            device_family: "Other".to_owned(),
            operating_system: "Other".to_owned(),
            browser: "Other".to_owned(),
            ..synthesized(site, id, now, DecisionType::Standard)
        })),
        1 => Some(Err(Refusal::NotFound)),
        2 => Some(Err(Refusal::NotFinished)),
        3 => Some(Err(Refusal::Expired)),
        4 => Some(Err(Refusal::RetrievalLimitReached)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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
