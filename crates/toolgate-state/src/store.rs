//! The contract every counter store keeps.
//!
//! A call's counters are reserved together — all or none — before the call is forwarded,
//! then settled: committed when the server answers, rolled back when it fails. Reserving
//! increments at once, so concurrent calls see each other's reservations and a limit is
//! never overshot; a rollback only ever subtracts from the window it added to.

use std::sync::Arc;

use async_trait::async_trait;
use toolgate_policy::{Amount, Window};

/// One counter to increment, with the limit it must stay within.
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveItem {
    /// The policy's counter key (`create_issue._rate_hour`); the store adds its prefix and
    /// the window.
    pub key: String,
    pub window: Window,
    pub max: Amount,
    pub amount: Amount,
}

impl From<&toolgate_policy::Reservation> for ReserveItem {
    /// What a decision's reservation asks of a store.
    fn from(r: &toolgate_policy::Reservation) -> ReserveItem {
        ReserveItem {
            key: r.key.clone(),
            window: r.window,
            max: r.max,
            amount: r.amount,
        }
    }
}

/// Proof of a reservation, needed to settle it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub taken: Vec<Taken>,
}

/// What one item of a reservation added, and to which window.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub key: String,
    pub window: Window,
    /// Start (ms) of the fixed window the amount was added to.
    pub window_start_ms: u64,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReserveOutcome {
    Reserved(Ticket),
    /// Item `index` would exceed its max; nothing was reserved.
    Exceeded {
        index: usize,
        /// The value item `index` was checked against: the counter's current value (the
        /// estimate, for a sliding window) plus what earlier items of the same call would
        /// have added to the same counter. `current + amount > max`.
        current: Amount,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state backend unavailable: {0}")]
    Unavailable(String),
    #[error("state backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Reserves every item or none.
    async fn reserve(&self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError>;
    /// The call went through: the reservation stands.
    async fn commit(&self, ticket: &Ticket) -> Result<(), StoreError>;
    /// The call did not happen: give the amounts back to the windows they were taken from.
    async fn rollback(&self, ticket: &Ticket) -> Result<(), StoreError>;
    /// The current value of a counter (sliding windows: the weighted estimate).
    async fn current(&self, key: &str, window: Window) -> Result<Amount, StoreError>;
    /// Whether `reserve` answers at once, waiting on no I/O and no other thread. A caller
    /// may then reserve in line instead of on a task of its own, which a store that waits
    /// needs so that a slow reservation never holds up unrelated messages.
    fn reserves_at_once(&self) -> bool {
        false
    }
    /// Reserves, then runs `then` with the outcome. A store with a thread of its own runs
    /// `then` on that thread as soon as the outcome is final (after its commit), so the
    /// caller's continuation costs no wake-up of another thread; `then` must therefore not
    /// block. By default `then` runs on a task. Needs a Tokio runtime context.
    fn reserve_then(self: Arc<Self>, items: Vec<ReserveItem>, then: AfterReserve) {
        tokio::spawn(async move { then.run(self.reserve(&items).await) });
    }
}

/// What runs once a reservation's outcome is known: exactly once, even if the store drops it
/// unanswered (it then runs with `StoreError::Unavailable`).
pub struct AfterReserve(Option<Box<dyn FnOnce(ReserveResult) + Send>>);

pub type ReserveResult = Result<ReserveOutcome, StoreError>;

impl AfterReserve {
    pub fn new(then: impl FnOnce(ReserveResult) + Send + 'static) -> AfterReserve {
        AfterReserve(Some(Box::new(then)))
    }

    pub fn run(mut self, outcome: ReserveResult) {
        if let Some(then) = self.0.take() {
            then(outcome);
        }
    }
}

impl Drop for AfterReserve {
    fn drop(&mut self) {
        if let Some(then) = self.0.take() {
            then(Err(StoreError::Unavailable(
                "the counter store stopped before answering".into(),
            )));
        }
    }
}

pub type SharedStore = Arc<dyn CounterStore>;
