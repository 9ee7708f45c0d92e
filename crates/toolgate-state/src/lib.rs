//! Counter stores: where toolgate keeps the counts its limits are checked against.
//!
//! A tool call reserves all its counters at once ([`CounterStore::reserve`], all or none),
//! is forwarded, and is then settled: [`CounterStore::commit`] when it went through,
//! [`CounterStore::rollback`] when it did not. Every store keeps one count per UTC-aligned
//! fixed window and derives sliding windows from the current and previous ones, so the
//! window arithmetic (`windows`) and the all-or-none check (`reservation`) are shared and
//! the stores differ only in where counts live and how they are locked:
//!
//! - [`MemoryStore`] (`memory:`): one process, no persistence; for tests.
//! - [`SqliteStore`] (`sqlite:PATH`, the default): one file, safe across processes.
//! - [`RedisStore`] (`redis://…`, `rediss://…`, `redis+cluster://…`): shared by gateways on
//!   many machines; Lua scripts mirror the same check server-side, with the server's clock.
//!
//! Time comes from an injected [`Clock`], except in Redis, where the server's clock is the
//! one every gateway must agree on. See `docs/STATE.md` for the key layout and guarantees.
//!
//! The same backends keep [`approvals`]: calls waiting for a person's decision, with atomic
//! state transitions, so every gateway and the `toolgate approvals` command see one truth
//! (`docs/APPROVALS.md`),
//! and [`pins`]: the approved definition of each tool of each server (`docs/INTEGRITY.md`).

pub mod approvals;
mod clock;
mod dsn;
mod memory;
pub mod pins;
mod redis;
mod reservation;
mod sqlite;
mod store;
mod windows;

pub use self::redis::{
    install_crypto_provider, RedisApprovals, RedisDsn, RedisOptions, RedisPins, RedisStore,
    RedisTime,
};
pub use approvals::{
    open_approvals, Admission, AdmitOutcome, ApprovalError, ApprovalRecord, ApprovalState,
    ApprovalStore, ListFilter, MemoryApprovals, NewApproval, SharedApprovals, SqliteApprovals,
    Verdict,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dsn::{open_store, Dsn};
pub use memory::MemoryStore;
pub use pins::{
    open_pins, MemoryPins, Observation, PinEntry, PinRecord, PinStore, SharedPins, SqlitePins,
};
pub use sqlite::here::reserve_here;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{
    AfterReserve, CounterStore, ReserveItem, ReserveOutcome, ReserveResult, SharedStore,
    StoreError, Taken, Ticket,
};
