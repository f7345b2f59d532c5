//! The widget's two endpoints (widget protocol §1.3–§1.5):
//!
//! * `POST /v2/verifications`: checks the site, origin, mode, lock and quota, then either finishes at once
//!   (bypass key, 201) or hands out a proof-of-work challenge (200);
//! * `POST /v2/verifications/{id}/challenges`: verifies the solution once (201 with the token,
//!   409 when wrong, 404 when unknown, expired or already submitted).

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use trustcaptcha::{DecisionAction, DecisionType, VerificationResult, VerificationToken};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ClientIp, JsonBody, VerificationId};
use super::observe_store;
use crate::config::Site;
use crate::integrity::BrowserInformation;
use crate::pow::{self, Answer};
use crate::rules::{access_rule, origin_allowed};
use crate::scoring::{self, HoneypotField, Signals, Verdict};
use crate::secret::KeyHash;
use crate::state::AppState;
use crate::store::{ClientInfo, Finished, Pending};

/// The create request's body. Only what the server uses is read; everything is optional but
/// the site key, so that future widget fields cannot break verification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    site_key: String,
    #[serde(default)]
    widget: WidgetInfo,
    #[serde(default)]
    browser_information: BrowserInformation,
    #[serde(default)]
    honeypot_fields: Vec<HoneypotField>,
    #[serde(default)]
    user_events: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    integrity_hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WidgetInfo {
    #[serde(default, with = "time::serde::rfc3339::option")]
    box_creation_timestamp: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    start_solving_timestamp: Option<OffsetDateTime>,
    #[serde(default)]
    minimal_data_mode: bool,
    #[serde(default)]
    bypass_token: Option<String>,
}

/// The challenge submission's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    #[serde(default, with = "time::serde::rfc3339::option")]
    start_solving_timestamp: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    solved_timestamp: Option<OffsetDateTime>,
    tasks: Vec<Answer>,
    #[serde(default)]
    honeypot_fields: Vec<HoneypotField>,
    #[serde(default)]
    user_events: Vec<serde::de::IgnoredAny>,
}

/// The 200 body: a challenge (`finished` is explicitly null, as the widget's DTO allows).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The challenge to solve.
    pub challenge: Challenge,
    /// Always `null` on a 200.
    pub finished: Option<FinishedResponse>,
}

/// A proof-of-work challenge.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Where to submit the solution.
    pub verification_id: Uuid,
    /// Required leading zero bits.
    pub difficulty: u8,
    /// The tasks, numbered from 0.
    pub tasks: Vec<Task>,
}

/// One task of a challenge.
#[derive(Debug, Serialize, Deserialize)]
pub struct Task {
    /// Echoed back in the answer.
    pub number: u32,
    /// Standard base64 of the random input.
    pub input: String,
}

/// The 201 body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Finish {
    /// The token and its lifetime.
    pub finished: FinishedResponse,
}

/// What a solved verification hands the widget.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishedResponse {
    /// Padded standard base64 of `{"verificationId", "expiresAt"}`.
    pub verification_token: String,
    /// The result's lifetime in milliseconds.
    pub expires_in_ms: u64,
}

/// `POST /v2/verifications`.
pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let site = Uuid::parse_str(request.site_key.trim())
        .ok()
        .and_then(|key| state.sites.get(&key))
        .ok_or_else(|| ApiError::not_found("no captcha for this site key"))?
        .clone();

    let header_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| *origin != "null");
    let page_origin = string_field(&request.browser_information, "window-origin");
    if !origin_allowed(
        &site.allowed_origins,
        header_origin.or(page_origin.as_deref()),
    ) {
        return Err(ApiError::forbidden(
            "the captcha is not accessible from this origin",
        ));
    }
    if request.widget.minimal_data_mode != site.minimal_data_mode {
        return Err(ApiError::mode_mismatch());
    }
    if site.locked {
        return Err(ApiError::site_locked());
    }
    if site
        .hourly_quota
        .is_some_and(|limit| !state.quota.take(site.site_key, now, limit))
    {
        return Err(ApiError::quota_exhausted());
    }

    let client = client_info(
        &state,
        ip,
        &headers,
        &request.browser_information,
        header_origin,
    );
    let bypass = request
        .widget
        .bypass_token
        .as_deref()
        .filter(|token| !token.trim().is_empty())
        .is_some_and(|token| KeyHash::of(token).is_among(&site.bypass_keys));
    if bypass {
        let verdict = Verdict {
            passed: true,
            score: 0.0,
            decision_type: DecisionType::BypassKey,
            decision_action: DecisionAction::Allow,
        };
        let id = Uuid::new_v4();
        let response = finish(&state, &site, id, &client, (now, now), verdict)?;
        state.metrics.solved("bypass_key");
        return Ok((StatusCode::CREATED, Json(Finish { finished: response })).into_response());
    }

    let signals = Signals {
        honeypot: scoring::honeypot_touched(&request.honeypot_fields),
        integrity: scoring::integrity_broken(
            &request.browser_information,
            request.integrity_hash.as_deref(),
        ),
        automation: scoring::automation_flagged(&request.browser_information),
        timing: scoring::create_timing_implausible(
            request.widget.box_creation_timestamp,
            request.widget.start_solving_timestamp,
        ),
        no_events: !site.minimal_data_mode && request.user_events.is_empty(),
    };
    let extra = state.solves.extra_bits(ip, now, &site.adaptive);
    let difficulty = site.difficulty.saturating_add(extra).min(32);
    let inputs = pow::generate(site.tasks);
    let tasks = inputs
        .iter()
        .zip(0u32..)
        .map(|(input, number)| Task {
            number,
            input: pow::encode_input(input),
        })
        .collect();
    let id = Uuid::new_v4();
    let pending = Pending {
        site_key: site.site_key,
        inputs,
        difficulty,
        created_at: now,
        expires_at: now + site.challenge_lifetime,
        client,
        signals,
        access_rule: access_rule(&site.allow_ips, &site.block_ips, ip),
    };
    observe_store(&state, now, state.store.insert_pending(id, pending, now))?;
    state.metrics.created();
    let body = ChallengeResponse {
        challenge: Challenge {
            verification_id: id,
            difficulty,
            tasks,
        },
        finished: None,
    };
    Ok(Json(body).into_response())
}

