//! Adaptive difficulty: a client network that solves often gets harder challenges, so that a bot
//! farm pays more per verification the more it makes, while a person solving a few is not
//! slowed down; and a visitor that looks suspicious when it asks for a challenge gets a harder
//! one ([`Suspicion`]), so that suspicion costs work before the score refuses anything.

use std::time::Duration;

use serde::Deserialize;

/// How the difficulty rises for a client that solves often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveDifficulty {
    /// The window in which solves are counted. It slides, estimated from two fixed windows
    /// (the store's counters): a solve counts fully within its own fixed window and fades out
    /// linearly over the next.
    #[serde(rename = "window_secs", with = "crate::clock::seconds")]
    pub window: Duration,
    /// Solves within the window that cost nothing extra.
    pub free_solves: u32,
    /// Extra difficulty bits per further `free_solves` solves (at least one per solve over).
    pub step: u8,
    /// The most extra bits ever added.
    pub max_extra: u8,
}

impl Default for AdaptiveDifficulty {
    fn default() -> Self {
        AdaptiveDifficulty {
            window: Duration::from_secs(60),
            free_solves: 10,
            step: 1,
            max_extra: 8,
        }
    }
}

/// The extra difficulty bits for a client network that solved `solved` challenges within the
/// rule's window and holds `pending` unsolved ones (they count like solves, so that
/// creating many first and solving them later does not keep the base difficulty).
pub(crate) fn extra_bits(solved: u64, pending: usize, rule: &AdaptiveDifficulty) -> u8 {
    let pending = u64::try_from(pending).unwrap_or(u64::MAX);
    let count = u32::try_from(solved.saturating_add(pending)).unwrap_or(u32::MAX);
    let over = count.saturating_sub(rule.free_solves);
    if over == 0 {
        return 0;
    }
    let per = rule.free_solves.max(1);
    let steps = over.div_ceil(per);
    let extra = steps.saturating_mul(u32::from(rule.step));
    u8::try_from(extra.min(u32::from(rule.max_extra))).unwrap_or(rule.max_extra)
}

/// How the difficulty rises with what a create request already shows: the score of the signals
/// found before any work is done (the network, the request, the page's description) buys extra
/// bits. One bit doubles the expected work: a person who trips one light heuristic (score 0.3,
/// one bit at the default) waits twice the usual time; a bot whose create request scores 1 does
/// 32 times the work for every attempt, refused or not.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Suspicion {
    /// The score that buys one extra bit (bits are whole: 0.3 buys one at 0.2 per bit).
    pub score_per_bit: f64,
    /// The most extra bits suspicion adds (0 turns it off).
    pub max_extra: u8,
}

impl Default for Suspicion {
    fn default() -> Self {
        Suspicion {
            score_per_bit: 0.2,
            max_extra: 5,
        }
    }
}

impl Suspicion {
    /// The extra difficulty bits for a create request whose signals score `score`.
    pub(crate) fn extra_bits(&self, score: f64) -> u8 {
        if self.score_per_bit <= 0.0 || !score.is_finite() {
            return 0;
        }
        // A small allowance, so that 0.6 / 0.2 is 3 and not 2.999….
        let bits = (score / self.score_per_bit + 1e-9).floor().max(0.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to a u8
        let bits = bits.min(f64::from(self.max_extra)) as u8;
        bits
    }
}

/// When one device fingerprint is repeated across networks: the same page description from
/// `networks` or more client networks within the window that also make more than `share` of
/// the site's verifications in it. A bot farm drives one browser build from many proxies; people
/// bring many devices, and a device common among a busy site's visitors stays a small share of
/// its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Repetition {
    /// The window the networks and verifications are counted in (fixed, aligned windows).
    #[serde(rename = "window_secs", with = "crate::clock::seconds")]
    pub window: Duration,
    /// The fewest networks one fingerprint must come from (at most 100; 0 turns the signal off).
    pub networks: u32,
    /// The share of the site's verifications in the window one fingerprint must exceed.
    pub share: f64,
}

impl Default for Repetition {
    fn default() -> Self {
        Repetition {
            window: Duration::from_secs(3600),
            networks: 10,
            share: 0.1,
        }
    }
}

impl Repetition {
    /// Whether a fingerprint seen from `networks` networks among the site's `created`
    /// verifications of the window is repeated.
    pub(crate) fn repeated(&self, networks: u64, created: u64) -> bool {
        #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
        let share = networks as f64 / created.max(1) as f64;
        self.networks > 0 && networks >= u64::from(self.networks) && share > self.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_needs_many_networks_and_a_large_share() {
        let rule = Repetition::default();
        assert!(!rule.repeated(9, 9), "too few networks to say");
        assert!(rule.repeated(10, 12), "a farm at a quiet site");
        assert!(
            !rule.repeated(50, 1_000),
            "a common device at a busy site (5 %)"
        );
        assert!(rule.repeated(200, 1_000));
        let off = Repetition {
            networks: 0,
            ..rule
        };
        assert!(!off.repeated(1_000, 1_000));
    }

    #[test]
    fn suspicion_buys_whole_bits_up_to_its_cap() {
        let rule = Suspicion::default();
        assert_eq!(
            rule.extra_bits(0.0),
            0,
            "nothing found: the site's difficulty"
        );
        assert_eq!(rule.extra_bits(0.1), 0);
        assert_eq!(
            rule.extra_bits(0.3),
            1,
            "one light heuristic: twice the work"
        );
        assert_eq!(rule.extra_bits(0.6), 3);
        assert_eq!(rule.extra_bits(1.0), 5);
        let capped = Suspicion {
            max_extra: 2,
            ..rule
        };
        assert_eq!(capped.extra_bits(1.0), 2);
        let off = Suspicion {
            max_extra: 0,
            ..rule
        };
        assert_eq!(off.extra_bits(1.0), 0);
        let odd = Suspicion {
            score_per_bit: 0.0,
            ..rule
        };
        assert_eq!(odd.extra_bits(1.0), 0);
        assert_eq!(rule.extra_bits(f64::NAN), 0);
    }

    #[test]
    fn difficulty_rises_with_solves_and_outstanding_challenges() {
        let rule = AdaptiveDifficulty {
            window: Duration::from_secs(60),
            free_solves: 2,
            step: 2,
            max_extra: 5,
        };
        assert_eq!(extra_bits(2, 0, &rule), 0, "free");
        assert_eq!(extra_bits(3, 0, &rule), 2);
        assert_eq!(extra_bits(0, 3, &rule), 2, "pending counts like solves");
        assert_eq!(extra_bits(5, 0, &rule), 4);
        assert_eq!(extra_bits(12, 0, &rule), 5, "capped at max_extra");
        assert_eq!(extra_bits(u64::MAX, usize::MAX, &rule), 5);
    }
}
