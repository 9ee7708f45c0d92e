//! Tool pins: the definition of each (server, tool) that was approved, kept where every
//! gateway sharing the state sees it, so a server that changes what a tool name means is
//! noticed by all of them (`docs/INTEGRITY.md`).
//!
//! A record holds the *pinned* entry (approved: trusted on first use, or by a person with
//! `toolgate pins approve`) and, when the server has since listed something else under the
//! name, the *pending* entry (what it lists now, waiting for approval). The gateway compares
//! what it sees with the pin; the store only keeps the two entries and changes them in one
//! atomic step per call ([`PinStore::observe`], [`PinStore::approve`]), so two gateways that
//! see a tool for the first time at once agree on one pin.
//!
//! Keys inside a server are [`tool_key`]s and [`INSTRUCTIONS_KEY`], so a tool cannot be named
//! to collide with the server's instructions.

mod memory;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::dsn::Dsn;
use crate::store::StoreError;

pub use memory::MemoryPins;
pub use sqlite::SqlitePins;

/// The key of the server's `initialize` instructions.
pub const INSTRUCTIONS_KEY: &str = "instructions";

/// The key of a tool.
pub fn tool_key(tool: &str) -> String {
    format!("tool:{tool}")
}

/// The tool a key names (`None` for the instructions).
pub fn tool_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("tool:")
}

/// One definition as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinEntry {
    /// SHA-256 (hex) of the canonical definition.
    pub digest: String,
    /// SHA-256 (hex) of the canonical definition without its name: equal for a renamed tool.
    pub body: String,
    /// The canonical definition (JSON text), for diffs.
    pub definition: String,
    /// When it was first seen (ms since the epoch, the observing gateway's clock).
    pub seen_ms: u64,
}

impl PinEntry {
    /// One line of text: `digest \t body \t seen_ms \t definition`. Canonical JSON has no
    /// raw tab, so the definition can come last unescaped (the Redis store keeps this form).
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.digest, self.body, self.seen_ms, self.definition
        )
    }

    pub(crate) fn decode(text: &str) -> Option<PinEntry> {
        let mut parts = text.splitn(4, '\t');
        Some(PinEntry {
            digest: parts.next()?.to_string(),
            body: parts.next()?.to_string(),
            seen_ms: parts.next()?.parse().ok()?,
            definition: parts.next()?.to_string(),
        })
    }
}

/// What the store holds for one (server, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRecord {
    pub server: String,
    pub key: String,
    /// The approved definition; `None` for a tool first seen after the server's first
    /// listing while new tools wait for approval.
    pub pinned: Option<PinEntry>,
    /// What the server lists now, when it differs from the pin.
    pub pending: Option<PinEntry>,
}

impl PinRecord {
    /// Whether what was seen last is what was approved.
    pub fn matches(&self, digest: &str) -> bool {
        self.pinned.as_ref().is_some_and(|p| p.digest == digest)
    }
}

/// One definition a gateway saw in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub key: String,
    pub entry: PinEntry,
}

/// Where pins live. Every method is atomic against every other caller of the same backend.
#[async_trait]
pub trait PinStore: std::fmt::Debug + Send + Sync + 'static {
    /// Records what a listing showed, in one step, and returns each record after it: an
    /// entry equal to the pin clears what was pending; a different one becomes pending
    /// (keeping when it was first seen, if it was already pending); a key without a pin is
    /// pinned when `pin_if_new`, and otherwise left pending.
    async fn observe(
        &self,
        server: &str,
        seen: Vec<Observation>,
        pin_if_new: bool,
    ) -> Result<Vec<PinRecord>, StoreError>;

    /// pending → pinned. `None` when nothing is pending for the key.
    async fn approve(&self, server: &str, key: &str) -> Result<Option<PinRecord>, StoreError>;

    /// Every record (of one server), ordered by server and key.
    async fn list(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError>;

    /// Forgets every record (of one server); the next listing is trusted on first use.
    /// Returns how many records went.
    async fn reset(&self, server: Option<&str>) -> Result<usize, StoreError>;
}

pub type SharedPins = Arc<dyn PinStore>;

/// The step [`PinStore::observe`] takes on one record, for the stores that run it in Rust
/// (the Redis script mirrors it). Returns the record after, and whether it changed.
pub(crate) fn observe_one(
    record: Option<PinRecord>,
    server: &str,
    seen: Observation,
    pin_if_new: bool,
) -> (PinRecord, bool) {
    let mut record = record.unwrap_or_else(|| PinRecord {
        server: server.to_string(),
        key: seen.key.clone(),
        pinned: None,
        pending: None,
    });
    let before = record.clone();
    match &record.pinned {
        None if pin_if_new => {
            record.pinned = Some(seen.entry);
            record.pending = None;
        }
        Some(pinned) if pinned.digest == seen.entry.digest => record.pending = None,
        _ => {
            let already = record
                .pending
                .as_ref()
                .is_some_and(|p| p.digest == seen.entry.digest);
            if !already {
                record.pending = Some(seen.entry);
            }
        }
    }
    let changed = record != before;
    (record, changed)
}

/// Opens the pin store of a state DSN: the same backend (and, for SQLite, the same file) as
/// the counters, namespaced by the same prefix.
pub fn open_pins(dsn: &str, prefix: &str) -> Result<SharedPins, StoreError> {
    Ok(match Dsn::parse(dsn)? {
        Dsn::Memory => Arc::new(MemoryPins::default()),
        Dsn::Sqlite(path) => Arc::new(SqlitePins::open(path, prefix)?),
        Dsn::Redis(dsn) => Arc::new(crate::redis::RedisPins::open(&dsn, prefix)?),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(digest: &str, seen_ms: u64) -> PinEntry {
        PinEntry {
            digest: digest.into(),
            body: format!("body-{digest}"),
            definition: format!("{{\"d\":\"{digest}\"}}"),
            seen_ms,
        }
    }

    fn seen(digest: &str, seen_ms: u64) -> Observation {
        Observation {
            key: tool_key("t"),
            entry: entry(digest, seen_ms),
        }
    }

    #[test]
    fn entries_round_trip_through_their_text() {
        let e = entry("abc", 17);
        assert_eq!(PinEntry::decode(&e.encode()), Some(e));
        assert_eq!(PinEntry::decode("x\ty"), None);
    }

    #[test]
    fn first_sight_pins_or_waits() {
        let (r, changed) = observe_one(None, "s", seen("a", 1), true);
        assert!(changed && r.matches("a") && r.pending.is_none());
        let (r, _) = observe_one(None, "s", seen("a", 1), false);
        assert!(r.pinned.is_none());
        assert_eq!(r.pending.unwrap().digest, "a");
    }

    #[test]
    fn a_change_waits_and_keeps_when_it_was_first_seen() {
        let (r, _) = observe_one(None, "s", seen("a", 1), true);
        let (r, changed) = observe_one(Some(r), "s", seen("b", 2), true);
        assert!(changed && r.matches("a"));
        let (r, changed) = observe_one(Some(r), "s", seen("b", 3), true);
        assert!(!changed);
        assert_eq!(r.pending.as_ref().unwrap().seen_ms, 2);
        // Back to the approved definition: nothing waits any more.
        let (r, changed) = observe_one(Some(r), "s", seen("a", 4), true);
        assert!(changed && r.pending.is_none());
    }
}
