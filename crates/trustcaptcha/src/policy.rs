//! The decisions the guide's readers write by hand, as small tested values.
//!
//! * [`DecisionPolicy`]: the recommended check (`verification_passed && score <= 0.5`) with your
//!   own threshold, optionally with the results API's middle band that asks for an extra check.
//! * [`FailoverPolicy`]: what to do when the result cannot be fetched because of an outage, for
//!   the high-trust ([`ServerUnreachableError`](crate::errors::ServerUnreachableError)) and the
//!   low-trust ([`ClientReportedServerUnreachableError`](crate::errors::ClientReportedServerUnreachableError))
//!   case.
//! * [`Policy`] combines both into one verdict for any outcome of a fetch.
//!
//! ```
//! use trustcaptcha::policy::{Decision, DecisionPolicy, FailoverPolicy, Policy};
//!
//! let policy = Policy::new(
//!     DecisionPolicy::new(0.8).challenge_above(0.4),
//!     FailoverPolicy::default(),
//! );
//! # let outcome: Result<trustcaptcha::VerificationResult, trustcaptcha::Error> =
//! #     Err(trustcaptcha::VerificationToken::decode("").unwrap_err());
//! match policy.decide(&outcome) {
//!     Decision::Allow => { /* proceed */ }
//!     Decision::Challenge => { /* e.g. ask for an e-mail confirmation */ }
//!     Decision::Reject => { /* refuse the request */ }
//! }
//! ```

use crate::errors::{Error, ErrorKind};
use crate::model::VerificationResult;

/// What to do with the request a verification token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Proceed.
    Allow,
    /// Proceed only after an additional check (two-factor, e-mail confirmation, …).
    Challenge,
    /// Refuse.
    Reject,
}

/// Turns a [`VerificationResult`] into a [`Decision`].
///
/// A result that did not pass is always rejected. Otherwise the bot score decides: above
/// `max_score` rejects, above the optional challenge bound challenges, anything else allows.
/// Bounds are exclusive (`score > bound`), as in the guide's `result.score > 0.5`.
///
/// Scores are compared after clamping the bounds to `[0, 1]`; a NaN bound counts as 0, the
/// strictest choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionPolicy {
    max_score: f64,
    challenge_above: Option<f64>,
    reject_failover_results: bool,
}

impl DecisionPolicy {
    /// The threshold the guide recommends as a starting point.
    pub const RECOMMENDED_MAX_SCORE: f64 = 0.5;

    /// Allows passed results whose score is at most `max_score`.
    #[must_use]
    pub fn new(max_score: f64) -> Self {
        DecisionPolicy {
            max_score: unit(max_score),
            challenge_above: None,
            reject_failover_results: false,
        }
    }

    /// Challenges passed results whose score is above `bound` but not above the maximum.
    #[must_use]
    pub fn challenge_above(mut self, bound: f64) -> Self {
        self.challenge_above = Some(unit(bound));
        self
    }

    /// Rejects results that a gateway synthesized during an outage
    /// ([`VerificationResult::is_failover`]), for flows where security outweighs availability.
    /// Default: such results are judged like any other.
    #[must_use]
    pub fn reject_failover_results(mut self, reject: bool) -> Self {
        self.reject_failover_results = reject;
        self
    }

    /// The decision for `result`.
    #[must_use]
    pub fn decide(&self, result: &VerificationResult) -> Decision {
        if !result.verification_passed
            || result.score.is_nan()
            || result.score > self.max_score
            || (self.reject_failover_results && result.is_failover())
        {
            Decision::Reject
        } else if self
            .challenge_above
            .is_some_and(|bound| result.score > bound)
        {
            Decision::Challenge
        } else {
            Decision::Allow
        }
    }

    /// Whether `result` is allowed outright.
    #[must_use]
    pub fn allows(&self, result: &VerificationResult) -> bool {
        self.decide(result) == Decision::Allow
    }
}

impl Default for DecisionPolicy {
    /// [`DecisionPolicy::RECOMMENDED_MAX_SCORE`], no challenge band.
    fn default() -> Self {
        DecisionPolicy::new(Self::RECOMMENDED_MAX_SCORE)
    }
}

fn unit(bound: f64) -> f64 {
    if bound.is_nan() {
        0.0
    } else {
        bound.clamp(0.0, 1.0)
    }
}

/// What to do when the result could not be fetched because of an outage.
///
/// The default follows the guide's examples: allow (and log) when your backend cannot reach the
/// server, reject when only the widget claims it could not. One guard against failing open: an
/// unreachable server is only treated as an outage once the API has answered this client at
/// least once (a verification, or [`TrustCaptcha::probe`](crate::TrustCaptcha::probe) at
/// start-up); before that it is more likely a wrong host or a firewall, and the request is
/// rejected. [`FailoverPolicy::allow_before_first_answer`] turns that guard off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverPolicy {
    on_server_unreachable: Decision,
    on_client_reported: Decision,
    before_first_answer: bool,
}

impl FailoverPolicy {
    /// Rejects in both failover cases: no request passes without a verified result.
    #[must_use]
    pub fn strict() -> Self {
        FailoverPolicy {
            on_server_unreachable: Decision::Reject,
            on_client_reported: Decision::Reject,
            before_first_answer: false,
        }
    }

    /// Whether `on_server_unreachable` applies even before the API has ever answered this
    /// client. Default: `false` (such failures are rejected).
    #[must_use]
    pub fn allow_before_first_answer(mut self, allow: bool) -> Self {
        self.before_first_answer = allow;
        self
    }

