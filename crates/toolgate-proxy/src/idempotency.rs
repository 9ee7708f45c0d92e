//! `idempotency_window`: an identical call — same identity, tool and canonical arguments —
//! made again within the window is not forwarded again. While the first is in flight the
//! duplicate waits for its answer; afterwards it gets the first result again. Either way the
//! server runs the tool once and every caller gets the same answer.
//!
//! Only results are kept for the window: an error answer (the tool did not run) reaches the
//! callers waiting on it and is then forgotten, so a retry is forwarded. What one gateway keeps
//! is its own, in memory and bounded: at most [`MAX_KEPT_BYTES`] of results and
//! [`MAX_WAITERS`] duplicates waiting on one call; past either bound a call is simply
//! forwarded (or refused, for a waiter), never held without limit.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::session::Session;

/// Identifies a call: the SHA-256 of its identity, tool and canonical arguments.
pub type CallKey = [u8; 32];

/// Results kept, in all, at most: their text and what each entry costs besides.
pub const MAX_KEPT_BYTES: usize = 64 * 1024 * 1024;
/// What one kept entry costs besides its text (key, map slot, shared-string header, deadline),
/// counted so that a flood of tiny results cannot hold more entries than the bound means.
const ENTRY_OVERHEAD: usize = 128;
/// Duplicates that may wait on one call in flight.
pub const MAX_WAITERS: usize = 64;
/// Kept entries beyond which expired ones are swept, at most once per [`SWEEP_EVERY_MS`]: a
/// sweep walks the whole map, which must not happen on every call.
const SWEEP_ABOVE: usize = 1024;
const SWEEP_EVERY_MS: u64 = 1000;

pub fn call_key(identity: Option<&str>, tool: &str, arguments: &Value) -> CallKey {
    let mut text = String::new();
    text.push('[');
    match identity {
        Some(identity) => toolgate_policy::canonical::write_string(&mut text, identity),
        None => text.push_str("null"),
    }
    text.push(',');
    toolgate_policy::canonical::write_string(&mut text, tool);
    text.push(',');
    text.push_str(&toolgate_policy::canonical::canonical_json(arguments));
    text.push(']');
    Sha256::digest(text.as_bytes()).into()
}

/// The answer a call got, to give its duplicates: a JSON-RPC `result` or `error` member.
#[derive(Debug, Clone)]
pub struct KeptAnswer {
    pub is_error: bool,
    /// The member's JSON text.
    pub member: Arc<str>,
}

impl KeptAnswer {
    /// The whole answer, under the duplicate's own id.
    pub fn for_id(&self, id: &str) -> String {
        let name = if self.is_error { "error" } else { "result" };
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"{name}\":{}}}",
            self.member
        )
    }
}

/// A duplicate waiting for the first call's answer.
pub struct Waiter {
    pub session: Weak<Session>,
    /// Its id as the client wrote it, and as a map key.
    pub id: Box<RawValue>,
    pub key: String,
    pub started: Instant,
    /// For its audit line.
    pub tool: String,
    pub policy: String,
}

/// What a call's arrival finds.
pub enum Claim {
    /// No identical call within the window: forward this one (and finish it here).
    First,
    /// An identical call is in flight: this one waits for its answer.
    Waiting,
    /// An identical call was answered within the window: this is its answer.
    Answered(KeptAnswer),
    /// Too many duplicates wait already (on this call, or in the caller's session).
    TooManyWaiting,
}

enum Entry {
    InFlight { waiters: Vec<Waiter> },
    Kept { answer: KeptAnswer, until_ms: u64 },
}

pub struct Idempotency {
    entries: Mutex<Entries>,
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency::with_budget(MAX_KEPT_BYTES)
    }
}

struct Entries {
    map: HashMap<CallKey, Entry>,
    kept_bytes: usize,
    /// [`MAX_KEPT_BYTES`], but for tests.
    budget: usize,
    next_sweep_ms: u64,
}

fn kept_size(answer: &KeptAnswer) -> usize {
    answer.member.len() + ENTRY_OVERHEAD
}

