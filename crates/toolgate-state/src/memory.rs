//! `memory:` — counters in this process's memory.
//!
//! For tests and single-process setups that need no persistence. One mutex guards one hash
//! map: a reservation is a handful of arithmetic on a few entries, so holding a lock for it
//! is far cheaper than anything lock-free would buy, and it makes all-or-none trivial.
//! `reserve` has no await point, so cancelling it can never leave half a reservation.
//!
//! Each counter (prefix, key, window length) keeps exactly two fixed-window slots — all any
//! window mode needs — so memory is bounded by the number of live counters; a periodic sweep
//! drops counters whose windows are all older than the previous window.

use std::collections::hash_map::RandomState;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use hashbrown::{Equivalent, HashMap};
use toolgate_policy::{Amount, Window};

use crate::clock::Clock;
use crate::reservation::{self, Counts, Verdict};
use crate::store::{CounterStore, ReserveItem, ReserveOutcome, StoreError, Ticket};
use crate::windows::{self, Span};

/// How often (clock time) the sweep for dead counters runs. It walks the whole map under
/// the lock, so it runs on a timer rather than on every call.
const SWEEP_INTERVAL_MS: u64 = 10_000;

/// Counters in memory, shared by every clone and by [`MemoryStore::with_prefix`] handles.
#[derive(Clone)]
pub struct MemoryStore {
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
    table: Arc<Mutex<Table>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new(prefix: &str, clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            prefix: prefix.into(),
            clock,
            table: Arc::new(Mutex::new(Table::default())),
        }
    }

    /// Another handle on the same counters under `prefix`: what two gateways sharing one
    /// backend see. With the same prefix the handles share counts; with another, they don't.
    pub fn with_prefix(&self, prefix: &str) -> MemoryStore {
        MemoryStore {
            prefix: prefix.into(),
            clock: Arc::clone(&self.clock),
            table: Arc::clone(&self.table),
        }
    }

    /// Non-empty fixed windows held, across every prefix (to observe cleanup).
    pub fn stored_windows(&self) -> usize {
        self.lock()
            .counters
            .values()
            .map(|slots| slots.0.iter().filter(|s| s.value > 0).count())
            .sum()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while the lock is held cannot leave a half-applied reservation (the only
        // writes happen after every check, with no panicking operation between them), so a
        // poisoned table is still consistent.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counter<'a>(&'a self, key: &'a str, length_ms: u64) -> CounterRef<'a> {
        CounterRef {
            prefix: &self.prefix,
            key,
            length_ms,
        }
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn reserve(&self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError> {
        reservation::validate_items(items)?;
        let now = {
            let mut table = self.lock();
            // Read under the lock: a caller holding an older "now" must not add to a window
            // that another caller has already moved past.
            let now = self.clock.now_ms();
            table.sweep_if_due(now);
            let verdict = reservation::check(items, now, |item, span| {
                let counter = self.counter(&item.key, item.window.length_ms);
                Ok(table.counts(&counter, span))
            })?;
            if let Verdict::Exceeded { index, current } = verdict {
                return Ok(ReserveOutcome::Exceeded { index, current });
            }
            for item in items {
                let span = Span::at(item.window, now);
                let counter = self.counter(&item.key, item.window.length_ms);
                table.add(&counter, &span, item.amount.to_micros());
            }
            now
        };
        // Built after the lock is released: the ticket's allocations need no exclusion.
        Ok(ReserveOutcome::Reserved(reservation::ticket(items, now)))
    }

    async fn commit(&self, _ticket: &Ticket) -> Result<(), StoreError> {
        // Reserving already counted the amounts; nothing is pending.
        Ok(())
    }

    async fn rollback(&self, ticket: &Ticket) -> Result<(), StoreError> {
        reservation::validate_ticket(ticket)?;
        let mut table = self.lock();
        for taken in &ticket.taken {
            let counter = self.counter(&taken.key, taken.window.length_ms);
            if let Some(slots) = table.counters.get_mut(&counter) {
                slots.subtract(taken.window_start_ms, taken.amount.to_micros());
            }
        }
        Ok(())
    }

    async fn current(&self, key: &str, window: Window) -> Result<Amount, StoreError> {
        reservation::validate_window(key, window.length_ms)?;
        let table = self.lock();
        let span = Span::at(window, self.clock.now_ms());
        let counts = table.counts(&self.counter(key, window.length_ms), &span);
        drop(table);
        Ok(Amount::from_micros(span.estimate(
            window.mode,
            counts.current,
            counts.previous,
        )))
    }

    fn reserves_at_once(&self) -> bool {
        true
    }
}

#[derive(Default)]
struct Table {
    // SipHash with a per-process random key rather than a faster unkeyed hash: keys can
    // carry tool-argument values an agent chooses, so collisions must not be plannable.
    counters: HashMap<CounterKey, Slots, RandomState>,
    next_sweep_ms: u64,
}

impl Table {
    fn counts(&self, counter: &CounterRef<'_>, span: &Span) -> Counts {
        let Some(slots) = self.counters.get(counter) else {
            return Counts::default();
        };
        Counts {
            current: slots.value_at(span.current_start),
            previous: span.previous_start.map_or(0, |p| slots.value_at(p)),
        }
    }

    fn add(&mut self, counter: &CounterRef<'_>, span: &Span, amount: i64) {
        match self.counters.get_mut(counter) {
            Some(slots) => slots.add(span, amount),
            None => {
                let mut slots = Slots::default();
                slots.add(span, amount);
                self.counters.insert(counter.to_owned(), slots);
            }
        }
    }

    fn sweep_if_due(&mut self, now: u64) {
        if now < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now.saturating_add(SWEEP_INTERVAL_MS);
        self.counters
            .retain(|counter, slots| !slots.is_dead(counter.length_ms, now));
    }
}

/// One counter's two most recent fixed windows. A slot with value 0 is empty.
#[derive(Debug, Default, Clone, Copy)]
struct Slots([Slot; 2]);

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    start_ms: u64,
    value: i64,
}

impl Slots {
    fn value_at(&self, start_ms: u64) -> i64 {
        self.0
            .iter()
            .find(|slot| slot.start_ms == start_ms)
            .map_or(0, |slot| slot.value)
    }

    fn add(&mut self, span: &Span, amount: i64) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.start_ms == span.current_start) {
            // Cannot overflow: the check proved current + amount ≤ max.
            slot.value = slot.value.saturating_add(amount);
            return;
        }
        // A new window replaces an empty slot, else whichever slot is not the previous
        // window (the sliding estimate still needs that one).
        let victim = self
            .0
            .iter()
            .position(|s| s.value == 0)
            .or_else(|| {
                self.0
                    .iter()
                    .position(|s| Some(s.start_ms) != span.previous_start)
            })
            .unwrap_or(0);
        self.0[victim] = Slot {
            start_ms: span.current_start,
            value: amount,
        };
    }

    /// Subtracts from exactly the window `start_ms`, if it is still held; never below zero.
    fn subtract(&mut self, start_ms: u64, amount: i64) {
        if let Some(slot) = self.0.iter_mut().find(|s| s.start_ms == start_ms) {
            slot.value = slot.value.saturating_sub(amount).max(0);
        }
    }

    fn is_dead(&self, length_ms: u64, now: u64) -> bool {
        self.0
            .iter()
            .all(|s| s.value == 0 || windows::is_expired(s.start_ms, length_ms, now))
    }
}

