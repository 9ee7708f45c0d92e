//! Window arithmetic shared by every store: which fixed window "now" falls in, which one
//! came before it, when a window's count may be forgotten, and the sliding-window estimate.
//!
//! Every store keeps one count per *fixed* window (UTC-aligned, `Window::start_of`). A
//! sliding window is not stored separately: it is estimated from the current fixed window
//! and the previous one, weighting the previous count by the share of it that still lies
//! inside the sliding window (the "sliding-window counter"). So both modes need at most two
//! stored windows per counter, and a policy switching a counter between modes keeps its
//! counts. Keeping this in pure functions is what makes the memory and SQLite stores (and a
//! server-side Redis script) decide identically. The accuracy of the estimate is worked out
//! in `docs/STATE.md`.

use toolgate_policy::{Window, WindowMode};

/// Where "now" sits among a counter's fixed windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Start (ms) of the fixed window holding now: where reservations add.
    pub current_start: u64,
    /// Start of the window before it; `None` only in the first window after the epoch.
    pub previous_start: Option<u64>,
    /// Milliseconds of the previous window that still lie inside a sliding window ending now.
    previous_overlap: u64,
    length_ms: u64,
}

impl Span {
    /// `window.length_ms` must be positive (checked by `reservation::validate`).
    pub fn at(window: Window, now_ms: u64) -> Span {
        let current_start = window.start_of(now_ms);
        let elapsed = now_ms - current_start;
        Span {
            current_start,
            previous_start: current_start.checked_sub(window.length_ms),
            previous_overlap: window.length_ms - elapsed,
            length_ms: window.length_ms,
        }
    }

    /// The count a limit is checked against, from the stored counts (micros) of the current
    /// and previous fixed windows.
    ///
    /// Fixed: the current window's count. Sliding: current + previous × overlap / length,
    /// the weighted part rounded up so that rounding never lets a call through.
    pub fn estimate(&self, mode: WindowMode, current: i64, previous: i64) -> i64 {
        match mode {
            WindowMode::Fixed => current,
            WindowMode::Sliding => {
                if self.previous_start.is_none() || previous <= 0 {
                    return current;
                }
                let length = i128::from(self.length_ms);
                let weighted = (i128::from(previous) * i128::from(self.previous_overlap) + length
                    - 1)
                    / length;
                let total = i128::from(current) + weighted;
                i64::try_from(total).unwrap_or(i64::MAX)
            }
        }
    }
}

/// First instant (ms) at which the fixed window starting at `start_ms` is older than the
/// previous window and so no longer needed by either mode. Stored with SQLite rows, which
/// lets cleanup be one indexed range delete.
pub(crate) fn expires_at(start_ms: u64, length_ms: u64) -> u64 {
    start_ms.saturating_add(length_ms.saturating_mul(2))
}