impl Idempotency {
    fn with_budget(budget: usize) -> Idempotency {
        Idempotency {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                kept_bytes: 0,
                budget,
                next_sweep_ms: 0,
            }),
        }
    }

    /// Looks the call up; the first of its kind is recorded as in flight. `waiter` makes this
    /// call's waiter, when it has to wait; `None` when its caller may not have one more.
    pub fn claim(
        &self,
        key: CallKey,
        now_ms: u64,
        waiter: impl FnOnce() -> Option<Waiter>,
    ) -> Claim {
        let mut entries = self.entries.lock();
        if entries.map.len() > SWEEP_ABOVE {
            entries.sweep_if_due(now_ms);
        }
        let Entries {
            map, kept_bytes, ..
        } = &mut *entries;
        match map.get_mut(&key) {
            Some(Entry::InFlight { waiters }) if waiters.len() >= MAX_WAITERS => {
                Claim::TooManyWaiting
            }
            Some(Entry::InFlight { waiters }) => match waiter() {
                Some(waiter) => {
                    waiters.push(waiter);
                    Claim::Waiting
                }
                None => Claim::TooManyWaiting,
            },
            Some(Entry::Kept { answer, until_ms }) if *until_ms > now_ms => {
                Claim::Answered(answer.clone())
            }
            Some(Entry::Kept { answer, .. }) => {
                *kept_bytes -= kept_size(answer);
                map.insert(
                    key,
                    Entry::InFlight {
                        waiters: Vec::new(),
                    },
                );
                Claim::First
            }
            None => {
                map.insert(
                    key,
                    Entry::InFlight {
                        waiters: Vec::new(),
                    },
                );
                Claim::First
            }
        }
    }

    /// The first call was answered: a result is kept for `window_ms`, an error is not. Returns
    /// the duplicates waiting on it, to be given the same answer.
    pub fn answered(
        &self,
        key: CallKey,
        answer: &KeptAnswer,
        window_ms: u64,
        now_ms: u64,
    ) -> Vec<Waiter> {
        let mut entries = self.entries.lock();
        let waiters = match entries.map.remove(&key) {
            Some(Entry::InFlight { waiters }) => waiters,
            _ => Vec::new(),
        };
        let size = kept_size(answer);
        if entries.kept_bytes + size > entries.budget {
            entries.sweep_if_due(now_ms);
        }
        if !answer.is_error && entries.kept_bytes + size <= entries.budget {
            entries.kept_bytes += size;
            let entry = Entry::Kept {
                answer: answer.clone(),
                until_ms: now_ms.saturating_add(window_ms),
            };
            entries.map.insert(key, entry);
        }
        waiters
    }

    /// The first call ended without an answer from the server (refused, timed out, cancelled,
    /// the server gone): nothing is kept. Returns the duplicates waiting on it.
    pub fn ended(&self, key: CallKey) -> Vec<Waiter> {
        let mut entries = self.entries.lock();
        if !matches!(entries.map.get(&key), Some(Entry::InFlight { .. })) {
            return Vec::new();
        }
        match entries.map.remove(&key) {
            Some(Entry::InFlight { waiters }) => waiters,
            _ => Vec::new(),
        }
    }
}

