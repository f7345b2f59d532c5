//! The widget protocol's request and response bodies (see `docs/protocol.md`), shared by the
//! HTTP handlers, the `solve` command, the tests and the benchmarks.
//!
//! Requests are read leniently: everything but the site key and the answers is optional and
//! unknown fields are ignored, so that a newer widget cannot break verification.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::integrity::BrowserInformation;

/// `POST /v2/verifications`: the widget starts a verification.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    /// The site key (the widget's `sitekey` attribute).
    pub site_key: String,
    /// What the widget says about itself.
    #[serde(default)]
    pub widget: WidgetInfo,
    /// Facts the page collected about the browser, covered by `integrity_hash`.
    #[serde(default)]
    pub browser_information: BrowserInformation,
    /// The three hidden honeypot inputs.
    #[serde(default)]
    pub honeypot_fields: Vec<HoneypotField>,
    /// Input events recorded since the box appeared (empty in minimal-data mode).
    #[serde(default)]
    pub user_events: Vec<UserEvent>,
    /// The hash of `browser_information` (see [`crate::integrity`]).
    #[serde(default)]
    pub integrity_hash: Option<String>,
    /// The page's device fingerprints (hashes of what the browser renders and reports).
    #[serde(default)]
    pub fingerprints: Fingerprints,
}

/// The `fingerprints` object of a create request: six SHA-256 hashes the page computes of
/// what the device renders and reports (audio, canvas, WebGL, fonts, navigator, screen).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Fingerprints {
    /// The audio stack's output.
    pub audio: Option<String>,
    /// A drawn canvas.
    pub canvas: Option<String>,
    /// The WebGL renderer.
    pub webgl: Option<String>,
    /// The installed fonts.
    pub fonts: Option<String>,
    /// The navigator's properties.
    pub navigator: Option<String>,
    /// The screen's properties.
    pub screen: Option<String>,
}

/// The `widget` object of a create request.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetInfo {
    /// When the captcha box appeared.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub box_creation_timestamp: Option<OffsetDateTime>,
    /// When the visitor started the verification.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_solving_timestamp: Option<OffsetDateTime>,
    /// Whether the widget runs in minimal-data mode (must match the site).
    #[serde(default)]
    pub minimal_data_mode: bool,
    /// A bypass key (the widget calls it a bypass token); empty when none.
    #[serde(default, rename = "bypassToken")]
    pub bypass_key: Option<String>,
}

/// One hidden honeypot input as the widget reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoneypotField {
    /// The input's position.
    #[serde(default)]
    pub index: u32,
    /// The input's current text.
    #[serde(default)]
    pub value: Option<String>,
    /// `focus`, `input` or `change`, if any happened.
    #[serde(default)]
    pub first_interaction_event: Option<String>,
}

impl HoneypotField {
    /// The three untouched honeypots a widget sends for a person who never saw them.
    #[must_use]
    pub fn untouched() -> Vec<HoneypotField> {
        (0..3)
            .map(|index| HoneypotField {
                index,
                value: Some(String::new()),
                first_interaction_event: None,
            })
            .collect()
    }
}

/// One recorded input event, kept as sent (its shape varies by event type).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserEvent(pub Box<RawValue>);

/// `POST /v2/verifications/{id}/challenges`: the widget submits its proof-of-work.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    /// When the widget started solving.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_solving_timestamp: Option<OffsetDateTime>,
    /// When the widget finished solving.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub solved_timestamp: Option<OffsetDateTime>,
    /// One answer per task.
    pub tasks: Vec<Answer>,
    /// A fresh snapshot of the honeypots.
    #[serde(default)]
    pub honeypot_fields: Vec<HoneypotField>,
    /// Input events since the create request.
    #[serde(default)]
    pub user_events: Vec<UserEvent>,
}

/// One answer of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The task's number, echoed from the challenge.
    pub number: u32,
    /// The nonce found for it.
    pub nonce: String,
}

/// The 200 answer to either request: a challenge to solve (`finished` is explicitly null, as
/// the widget expects).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeBody {
    /// The challenge.
    pub challenge: Challenge,
    /// Always `null`.
    pub finished: Option<Finished>,
}

/// A proof-of-work challenge.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Where to submit the answers.
    pub verification_id: Uuid,
    /// Required leading zero bits of each task's hash.
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

