//! The bot score: an honest, documented sum over the signals [`crate::detection`] finds.
//!
//! Each signal that fired adds its weight; the score is the sum, capped at 1. It is computed only
//! for sites with risk scoring on and never in minimal-data mode, where it is 0 (the widget then
//! sends no behavioural data, and the hosted service also answers 0).
//!
//! | signal | weight | fires when |
//! |---|---|---|
//! | `honeypot` | 0.6 | a hidden honeypot input has a value or saw focus/input/change (people never see them) |
//! | `headless` | 0.6 | the browser calls itself headless (`HeadlessChrome` in its User-Agent or client hints) |
//! | `automation` | 0.6 | `dom-automationNote` or `window-navigator-webdriver` is `true` (a browser reports it only while a program drives it) |
//! | `no_events` | 0.6 | standard mode, and neither request carried a single input event: a pointer, touch, key, wheel or clipboard event (a person moves, clicks, taps or types; keyboard-only and assistive-technology users press keys or click). `focus`, `blur`, `scroll`, `resize` and `visibilitychange` are not input: a script causes them as easily |
//! | `tls` | 0.6 | the client's TLS library is not the one of the browser its User-Agent names: the JA4 fingerprint (of the connection on the TLS listener, or a trusted proxy's header) offers no TLS 1.3, no HTTP/2, or cipher suites other than that browser family's (Chromium's, Firefox's, Safari's, and `browser_tls_ciphers`). Node, Python, Go, curl and Java clients trip it. So does a person whose antivirus or company proxy intercepts TLS and connects with its own library |
//! | `integrity` | 0.4 | `integrityHash` is missing or does not match `browserInformation` (the data was not produced by the widget's code, or was altered) |
//! | `request` | 0.4 | the HTTP request disagrees with the browser the page describes: another User-Agent, no `Accept-Language` or one led by another language, no fetch metadata from an engine that sends it, client hints naming other brands; or the submission's User-Agent, client hints, fetch metadata, `Accept-Language` or `Origin` differ from its create request's |
//! | `events` | 0.4 | input events the widget cannot have recorded: mostly dispatched by a script, of unknown types, running backwards in time (by more than a second), or spread over more time than passed |
//! | `too_fast` | 0.4 | the proof-of-work arrived, or claims to have been solved, sooner than a browser could count to its largest nonce |
//! | `hosting` | 0.4 | the client's address belongs to a hosting or data-centre network: its autonomous system (from `asn_database`) is on the hosting list. Never fires without an ASN database. People on a commercial VPN, a cloud desktop or a company network run from a cloud trip it |
//! | `repeated` | 0.4 | the page's device fingerprint (its six hashes with the browser version, languages, pixel ratio, processors, memory and window and screen sizes) came from at least `repetition.networks` (10) client networks within the window (an hour), and those are more than `repetition.share` (10 %) of the site's scored verifications in it (counted by each instance for what it serves): one browser build driven from many proxies. People with the same phone model, system, browser version, language and window share one; at a busy site they stay a small share, at a small one (a few dozen verifications an hour) a popular maximised set-up could trip it |
//! | `synthetic` | 0.3 | input no hand produces: a press where nothing moved before it (a click after fewer than two mouse moves, a tap in a session without any touch movement, a pen press without the pen's hovering moves), or a pointer movement of 100 px or more that never leaves a straight line by more than 1.5 px |
//! | `window` | 0.3 | a desktop window without browser UI around the page (outer size = inner size): headless browsers, and a person in full-screen mode |
//! | `screen` | 0.6 | a desktop window more than 32 px wider *and* taller than its screen: a headless browser given a window size keeps its 800×600 screen. A window stretched over two monitors passes one of them, not both |
//! | `timing` | 0.2 | timestamps are impossible: start before box creation, solving claimed to end before it began or to take longer than the server observed, or solving started within 100 ms of the box appearing |
//! | `velocity` | 0.2 | the client's network solved more than three times its free share of the adaptive-difficulty window |
//!
//! With the default threshold 0.5 (a result is refused above it), one signal of 0.6 blocks
//! alone; two of the others together block; a single one of 0.4 or less does not, so a person
//! who trips one heuristic (full screen, a cursor already resting on the checkbox, a busy
//! shared network) still passes. Each signal that fired is counted in the site's statistics
//! (`signal:NAME`) and named in the access log line of the submission.

use trustcaptcha::{DecisionAction, DecisionType};

use crate::access::AccessRule;
use crate::config::Site;
use crate::signals::Signals;