/// `POST /v2/verifications/{id}/challenges`.
pub async fn submit(
    State(state): State<AppState>,
    VerificationId(id): VerificationId,
    JsonBody(request): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let pending = observe_store(&state, now, state.store.claim_pending(id, now))?
        .ok_or_else(|| ApiError::not_found("no open challenge with this id"))?;
    let site = state
        .sites
        .get(&pending.site_key)
        .ok_or_else(|| ApiError::not_found("no captcha for this challenge"))?
        .clone();

    if let Err(error) = pow::verify(&pending.inputs, pending.difficulty, &request.tasks) {
        observe_store(&state, now, state.store.discard(id))?;
        state.metrics.failed(error.label());
        return Err(ApiError::conflict(error.to_string()));
    }

    let signals = Signals {
        honeypot: pending.signals.honeypot || scoring::honeypot_touched(&request.honeypot_fields),
        timing: pending.signals.timing
            || scoring::submit_timing_implausible(
                request.start_solving_timestamp,
                request.solved_timestamp,
                now - pending.created_at,
            ),
        no_events: pending.signals.no_events && request.user_events.is_empty(),
        ..pending.signals
    };
    let verdict = scoring::verdict(&site, pending.access_rule, &signals);
    let response = finish(
        &state,
        &site,
        id,
        &pending.client,
        (pending.created_at, now),
        verdict,
    )?;
    if let Some(ip) = pending.client.ip {
        state.solves.record(ip, now, site.adaptive.window);
    }
    state.metrics.solved("proof_of_work");
    Ok((StatusCode::CREATED, Json(Finish { finished: response })).into_response())
}

/// Stores the finished result and builds the widget's answer; `(started_at, now)` are when the
/// verification started and when it finished.
fn finish(
    state: &AppState,
    site: &Site,
    id: Uuid,
    client: &ClientInfo,
    (started_at, now): (OffsetDateTime, OffsetDateTime),
    verdict: Verdict,
) -> Result<FinishedResponse, ApiError> {
    let expires_at = now + site.result_lifetime;
    let result = VerificationResult {
        captcha_id: site.captcha_id,
        verification_id: id,
        verification_passed: verdict.passed,
        score: verdict.score,
        decision_type: verdict.decision_type,
        decision_action: verdict.decision_action,
        gateway_failover_active: false,
        risk_scoring_enabled: site.risk_scoring,
        minimal_data_mode_enabled: site.minimal_data_mode,
        origin: client.origin.clone(),
        ip_address: client.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        country_code: client.country_code.clone(),
        device_family: client.device_family.clone(),
        operating_system: client.operating_system.clone(),
        browser: client.browser.clone(),
        verification_started_at: Some(started_at),
        verification_finished_at: Some(now),
        result_expires_at: Some(expires_at),
        result_first_fetched_at: None,
        result_last_fetched_at: None,
    };
    let finished = Finished {
        result,
        site_key: site.site_key,
        max_retrievals: site.max_retrievals,
    };
    observe_store(state, now, state.store.finish(id, finished, now))?;
    Ok(FinishedResponse {
        verification_token: VerificationToken::new(id, expires_at).encode(),
        expires_in_ms: millis(site.result_lifetime),
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What the result will say about the client. The page is identified by its URL without query
/// or fragment (seed 004 shows a page URL), falling back to the origin.
fn client_info(
    state: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    info: &BrowserInformation,
    header_origin: Option<&str>,
) -> ClientInfo {
    let page = string_field(info, "window-location-href")
        .map(|href| href.split(['?', '#']).next().unwrap_or_default().to_owned())
        .or_else(|| header_origin.map(str::to_owned))
        .or_else(|| string_field(info, "window-origin"))
        .unwrap_or_default();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| string_field(info, "window-navigator-userAgent"))
        .unwrap_or_default();
    let device = state.inspector.device(&user_agent);
    let known_ip = !ip.is_unspecified();
    ClientInfo {
        ip: known_ip.then_some(ip),
        origin: page,
        country_code: if known_ip {
            state.inspector.country_code(ip)
        } else {
            String::new()
        },
        device_family: device.family,
        operating_system: device.operating_system,
        browser: device.browser,
    }
}

fn string_field(info: &BrowserInformation, key: &str) -> Option<String> {
    info.get(key)
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .filter(|s| !s.is_empty())
}