    /// The decision when the server cannot be reached from this backend.
    #[must_use]
    pub fn on_server_unreachable(mut self, decision: Decision) -> Self {
        self.on_server_unreachable = decision;
        self
    }

    /// The decision when the widget claimed a failover the server has no record of.
    #[must_use]
    pub fn on_client_reported_server_unreachable(mut self, decision: Decision) -> Self {
        self.on_client_reported = decision;
        self
    }

    /// The decision for `error` if it is a failover error, `None` for any other error.
    #[must_use]
    pub fn decide(&self, error: &Error) -> Option<Decision> {
        match error.kind() {
            ErrorKind::ServerUnreachable => {
                let proven = error
                    .downcast_ref::<crate::errors::ServerUnreachableError>()
                    .is_some_and(crate::errors::ServerUnreachableError::api_answered_before);
                Some(if proven || self.before_first_answer {
                    self.on_server_unreachable
                } else {
                    Decision::Reject
                })
            }
            ErrorKind::ClientReportedServerUnreachable => Some(self.on_client_reported),
            _ => None,
        }
    }
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        FailoverPolicy {
            on_server_unreachable: Decision::Allow,
            on_client_reported: Decision::Reject,
            before_first_answer: false,
        }
    }
}

/// A [`DecisionPolicy`] and a [`FailoverPolicy`]: one verdict for every outcome of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Policy {
    /// Judges fetched results.
    pub decision: DecisionPolicy,
    /// Judges failover errors.
    pub failover: FailoverPolicy,
}

impl Policy {
    /// Combines the two policies.
    #[must_use]
    pub fn new(decision: DecisionPolicy, failover: FailoverPolicy) -> Self {
        Policy { decision, failover }
    }

    /// The verdict for `outcome`. Errors other than the two failover errors reject: without a
    /// result there is nothing that proves a human.
    #[must_use]
    pub fn decide(&self, outcome: &Result<VerificationResult, Error>) -> Decision {
        match outcome {
            Ok(result) => self.decision.decide(result),
            Err(error) => self.failover.decide(error).unwrap_or(Decision::Reject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DecisionType;
    use reqwest::StatusCode;

    fn result(passed: bool, score: f64) -> VerificationResult {
        serde_json::from_value(serde_json::json!({
            "captchaId": "cc2e2d5e-d1ef-4a7f-a7bd-dec5b37df47a",
            "verificationId": "07b01922-3faa-4667-a4a6-910a76cb8ab7",
            "verificationPassed": passed,
            "score": score,
        }))
        .expect("valid result")
    }

    #[test]
    fn recommended_check_matches_the_guide() {
        let policy = DecisionPolicy::default();
        assert!(policy.allows(&result(true, 0.0)));
        assert!(policy.allows(&result(true, 0.5)));
        assert_eq!(policy.decide(&result(true, 0.51)), Decision::Reject);
        assert_eq!(policy.decide(&result(false, 0.0)), Decision::Reject);
    }

    #[test]
    fn multi_level_decision_has_three_bands() {
        let policy = DecisionPolicy::new(0.8).challenge_above(0.4);
        assert_eq!(policy.decide(&result(true, 0.1)), Decision::Allow);
        assert_eq!(policy.decide(&result(true, 0.4)), Decision::Allow);
        assert_eq!(policy.decide(&result(true, 0.6)), Decision::Challenge);
        assert_eq!(policy.decide(&result(true, 0.9)), Decision::Reject);
        assert_eq!(policy.decide(&result(false, 0.1)), Decision::Reject);
    }

    #[test]
    fn odd_bounds_are_clamped_towards_safety() {
        assert_eq!(
            DecisionPolicy::new(f64::NAN).decide(&result(true, 0.01)),
            Decision::Reject
        );
        assert!(DecisionPolicy::new(f64::NAN).allows(&result(true, 0.0)));
        assert!(DecisionPolicy::new(7.0).allows(&result(true, 1.0)));
        assert!(!DecisionPolicy::new(-1.0).allows(&result(true, 0.1)));
    }

    #[test]
    fn failover_results_can_be_rejected() {
        let mut failover = result(true, 0.0);
        failover.decision_type = DecisionType::Failover;
        assert!(DecisionPolicy::default().allows(&failover));
        let strict = DecisionPolicy::default().reject_failover_results(true);
        assert_eq!(strict.decide(&failover), Decision::Reject);
        assert!(strict.allows(&result(true, 0.0)));
    }

    #[test]
    fn failover_policy_distinguishes_the_two_cases() {
        let client_reported = Error::from_status(StatusCode::PRECONDITION_FAILED, b"");
        let not_found = Error::from_status(StatusCode::NOT_FOUND, b"");
        let default = FailoverPolicy::default();
        assert_eq!(default.decide(&client_reported), Some(Decision::Reject));
        assert_eq!(default.decide(&not_found), None);
        let lenient = default.on_client_reported_server_unreachable(Decision::Challenge);
        assert_eq!(lenient.decide(&client_reported), Some(Decision::Challenge));

        let policy = Policy::new(DecisionPolicy::default(), lenient);
        assert_eq!(policy.decide(&Err(client_reported)), Decision::Challenge);
        assert_eq!(policy.decide(&Err(not_found)), Decision::Reject);
        assert_eq!(policy.decide(&Ok(result(true, 0.2))), Decision::Allow);
    }
}
