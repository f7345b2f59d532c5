//! The bot score: an honest, documented heuristic over what the widget sends.
//!
//! Each rule that fires adds its weight; the score is the sum, capped at 1. It is computed only
//! for sites with risk scoring on and never in minimal-data mode, where it is 0 (the widget then
//! sends no behavioural data, and the hosted service also answers 0).
//!
//! | rule | weight | fires when |
//! |---|---|---|
//! | honeypot | 0.6 | a hidden honeypot input has a value or saw focus/input/change (people never see them) |
//! | integrity | 0.4 | `integrityHash` is missing or does not match `browserInformation` (the data was not produced by the widget's code, or was altered) |
//! | automation | 0.3 | `dom-automationNote` or `window-navigator-webdriver` is `true` |
//! | timing | 0.2 | timestamps are impossible: start before box creation, solving claimed to end before it began or to take longer than the server observed, or solving started within 100 ms of the box appearing |
//! | no events | 0.3 | standard mode, and neither request carried a single user event (a person moves, clicks, types or scrolls) |
//!
//! With the default threshold 0.5, a filled honeypot alone blocks, and automation alone does
//! not; automation plus no events does.

use std::time::Duration;

use time::OffsetDateTime;

use trustcaptcha::{DecisionAction, DecisionType};

use crate::access::AccessRule;
use crate::config::Site;
use crate::integrity::{BrowserInformation, integrity_hash};
use crate::protocol::HoneypotField;

/// Weight of a filled or touched honeypot.
pub(crate) const HONEYPOT_WEIGHT: f64 = 0.6;
/// Weight of a missing or mismatching integrity hash.
pub(crate) const INTEGRITY_WEIGHT: f64 = 0.4;
/// Weight of the browser's own automation flags.
pub(crate) const AUTOMATION_WEIGHT: f64 = 0.3;
/// Weight of impossible timestamps.
pub(crate) const TIMING_WEIGHT: f64 = 0.2;
/// Weight of no user events at all in standard mode.
pub(crate) const NO_EVENTS_WEIGHT: f64 = 0.3;

/// Faster than this from the box appearing to solving is not a person.
const MIN_HUMAN_START: Duration = Duration::from_millis(100);
/// Allowance for clock resolution and network time between the widget and the server.
const TIMING_SLACK: Duration = Duration::from_secs(5);

/// The rules that fired for one verification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signals {
    /// A honeypot was filled or touched.
    pub honeypot: bool,
    /// The integrity hash is missing or wrong.
    pub integrity: bool,
    /// The browser flags itself as automated.
    pub automation: bool,
    /// The timestamps are impossible.
    pub timing: bool,
    /// Standard mode without any user event (so far).
    pub no_events: bool,
}

impl Signals {
    /// The score for these signals, in `[0, 1]`, rounded to two decimals.
    #[must_use]
    pub fn score(&self) -> f64 {
        let sum: f64 = [
            (self.honeypot, HONEYPOT_WEIGHT),
            (self.integrity, INTEGRITY_WEIGHT),
            (self.automation, AUTOMATION_WEIGHT),
            (self.timing, TIMING_WEIGHT),
            (self.no_events, NO_EVENTS_WEIGHT),
        ]
        .iter()
        .filter(|(fired, _)| *fired)
        .map(|(_, weight)| weight)
        // Rust's float sum of nothing is -0.0, which would serialise as `"score": -0.0`.
        .fold(0.0, |sum, weight| sum + weight);
        (sum.min(1.0) * 100.0).round() / 100.0
    }
}

/// How a solved verification is judged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// `verificationPassed`.
    pub passed: bool,
    /// `score`.
    pub score: f64,
    /// `decisionType`.
    pub decision_type: DecisionType,
    /// `decisionAction`.
    pub decision_action: DecisionAction,
}