impl Entries {
    /// Drops the answers whose window has passed, unless a sweep ran less than
    /// [`SWEEP_EVERY_MS`] ago.
    fn sweep_if_due(&mut self, now_ms: u64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        let mut freed = 0;
        self.map.retain(|_, entry| match entry {
            Entry::Kept { until_ms, answer } if *until_ms <= now_ms => {
                freed += kept_size(answer);
                false
            }
            _ => true,
        });
        self.kept_bytes -= freed;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn waiter(n: u32) -> Waiter {
        Waiter {
            session: Weak::new(),
            id: RawValue::from_string(n.to_string()).unwrap(),
            key: n.to_string(),
            started: Instant::now(),
            tool: "t".into(),
            policy: "p".into(),
        }
    }

    fn result(text: &str) -> KeptAnswer {
        KeptAnswer {
            is_error: false,
            member: text.into(),
        }
    }

    #[test]
    fn the_key_is_the_identity_tool_and_canonical_arguments() {
        let a = call_key(Some("alice"), "t", &json!({"a": 1, "b": [1.0]}));
        assert_eq!(a, call_key(Some("alice"), "t", &json!({"b": [1], "a": 1})));
        assert_ne!(a, call_key(Some("bob"), "t", &json!({"a": 1, "b": [1]})));
        assert_ne!(a, call_key(None, "t", &json!({"a": 1, "b": [1]})));
        assert_ne!(a, call_key(Some("alice"), "u", &json!({"a": 1, "b": [1]})));
        // No string can pose as the identity and tool together.
        assert_ne!(
            call_key(Some("a\",\"b"), "c", &json!({})),
            call_key(Some("a"), "b\",\"c", &json!({}))
        );
    }

    #[test]
    fn waiters_are_bounded_and_answers_expire() {
        let kept = Idempotency::default();
        let key = [1; 32];
        assert!(matches!(
            kept.claim(key, 0, || Some(waiter(0))),
            Claim::First
        ));
        for n in 0..MAX_WAITERS as u32 {
            assert!(matches!(
                kept.claim(key, 0, || Some(waiter(n))),
                Claim::Waiting
            ));
        }
        assert!(matches!(
            kept.claim(key, 0, || Some(waiter(99))),
            Claim::TooManyWaiting
        ));
        // A caller whose session has all it may have waiting cannot wait either.
        let other = [3; 32];
        assert!(matches!(
            kept.claim(other, 0, || Some(waiter(0))),
            Claim::First
        ));
        assert!(matches!(
            kept.claim(other, 0, || None),
            Claim::TooManyWaiting
        ));
        let waiters = kept.answered(key, &result("{}"), 1000, 0);
        assert_eq!(waiters.len(), MAX_WAITERS);
        assert!(matches!(
            kept.claim(key, 999, || Some(waiter(1))),
            Claim::Answered(_)
        ));
        assert!(matches!(
            kept.claim(key, 1000, || Some(waiter(1))),
            Claim::First
        ));
        assert_eq!(kept.entries.lock().kept_bytes, 0);
    }

    #[test]
    fn tiny_answers_count_their_entries_against_the_bound_and_expired_ones_make_room() {
        let budget = 100 * (ENTRY_OVERHEAD + 2);
        let kept = Idempotency::with_budget(budget);
        for n in 0..1000u32 {
            let mut key = [0; 32];
            key[..4].copy_from_slice(&n.to_le_bytes());
            assert!(matches!(
                kept.claim(key, 0, || Some(waiter(n))),
                Claim::First
            ));
            kept.answered(key, &result("{}"), 1000, 0);
        }
        let held = kept.entries.lock().map.len();
        assert_eq!(held, 100, "no more entries than the bound pays for");
        // Once their window has passed, a new answer sweeps them out and is kept.
        let fresh = [9; 32];
        assert!(matches!(
            kept.claim(fresh, 2000, || Some(waiter(0))),
            Claim::First
        ));
        kept.answered(fresh, &result("{}"), 1000, 2000);
        assert!(matches!(
            kept.claim(fresh, 2001, || Some(waiter(0))),
            Claim::Answered(_)
        ));
        assert_eq!(kept.entries.lock().map.len(), 1);
    }

    #[test]
    fn errors_and_answers_past_the_memory_bound_are_not_kept() {
        let kept = Idempotency::default();
        let error = KeptAnswer {
            is_error: true,
            member: "{}".into(),
        };
        assert!(matches!(
            kept.claim([2; 32], 0, || Some(waiter(0))),
            Claim::First
        ));
        kept.answered([2; 32], &error, 1000, 0);
        assert!(matches!(
            kept.claim([2; 32], 1, || Some(waiter(0))),
            Claim::First
        ));

        let big = result(&"x".repeat(MAX_KEPT_BYTES / 2 + 1));
        for key in [[3; 32], [4; 32]] {
            assert!(matches!(
                kept.claim(key, 0, || Some(waiter(0))),
                Claim::First
            ));
            kept.answered(key, &big, 1000, 0);
        }
        assert!(matches!(
            kept.claim([3; 32], 1, || Some(waiter(0))),
            Claim::Answered(_)
        ));
        assert!(matches!(
            kept.claim([4; 32], 1, || Some(waiter(0))),
            Claim::First
        ));
    }

    #[test]
    fn a_call_that_ends_unanswered_releases_its_waiters_and_keeps_nothing() {
        let kept = Idempotency::default();
        assert!(matches!(
            kept.claim([5; 32], 0, || Some(waiter(0))),
            Claim::First
        ));
        assert!(matches!(
            kept.claim([5; 32], 0, || Some(waiter(1))),
            Claim::Waiting
        ));
        assert_eq!(kept.ended([5; 32]).len(), 1);
        assert!(matches!(
            kept.claim([5; 32], 0, || Some(waiter(0))),
            Claim::First
        ));
    }
}