/// A counter's identity as stored. `Hash` must agree with [`CounterRef`]'s: both hash the
/// prefix, the key and the length, in that order, as `str`, `str`, `u64`.
#[derive(Debug, PartialEq, Eq)]
struct CounterKey {
    prefix: Arc<str>,
    key: Box<str>,
    length_ms: u64,
}

impl Hash for CounterKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.prefix).hash(state);
        (*self.key).hash(state);
        self.length_ms.hash(state);
    }
}

/// A borrowed [`CounterKey`], so lookups on the hot path allocate nothing.
struct CounterRef<'a> {
    prefix: &'a Arc<str>,
    key: &'a str,
    length_ms: u64,
}

impl Hash for CounterRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self.prefix).hash(state);
        self.key.hash(state);
        self.length_ms.hash(state);
    }
}

impl Equivalent<CounterKey> for CounterRef<'_> {
    fn equivalent(&self, stored: &CounterKey) -> bool {
        self.length_ms == stored.length_ms
            && self.key == &*stored.key
            && **self.prefix == *stored.prefix
    }
}

impl CounterRef<'_> {
    fn to_owned(&self) -> CounterKey {
        CounterKey {
            // Shares the store's prefix allocation instead of copying it per counter.
            prefix: Arc::clone(self.prefix),
            key: self.key.into(),
            length_ms: self.length_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, previous: Option<u64>) -> Span {
        let now = start + 1;
        let span = Span::at(Window::fixed(10), now);
        assert_eq!((span.current_start, span.previous_start), (start, previous));
        span
    }

    #[test]
    fn a_new_window_keeps_the_previous_one_and_drops_older_ones() {
        let mut slots = Slots::default();
        slots.add(&span(100, Some(90)), 5);
        slots.add(&span(110, Some(100)), 7);
        assert_eq!(slots.value_at(100), 5);
        assert_eq!(slots.value_at(110), 7);
        slots.add(&span(120, Some(110)), 1);
        assert_eq!(slots.value_at(100), 0, "two windows back is dropped");
        assert_eq!(slots.value_at(110), 7);
        assert_eq!(slots.value_at(120), 1);
    }

    #[test]
    fn subtract_touches_only_its_own_window_and_stops_at_zero() {
        let mut slots = Slots::default();
        slots.add(&span(100, Some(90)), 5);
        slots.subtract(90, 5);
        assert_eq!(slots.value_at(100), 5);
        slots.subtract(100, 9);
        assert_eq!(slots.value_at(100), 0);
    }
}