/// Judges a verification whose proof-of-work was solved.
///
/// An access rule decides alone (allowed → passed with score 0, blocked → failed with score
/// 1; decision type `CUSTOM_ACCESS_RULE` for the site's rules, `GLOBAL_IP_ACCESS_RULE` for the
/// reputation lists). Otherwise the score is the signals'
/// (0 without risk scoring or in minimal-data mode) and the action is `BLOCK` above the site's
/// threshold.
#[must_use]
pub(crate) fn verdict(site: &Site, access_rule: Option<AccessRule>, signals: &Signals) -> Verdict {
    let blocked = |decision_type| Verdict {
        passed: false,
        score: 1.0,
        decision_type,
        decision_action: DecisionAction::Block,
    };
    match access_rule {
        Some(AccessRule::Blocked) => blocked(DecisionType::CustomAccessRule),
        Some(AccessRule::GloballyBlocked) => blocked(DecisionType::GlobalIpAccessRule),
        Some(AccessRule::Allowed) => Verdict {
            passed: true,
            score: 0.0,
            decision_type: DecisionType::CustomAccessRule,
            decision_action: DecisionAction::Allow,
        },
        None => {
            let score = if site.risk_scoring && !site.minimal_data_mode {
                signals.score()
            } else {
                0.0
            };
            Verdict {
                passed: true,
                score,
                decision_type: DecisionType::Standard,
                decision_action: if score > site.score_threshold {
                    DecisionAction::Block
                } else {
                    DecisionAction::Allow
                },
            }
        }
    }
}

/// Whether any honeypot was filled or touched.
#[must_use]
pub(crate) fn honeypot_touched(fields: &[HoneypotField]) -> bool {
    fields.iter().any(|f| {
        f.value.as_deref().is_some_and(|v| !v.is_empty()) || f.first_interaction_event.is_some()
    })
}

/// Whether `claimed` is missing or differs from the hash of `info`.
#[must_use]
pub(crate) fn integrity_broken(info: &BrowserInformation, claimed: Option<&str>) -> bool {
    match (claimed, integrity_hash(info)) {
        (Some(claimed), Some(actual)) => !claimed.eq_ignore_ascii_case(&actual),
        _ => true,
    }
}

/// Whether the browser's automation probes said `true`.
#[must_use]
pub(crate) fn automation_flagged(info: &BrowserInformation) -> bool {
    ["dom-automationNote", "window-navigator-webdriver"]
        .iter()
        .any(|key| info.get(*key).is_some_and(|v| v.get() == "true"))
}

/// Whether the create request's timestamps are impossible for a person.
#[must_use]
pub(crate) fn create_timing_implausible(
    box_created: Option<OffsetDateTime>,
    start_solving: Option<OffsetDateTime>,
) -> bool {
    match (box_created, start_solving) {
        (Some(created), Some(start)) => start < created || start - created < MIN_HUMAN_START,
        _ => true,
    }
}