/// Each signal's weight, in the order of the table above (and of [`Signals::fired`]).
const WEIGHTS: [(Signals, f64); 16] = [
    (Signals::HONEYPOT, 0.6),
    (Signals::HEADLESS, 0.6),
    (Signals::AUTOMATION, 0.6),
    (Signals::NO_EVENTS, 0.6),
    (Signals::TLS, 0.6),
    (Signals::SCREEN, 0.6),
    (Signals::INTEGRITY, 0.4),
    (Signals::REQUEST, 0.4),
    (Signals::EVENTS, 0.4),
    (Signals::TOO_FAST, 0.4),
    (Signals::HOSTING, 0.4),
    (Signals::REPEATED, 0.4),
    (Signals::SYNTHETIC, 0.3),
    (Signals::WINDOW, 0.3),
    (Signals::TIMING, 0.2),
    (Signals::VELOCITY, 0.2),
];

impl Signals {
    /// Every signal's name, for statistics that list them all.
    pub(crate) fn all_names() -> impl Iterator<Item = &'static str> {
        WEIGHTS.iter().map(|(signal, _)| signal.name())
    }

    /// The weight of the signal named `name`.
    pub(crate) fn weight_of(name: &str) -> Option<f64> {
        WEIGHTS
            .iter()
            .find(|(signal, _)| signal.name() == name)
            .map(|(_, weight)| *weight)
    }

    /// The names of the signals that fired, heaviest first.
    pub(crate) fn fired(&self) -> impl Iterator<Item = &'static str> + '_ {
        WEIGHTS
            .iter()
            .filter(|(signal, _)| self.contains(*signal))
            .map(|(signal, _)| signal.name())
    }

    /// The score for these signals, in `[0, 1]`, rounded to two decimals.
    #[must_use]
    pub fn score(&self) -> f64 {
        let sum = WEIGHTS
            .iter()
            .filter(|(signal, _)| self.contains(*signal))
            // Rust's float sum of nothing is -0.0, which would serialise as `"score": -0.0`.
            .fold(0.0, |sum, (_, weight)| sum + weight);
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
    /// The access rule that decided, if one did (the older results API's `reason` tells some
    /// apart that `decisionType` does not).
    pub access_rule: Option<AccessRule>,
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
        access_rule,
    };
    match access_rule {
        Some(AccessRule::Blocked | AccessRule::CountryBlocked) => {
            blocked(DecisionType::CustomAccessRule)
        }
        Some(AccessRule::GloballyBlocked) => blocked(DecisionType::GlobalIpAccessRule),
        Some(AccessRule::Allowed) => Verdict {
            passed: true,
            score: 0.0,
            decision_type: DecisionType::CustomAccessRule,
            decision_action: DecisionAction::Allow,
            access_rule,
        },
        None => {
            let score = if site.scores() { signals.score() } else { 0.0 };
            Verdict {
                passed: true,
                score,
                decision_type: DecisionType::Standard,
                decision_action: if score > site.score_threshold {
                    DecisionAction::Block
                } else {
                    DecisionAction::Allow
                },
                access_rule: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_has_a_weight() {
        assert_eq!(
            WEIGHTS
                .iter()
                .fold(Signals::empty(), |all, (signal, _)| all | *signal),
            Signals::all()
        );
    }

    #[test]
    fn weights_add_up_and_cap_at_one() {
        assert_eq!(Signals::default().score(), 0.0);
        let automation = Signals::AUTOMATION;
        assert_eq!(automation.score(), 0.6);
        let automation_no_events = Signals::NO_EVENTS | automation;
        assert_eq!(automation_no_events.score(), 1.0);
        let honeypot = Signals::HONEYPOT;
        assert_eq!(honeypot.score(), 0.6);
        let all = Signals::all();
        assert_eq!(all.fired().count(), Signals::all_names().count());
        assert_eq!(all.score(), 1.0);
        let integrity_timing = Signals::INTEGRITY | Signals::TIMING;
        assert_eq!(integrity_timing.score(), 0.6);
        // One heuristic a person may trip passes at the default threshold; two block.
        let person = Signals::WINDOW | Signals::VELOCITY;
        assert_eq!(person.score(), 0.5);
        let bot = Signals::WINDOW | Signals::SYNTHETIC;
        assert_eq!(bot.score(), 0.6);
        assert_eq!(bot.fired().collect::<Vec<_>>(), ["synthetic", "window"]);
    }

    #[test]
    fn verdict_follows_access_rules_then_score() {
        let site = Site::new("s", uuid::Uuid::nil());
        let bot = Signals::HONEYPOT;
        let blocked = verdict(&site, Some(AccessRule::Blocked), &Signals::default());
        assert_eq!((blocked.passed, blocked.score), (false, 1.0));
        assert_eq!(blocked.decision_type, DecisionType::CustomAccessRule);
        let allowed = verdict(&site, Some(AccessRule::Allowed), &bot);
        assert_eq!((allowed.passed, allowed.score), (true, 0.0));
        let scored = verdict(&site, None, &bot);
        assert_eq!((scored.passed, scored.score), (true, 0.6));
        assert_eq!(scored.decision_action, DecisionAction::Block);
        let human = verdict(&site, None, &Signals::WINDOW);
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
}
