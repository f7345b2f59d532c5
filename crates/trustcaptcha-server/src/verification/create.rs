//! Starting a verification, as steps: [`admit`] the request (site, origin, mode, lock, quota,
//! rate), [`look_at`] the visitor (who it is, what the site's rules say), then either
//! [`finish_with_bypass_key`] or [`make_challenge`] and [`hand_out`].

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, DecisionType};
use uuid::Uuid;

use super::{Answer, Counted, Error, Refusal, count_finished, finished, new_id, token_for};
use crate::access::{self, Decision, Visit};
use crate::adaptive;
use crate::config::Site;
use crate::counters::{self, QUOTA_WINDOW};
use crate::detection;
use crate::events::{self, Event};
use crate::origin::origin_allowed;
use crate::pow;
use crate::protocol::{Challenge, ChallengeBody, CreateRequest, FinishedBody, Task};
use crate::scoring::Verdict;
use crate::secret::KeyHash;
use crate::signals::Signals;
use crate::state::AppState;
use crate::store::{Pending, Store as _};
use crate::visitor::{MAX_FIELD_BYTES, Visitor, truncated};

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
    /// The client's TLS fingerprint: of the connection, or a trusted proxy's header.
    pub tls: Option<crate::tls::Ja4>,
}

/// What a create request gets.
#[derive(Debug)]
pub(crate) enum Created {
    /// A challenge to solve (200).
    Challenge(ChallengeBody),
    /// Finished at once by a bypass key (201).
    Finished(FinishedBody),
}

/// Starts a verification; a refusal of a known site is counted as one, a store failure apart.
pub(crate) async fn create(
    state: &AppState,
    request: CreateRequest,
    context: RequestContext,
) -> Answer<Created> {
    let Some(site) = Uuid::parse_str(request.site_key.trim())
        .ok()
        .and_then(|key| state.site(key))
    else {
        return Answer {
            site: None,
            outcome: Err(Refusal::UnknownSite.into()),
        };
    };
    let outcome = steps(state, &site, &request, &context).await;
    if let Err(error) = &outcome {
        let reason = error.label();
        let event = match error {
            Error::Refused(_) => Event::Refused { reason },
            Error::Store(_) => Event::Unserved { reason },
        };
        events::record(state, Some(&site.name), event);
    }
    Answer {
        site: Some(site),
        outcome,
    }
}

/// The steps of [`create`] for a known site.
async fn steps(
    state: &AppState,
    site: &Site,
    request: &CreateRequest,
    context: &RequestContext,
) -> Result<Created, Error> {
    let now = state.clock.now();
    admit(state, site, request, context, now).await?;
    let (visitor, decision) = look_at(state, site, request, context);
    if let Some(key) = request
        .widget
        .bypass_key
        .as_deref()
        .filter(|key| !key.trim().is_empty())
    {
        return finish_with_bypass_key(state, site, key, visitor, context.ip, now).await;
    }
    let (pending, challenge) =
        make_challenge(state, site, request, context, visitor, decision, now).await?;
    hand_out(state, site, context.ip, pending, challenge, now).await
}

/// Whether `site` takes this request: the page's origin, the widget's mode, the site's lock,
/// its hourly quota and the client network's rate.
async fn admit(
    state: &AppState,
    site: &Site,
    request: &CreateRequest,
    context: &RequestContext,
    now: OffsetDateTime,
) -> Result<(), Error> {
    // A browser always sends `Origin` (`null` from a sandboxed frame or a file); only a client
    // without one, which is not a browser, is judged by the origin its body claims.
    let page_origin = detection::text(&request.browser_information, "window-origin");
    if !origin_allowed(
        &site.allowed_origins,
        context.origin.as_deref().or(page_origin.as_deref()),
    ) {
        return Err(Refusal::OriginNotAllowed.into());
    }
    if request.widget.minimal_data_mode != site.minimal_data_mode {
        return Err(Refusal::ModeMismatch.into());
    }
    if site.locked {
        return Err(Refusal::SiteLocked.into());
    }
    check_quota(state, site, context.ip, now).await?;
    state.limits.create(context.ip)?;
    Ok(())
}

/// Who the visitor is (nothing, in minimal-data mode), and what the site's access rules decide.
fn look_at(
    state: &AppState,
    site: &Site,
    request: &CreateRequest,
    context: &RequestContext,
) -> (Visitor, Decision) {
    let visitor = visitor(state, context, request);
    let decision = access::decide(
        site,
        &state.site_index().reputation,
        &Visit {
            ip: context.ip,
            country: &visitor.country_code,
            browser: &visitor.browser,
            operating_system: &visitor.operating_system,
            headers: &context.headers,
        },
    );
    if site.minimal_data_mode {
        // The mode's promise: nothing about the visitor is kept, nor shown in the result.
        return (Visitor::default(), decision);
    }
    (visitor, decision)
}