/// Whether a submission's claimed solving time is impossible given what the server observed
/// between handing out the challenge and receiving the answer.
#[must_use]
pub(crate) fn submit_timing_implausible(
    start_solving: Option<OffsetDateTime>,
    solved: Option<OffsetDateTime>,
    observed: time::Duration,
) -> bool {
    match (start_solving, solved) {
        (Some(start), Some(solved)) => solved < start || solved - start > observed + TIMING_SLACK,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn info(json: &str) -> BrowserInformation {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn weights_add_up_and_cap_at_one() {
        assert_eq!(Signals::default().score(), 0.0);
        let automation = Signals {
            automation: true,
            ..Signals::default()
        };
        assert_eq!(automation.score(), 0.3);
        let automation_no_events = Signals {
            no_events: true,
            ..automation
        };
        assert_eq!(automation_no_events.score(), 0.6);
        let honeypot = Signals {
            honeypot: true,
            ..Signals::default()
        };
        assert_eq!(honeypot.score(), 0.6);
        let all = Signals {
            honeypot: true,
            integrity: true,
            automation: true,
            timing: true,
            no_events: true,
        };
        assert_eq!(all.score(), 1.0);
        let integrity_timing = Signals {
            integrity: true,
            timing: true,
            ..Signals::default()
        };
        assert_eq!(integrity_timing.score(), 0.6);
    }

    #[test]
    fn verdict_follows_access_rules_then_score() {
        let site = Site::new("s", uuid::Uuid::nil());
        let bot = Signals {
            honeypot: true,
            ..Signals::default()
        };
        let blocked = verdict(&site, Some(AccessRule::Blocked), &Signals::default());
        assert_eq!((blocked.passed, blocked.score), (false, 1.0));
        assert_eq!(blocked.decision_type, DecisionType::CustomAccessRule);
        let allowed = verdict(&site, Some(AccessRule::Allowed), &bot);
        assert_eq!((allowed.passed, allowed.score), (true, 0.0));
        let scored = verdict(&site, None, &bot);
        assert_eq!((scored.passed, scored.score), (true, 0.6));
        assert_eq!(scored.decision_action, DecisionAction::Block);
        let human = verdict(
            &site,
            None,
            &Signals {
                automation: true,
                ..Signals::default()
            },
        );
        assert_eq!(human.decision_action, DecisionAction::Allow);
        let minimal = Site {
            minimal_data_mode: true,
            ..site.clone()
        };
        assert_eq!(verdict(&minimal, None, &bot).score, 0.0);
        let unscored = Site {
            risk_scoring: false,
            ..site
        };
        assert_eq!(verdict(&unscored, None, &bot).score, 0.0);
    }

    #[test]
    fn honeypot_rule() {
        assert!(!honeypot_touched(&HoneypotField::untouched()));
        let clean = HoneypotField::untouched().remove(0);
        let filled = HoneypotField {
            value: Some("bot@example.com".into()),
            ..clean.clone()
        };
        assert!(honeypot_touched(&[clean.clone(), filled]));
        let focused = HoneypotField {
            first_interaction_event: Some("focus".into()),
            ..clean
        };
        assert!(honeypot_touched(&[focused]));
    }

    #[test]
    fn integrity_rule() {
        let data = info(r#"{"a": 1, "b": "x"}"#);
        let good = integrity_hash(&data).expect("shallow");
        assert!(!integrity_broken(&data, Some(&good)));
        assert!(!integrity_broken(&data, Some(&good.to_uppercase())));
        assert!(integrity_broken(&data, None));
        let altered = info(r#"{"a": 2, "b": "x"}"#);
        assert!(integrity_broken(&altered, Some(&good)));
        let deep = info(r#"{"a": [[[[[1]]]]]}"#);
        assert!(integrity_broken(&deep, Some(&good)), "too deep to hash");
    }

    #[test]
    fn automation_rule() {
        assert!(automation_flagged(&info(r#"{"dom-automationNote": true}"#)));
        assert!(automation_flagged(&info(
            r#"{"window-navigator-webdriver": true}"#
        )));
        assert!(!automation_flagged(&info(
            r#"{"dom-automationNote": false, "window-navigator-webdriver": null}"#
        )));
        assert!(!automation_flagged(&info("{}")));
    }

    #[test]
    fn timing_rules() {
        let t = datetime!(2026-01-01 12:00:00 UTC);
        let ms = |n: i64| time::Duration::milliseconds(n);
        assert!(!create_timing_implausible(Some(t), Some(t + ms(2500))));
        assert!(create_timing_implausible(Some(t), Some(t + ms(20))));
        assert!(create_timing_implausible(Some(t + ms(1)), Some(t)));
        assert!(create_timing_implausible(None, Some(t)));

        assert!(!submit_timing_implausible(
            Some(t),
            Some(t + ms(800)),
            ms(900)
        ));
        assert!(submit_timing_implausible(
            Some(t + ms(800)),
            Some(t),
            ms(900)
        ));
        assert!(submit_timing_implausible(
            Some(t),
            Some(t + ms(60_000)),
            ms(900)
        ));
        assert!(submit_timing_implausible(Some(t), None, ms(900)));
    }
}