/// Whether the fixed window starting at `start_ms` may be forgotten at `now_ms`.
pub(crate) fn is_expired(start_ms: u64, length_ms: u64, now_ms: u64) -> bool {
    expires_at(start_ms, length_ms) <= now_ms
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const MINUTE: u64 = 60_000;
    const ONE: i64 = 1_000_000;
    // 2026-01-01T00:00:00Z
    const T0: u64 = 1_767_225_600_000;

    fn sliding(length_ms: u64) -> Window {
        Window {
            length_ms,
            mode: WindowMode::Sliding,
        }
    }

    #[test]
    fn span_locates_current_and_previous_windows() {
        let span = Span::at(Window::fixed(MINUTE), T0 + 90_000);
        assert_eq!(span.current_start, T0 + MINUTE);
        assert_eq!(span.previous_start, Some(T0));
        assert_eq!(span.previous_overlap, 30_000);
        // On the boundary the previous window still lies wholly inside the sliding window.
        let span = Span::at(Window::fixed(MINUTE), T0);
        assert_eq!(span.previous_overlap, MINUTE);
        // The first window after the epoch has no predecessor.
        assert_eq!(Span::at(Window::fixed(MINUTE), 5).previous_start, None);
    }

    #[test]
    fn fixed_estimate_is_the_current_count() {
        let span = Span::at(Window::fixed(MINUTE), T0 + 1_000);
        assert_eq!(span.estimate(WindowMode::Fixed, 3 * ONE, 10 * ONE), 3 * ONE);
    }

    #[test]
    fn sliding_estimate_weights_the_previous_window_by_its_overlap() {
        let w = sliding(MINUTE);
        // Half-way through: half of the previous window counts.
        let span = Span::at(w, T0 + MINUTE + 30_000);
        assert_eq!(span.estimate(w.mode, 2 * ONE, 10 * ONE), 7 * ONE);
        // One second in: 59/60 of it, rounded up to the next micro.
        let span = Span::at(w, T0 + MINUTE + 1_000);
        assert_eq!(span.estimate(w.mode, 0, 10 * ONE), 9_833_334);
        // Exactly on the boundary: all of it.
        let span = Span::at(w, T0 + MINUTE);
        assert_eq!(span.estimate(w.mode, 0, 10 * ONE), 10 * ONE);
    }

    #[test]
    fn sliding_estimate_saturates_instead_of_overflowing() {
        let w = sliding(MINUTE);
        let span = Span::at(w, T0 + MINUTE);
        assert_eq!(span.estimate(w.mode, i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn windows_expire_after_they_stop_being_the_previous_one() {
        assert!(!is_expired(T0, MINUTE, T0 + MINUTE)); // previous window
        assert!(!is_expired(T0, MINUTE, T0 + 2 * MINUTE - 1));
        assert!(is_expired(T0, MINUTE, T0 + 2 * MINUTE)); // two back
        assert_eq!(expires_at(u64::MAX - 1, MINUTE), u64::MAX);
    }

    /// Replays one admission decision per attempt (one call each, `max` in micros) using only
    /// the two-window estimate.
    fn admit_schedule(max: i64, length: u64, attempts: &[u64]) -> Vec<u64> {
        let w = sliding(length);
        let mut counts: std::collections::BTreeMap<u64, i64> = Default::default();
        let mut admitted = Vec::new();
        for &t in attempts {
            let span = Span::at(w, t);
            let current = counts.get(&span.current_start).copied().unwrap_or(0);
            let previous = span
                .previous_start
                .and_then(|p| counts.get(&p).copied())
                .unwrap_or(0);
            if span.estimate(w.mode, current, previous) + ONE <= max {
                *counts.entry(span.current_start).or_default() += ONE;
                admitted.push(t);
            }
        }
        admitted
    }

    proptest! {
        /// The bound documented in docs/STATE.md: over any interval of length d ≤ L, a
        /// sliding limit of `max` per L admits at most max + max·d/L calls (a fixed window
        /// admits 2·max in an interval as short as 2 ms).
        #[test]
        fn sliding_admissions_stay_within_the_documented_bound(
            max in 1i64..20,
            // Bursts of calls at instants on a 250 ms grid over four windows: sparse and
            // dense stretches, which is what exposes a boundary burst.
            bursts in proptest::collection::vec((0u64..160, 1usize..40), 1..40),
        ) {
            let length = 10_000u64;
            let mut attempts: Vec<u64> = bursts
                .iter()
                .flat_map(|&(slot, size)| std::iter::repeat_n(T0 + slot * 250, size))
                .collect();
            attempts.sort_unstable();
            let admitted = admit_schedule(max * ONE, length, &attempts);
            for (i, &start) in admitted.iter().enumerate() {
                for (j, &end) in admitted.iter().enumerate().skip(i) {
                    let d = end - start;
                    if d >= length { break; }
                    let in_interval = (j - i + 1) as i64;
                    // Interval [start, end] has length d; allow the ceil of max·d/L.
                    let bound = max + (max * d as i64 + length as i64 - 1) / length as i64;
                    prop_assert!(in_interval <= bound,
                        "{in_interval} calls within {d} ms, bound {bound}");
                }
            }
        }
    }
}