/// A verification finished at once by one of the site's bypass keys; a wrong key is a failed
/// guess of the client's network.
async fn finish_with_bypass_key(
    state: &AppState,
    site: &Site,
    key: &str,
    visitor: Visitor,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Created, Error> {
    state.limits.guessing(ip, now)?;
    // A console site's bypass keys as the catalog has them now: a revoked one stops at once.
    let current = state.current_site(site.site_key).await;
    let bypass_keys = current
        .as_ref()
        .map_or(&[][..], |site| &site.bypass_keys[..]);
    if !KeyHash::of(key).is_among(bypass_keys) {
        state.limits.failed_guess(ip, now);
        return Err(Refusal::BypassKeyRejected.into());
    }
    let verdict = Verdict {
        passed: true,
        score: 0.0,
        decision_type: DecisionType::BypassKey,
        decision_action: DecisionAction::Allow,
        access_rule: None,
    };
    let id = new_id(now);
    let finished = finished(site, id, visitor, (now, now), verdict);
    let result = finished.result.clone();
    state.store.insert_finished(id, finished, now).await?;
    count_finished(state, site, ip, Counted::Bypass, now).await;
    events::record(
        state,
        Some(&site.name),
        Event::Solved {
            how: "bypass_key",
            result: &result,
            signals: Signals::default(),
            solve: Duration::ZERO,
            access_rule: None,
        },
    );
    Ok(Created::Finished(token_for(state, site, id, now)))
}

/// The challenge for this visitor: the signals at create time, and the difficulty the site's
/// base, adaptive difficulty, suspicion (the signals' score so far) and access rules add up to.
async fn make_challenge(
    state: &AppState,
    site: &Site,
    request: &CreateRequest,
    context: &RequestContext,
    visitor: Visitor,
    decision: Decision,
    now: OffsetDateTime,
) -> Result<(Pending, Challenge), Error> {
    let ip = context.ip;
    // Signals are looked for only where they are scored (nor counted in statistics elsewhere).
    let mut signals = if site.scores() {
        detection::at_create(request, &context.headers)
    } else {
        Signals::default()
    };
    // Pending challenges count like solves, so that creating many first and solving them
    // later does not keep the base difficulty.
    let pending = state.limits.pending(ip, now);
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
    if site.scores() {
        signals |= seen_by_the_server(state, site, request, context, solved, now).await?;
    }
    // A visitor the site's rules let through is not suspected of anything.
    let suspicion = match decision.access {
        Some(access::AccessRule::Allowed) => 0,
        _ => site.suspicion.extra_bits(signals.score()),
    };
    let extra =
        adaptive::extra_bits(solved, pending, &site.adaptive_difficulty).saturating_add(suspicion);
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
    let pending = Pending {
        site_key: site.site_key,
        tasks: pow_tasks,
        difficulty,
        created_at: now,
        expires_at: now + site.challenge_lifetime,
        visitor,
        signals,
        access_rule: decision.access,
        // Compared at the submission only where the site is scored.
        request: if site.scores() {
            detection::request_fingerprint(&context.headers, context.tls.as_ref())
        } else {
            0
        },
    };
    let challenge = Challenge {
        verification_id: new_id(now),
        difficulty,
        tasks,
    };
    Ok((pending, challenge))
}

/// The signals of a create request that the server sees for itself, beside the page's account
/// (`detection::at_create`): the client network's solves, its kind, its TLS library, and the
/// page's device set-up across networks.
async fn seen_by_the_server(
    state: &AppState,
    site: &Site,
    request: &CreateRequest,
    context: &RequestContext,
    solved: u64,
    now: OffsetDateTime,
) -> Result<Signals, crate::store::StoreError> {
    let ip = context.ip;
    let tls_unlike = context.tls.as_ref().is_some_and(|ja4| {
        detection::tls_unlike_browser(
            ja4,
            context.user_agent.as_deref(),
            &state.settings.browser_tls_ciphers,
        )
    });
    let mut signals = Signals::empty();
    signals.set(
        Signals::VELOCITY,
        detection::busy_network(solved, &site.adaptive_difficulty),
    );
    signals.set(
        Signals::HOSTING,
        ip.is_some_and(|ip| state.hosting.is_hosting(ip)),
    );
    signals.set(Signals::TLS, tls_unlike);
    let repeated = match (detection::device_fingerprint(request), ip) {
        (Some(device), Some(ip)) if site.repetition.networks > 0 => {
            state
                .repetitions
                .note(site.site_key, &site.repetition, device, ip, now)
        }
        _ => false,
    };
    signals.set(Signals::REPEATED, repeated);
    Ok(signals)
}

/// Records the challenge as pending for the client's network and stores it as pending.
async fn hand_out(
    state: &AppState,
    site: &Site,
    ip: Option<IpAddr>,
    pending: Pending,
    challenge: Challenge,
    now: OffsetDateTime,
) -> Result<Created, Error> {
    state
        .limits
        .hand_out(ip, site.site_key, now, pending.expires_at)?;
    if let Err(error) = state
        .store
        .insert_pending(challenge.verification_id, pending, now)
        .await
    {
        state.limits.settle(ip, site.site_key);
        return Err(error.into());
    }
    events::record(state, Some(&site.name), Event::Created);
    Ok(Created::Challenge(ChallengeBody {
        challenge,
        finished: None,
    }))
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
) -> Result<(), Error> {
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
        return Err(Refusal::QuotaExhausted.into());
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
            return Err(Refusal::QuotaExhausted.into());
        }
    }
    Ok(())
}

/// What the result will say about the visitor. The page is identified by its URL without
/// query or fragment, falling back to the origin.
fn visitor(state: &AppState, context: &RequestContext, request: &CreateRequest) -> Visitor {
    let header_origin = context.origin.as_deref();
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