/// The 201 answer to either request: the verification is finished.
#[derive(Debug, Serialize, Deserialize)]
pub struct FinishedBody {
    /// The token and its lifetime.
    pub finished: Finished,
}

/// What a finished verification hands the widget.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    /// Padded standard base64 of `{"verificationId", "expiresAt"}`, for the site's backend.
    pub verification_token: String,
    /// The result's lifetime in milliseconds.
    pub expires_in_ms: u64,
}

/// `GET /verifications/{id}/assessments`: a result in the older API's shape, for backends on the
/// 2.x libraries. The same result as v2's, with `reason` derived from its decision (see
/// [`Assessment::reason_of`]) and other names for the times.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment<'a> {
    /// The site's captcha id.
    pub captcha_id: Uuid,
    /// The verification's id.
    pub verification_id: Uuid,
    /// Whether it passed.
    pub verification_passed: bool,
    /// The bot score, 0 to 1.
    pub score: f64,
    /// Why it passed or failed (`BYPASS_KEY`, `CUSTOM_ALLOW_LIST`, `CALCULATED`, …).
    pub reason: &'static str,
    /// `STANDARD` or `MINIMAL_DATA`.
    pub mode: &'static str,
    /// The page.
    pub origin: &'a str,
    /// The visitor's address; empty when unknown.
    pub ip_address: &'a str,
    /// From the User-Agent.
    pub device_family: &'a str,
    /// From the User-Agent.
    pub operating_system: &'a str,
    /// From the User-Agent.
    pub browser: &'a str,
    /// When the visitor started the verification.
    #[serde(with = "time::serde::rfc3339::option")]
    pub creation_timestamp: Option<OffsetDateTime>,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub release_timestamp: Option<OffsetDateTime>,
    /// When the backend retrieved it (now).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retrieval_timestamp: Option<OffsetDateTime>,
}

impl<'a> Assessment<'a> {
    /// `result` in the older shape, retrieved at `now`; `access_rule` is the rule that decided
    /// it, if one did (stored with the result).
    #[must_use]
    pub fn of(
        result: &'a trustcaptcha::VerificationResult,
        access_rule: Option<crate::access::AccessRule>,
        now: OffsetDateTime,
    ) -> Self {
        Assessment {
            captcha_id: result.captcha_id,
            verification_id: result.verification_id,
            verification_passed: result.verification_passed,
            score: result.score,
            reason: Self::reason_of(result, access_rule),
            mode: if result.minimal_data_mode_enabled {
                "MINIMAL_DATA"
            } else {
                "STANDARD"
            },
            origin: &result.origin,
            ip_address: &result.ip_address,
            device_family: &result.device_family,
            operating_system: &result.operating_system,
            browser: &result.browser,
            creation_timestamp: result.verification_started_at,
            release_timestamp: result.verification_finished_at,
            retrieval_timestamp: Some(now),
        }
    }

    /// The older API's `reason` for v2's `decisionType` and `decisionAction` (the table in
    /// `docs/protocol.md`), and the access rule that decided: a block by the site's country
    /// lists is `GEOBLOCKING` (v2 names it `CUSTOM_ACCESS_RULE`, as the IP lists and the
    /// proof-of-work rules, which are `CUSTOM_*_LIST` here).
    #[must_use]
    pub fn reason_of(
        result: &trustcaptcha::VerificationResult,
        access_rule: Option<crate::access::AccessRule>,
    ) -> &'static str {
        use trustcaptcha::{DecisionAction, DecisionType};
        match (&result.decision_type, &result.decision_action) {
            (DecisionType::BypassKey, _) => "BYPASS_KEY",
            (DecisionType::CustomAccessRule, DecisionAction::Block)
                if access_rule == Some(crate::access::AccessRule::CountryBlocked) =>
            {
                "GEOBLOCKING"
            }
            (DecisionType::CustomAccessRule, DecisionAction::Allow) => "CUSTOM_ALLOW_LIST",
            (DecisionType::CustomAccessRule, _) => "CUSTOM_BLOCK_LIST",
            (DecisionType::GlobalIpAccessRule, DecisionAction::Allow) => "GLOBAL_ALLOW_LIST",
            (DecisionType::GlobalIpAccessRule, _) => "GLOBAL_BLOCK_LIST",
            _ if !result.risk_scoring_enabled || result.minimal_data_mode_enabled => {
                "ONLY_PROOF_OF_WORK"
            }
            _ => "CALCULATED",
        }
    }
}
