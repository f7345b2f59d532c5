//! Adaptive difficulty: a client network that solves often gets harder challenges, so that a bot
//! farm pays more per verification the more it makes, while a person solving a few is not
//! slowed down.

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

#[cfg(test)]
mod tests {
    use super::*;

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
