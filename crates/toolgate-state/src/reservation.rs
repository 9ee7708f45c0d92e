//! The all-or-none check every store runs inside its own critical section (a mutex, a
//! SQLite write transaction, a Redis script).
//!
//! A store supplies the stored counts of a counter's current and previous fixed windows;
//! this module decides whether every item fits and, if so, what the ticket records. Two
//! items naming the same counter (same key and window length) are checked against their
//! running sum, because both will be added to the same window.

use toolgate_policy::Amount;

use crate::store::{ReserveItem, StoreError, Taken, Ticket};
use crate::windows::Span;

/// Stored counts (micros) of one counter's current and previous fixed windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub current: i64,
    pub previous: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every item fits: add each amount to its current window.
    Fits,
    Exceeded {
        index: usize,
        current: Amount,
    },
}

/// Refuses what no store should ever apply: a negative amount would hand quota back, and a
/// zero-length window has no windows at all. The policy compiler already rejects both; this
/// guards the public fields.
pub(crate) fn validate_items(items: &[ReserveItem]) -> Result<(), StoreError> {
    for item in items {
        validate(&item.key, item.window.length_ms, item.amount)?;
    }
    Ok(())
}

pub(crate) fn validate_ticket(ticket: &Ticket) -> Result<(), StoreError> {
    for taken in &ticket.taken {
        validate(&taken.key, taken.window.length_ms, taken.amount)?;
    }
    Ok(())
}

pub(crate) fn validate_window(key: &str, length_ms: u64) -> Result<(), StoreError> {
    if length_ms == 0 {
        return Err(StoreError::Backend(format!(
            "counter {key:?} has a zero-length window"
        )));
    }
    Ok(())
}

fn validate(key: &str, length_ms: u64, amount: Amount) -> Result<(), StoreError> {
    validate_window(key, length_ms)?;
    if amount.is_negative() {
        return Err(StoreError::Backend(format!(
            "counter {key:?} was given a negative amount ({amount})"
        )));
    }
    Ok(())
}

/// Whether two items count into the same stored counter.
pub(crate) fn same_counter(a: &ReserveItem, b: &ReserveItem) -> bool {
    a.window.length_ms == b.window.length_ms && a.key == b.key
}

/// Checks every item against its limit at `now_ms`; `counts` reads a counter's stored
/// windows. Stops at the first item that does not fit.
pub(crate) fn check<F>(
    items: &[ReserveItem],
    now_ms: u64,
    mut counts: F,
) -> Result<Verdict, StoreError>
where
    F: FnMut(&ReserveItem, &Span) -> Result<Counts, StoreError>,
{
    for (index, item) in items.iter().enumerate() {
        let span = Span::at(item.window, now_ms);
        let stored = counts(item, &span)?;
        let estimate = span.estimate(item.window.mode, stored.current, stored.previous);
        // Earlier items of this call on the same counter will land in the same window.
        let earlier = items[..index]
            .iter()
            .filter(|other| same_counter(other, item))
            .fold(0i64, |sum, other| {
                sum.saturating_add(other.amount.to_micros())
            });
        let current = estimate.saturating_add(earlier);
        let fits = current
            .checked_add(item.amount.to_micros())
            .is_some_and(|total| total <= item.max.to_micros());
        if !fits {
            return Ok(Verdict::Exceeded {
                index,
                current: Amount::from_micros(current),
            });
        }
    }
    Ok(Verdict::Fits)
}

/// The ticket for a reservation that fitted at `now_ms`: each item went to its current
/// fixed window.
pub(crate) fn ticket(items: &[ReserveItem], now_ms: u64) -> Ticket {
    Ticket {
        taken: items
            .iter()
            .map(|item| Taken {
                key: item.key.clone(),
                window: item.window,
                window_start_ms: item.window.start_of(now_ms),
                amount: item.amount,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use toolgate_policy::Window;

    fn item(key: &str, max: i64, amount: i64) -> ReserveItem {
        ReserveItem {
            key: key.into(),
            window: Window::fixed(60_000),
            max: Amount::from_units(max).unwrap(),
            amount: Amount::from_units(amount).unwrap(),
        }
    }

    #[test]
    fn duplicate_counters_are_checked_against_their_running_sum() {
        let items = [item("a", 3, 2), item("b", 9, 1), item("a", 3, 2)];
        let verdict = check(&items, 0, |_, _| Ok(Counts::default())).unwrap();
        assert_eq!(
            verdict,
            Verdict::Exceeded {
                index: 2,
                current: Amount::from_units(2).unwrap()
            }
        );
    }

    #[test]
    fn a_sum_past_i64_is_exceeded_not_wrapped() {
        let mut big = item("a", 1, 1);
        big.max = Amount::from_micros(i64::MAX);
        big.amount = Amount::from_micros(i64::MAX);
        let verdict = check(&[big], 0, |_, _| {
            Ok(Counts {
                current: 1,
                previous: 0,
            })
        })
        .unwrap();
        assert!(matches!(verdict, Verdict::Exceeded { index: 0, .. }));
    }

    #[test]
    fn negative_amounts_and_empty_windows_are_refused() {
        let mut negative = item("a", 3, 1);
        negative.amount = Amount::from_micros(-1);
        let err = validate_items(&[negative]).unwrap_err();
        assert!(err.to_string().contains("negative amount"), "{err}");
        let mut empty = item("a", 3, 1);
        empty.window.length_ms = 0;
        let err = validate_items(&[empty]).unwrap_err();
        assert!(err.to_string().contains("zero-length window"), "{err}");
    }
}
