//! One windowed counter as the in-process backends keep it, and its rotation from window to
//! window, shared by them (Redis keeps one key per window instead).

use std::time::Duration;

use time::OffsetDateTime;

use super::{Counts, millis, window};

/// A counter's two latest windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counter {
    /// The window `current` counts in.
    pub(crate) window: i64,
    /// The window's length in milliseconds.
    pub(crate) length: i64,
    pub(crate) current: u64,
    /// The count of the window before `window`.
    pub(crate) previous: u64,
}

impl Counter {
    /// A counter with nothing counted, in the window of `now`.
    pub(crate) fn new(length: Duration, now: OffsetDateTime) -> Self {
        Counter {
            window: window(length, now),
            length: i64::try_from(length.as_millis()).unwrap_or(i64::MAX).max(1),
            current: 0,
            previous: 0,
        }
    }

    /// Moves the counter to the window of `now` (a counter never moves back).
    fn advance(&mut self, now: OffsetDateTime) {
        let now = millis(now).div_euclid(self.length);
        if now == self.window + 1 {
            self.previous = self.current;
        } else if now > self.window + 1 {
            self.previous = 0;
        }
        if now > self.window {
            self.current = 0;
            self.window = now;
        }
    }

    /// Adds `by` in the window of `now`; the window's new count.
    pub(crate) fn add(&mut self, by: u64, now: OffsetDateTime) -> u64 {
        self.advance(now);
        self.current = self.current.saturating_add(by);
        self.current
    }

    /// The counts as of `now`.
    pub(crate) fn counts(mut self, now: OffsetDateTime) -> Counts {
        self.advance(now);
        Counts {
            previous: self.previous,
            current: self.current,
        }
    }

    /// When nothing counted here matters any more (the window after next has begun).
    pub(crate) fn forgettable_at(&self) -> i64 {
        self.window.saturating_add(2).saturating_mul(self.length)
    }
}
