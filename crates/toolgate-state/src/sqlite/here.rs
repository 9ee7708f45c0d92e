//! A reservation run on the calling thread, when that thread is allowed to and nothing
//! holds the database.
//!
//! Handing a reservation to the store's thread costs a thread wake-up each way, and with one
//! call in flight that hand-over is a large part of what SQLite adds to a call. A thread that
//! owns its input (a stdio reader thread) may instead run the transaction itself, on a second
//! connection of its own store that never waits for a lock: when another connection (the
//! store's thread, another gateway process) holds the write lock, or another thread is
//! already using this connection, the reservation goes to the store's thread as before.
//! Exactness is the file lock's, as between processes: both connections write under
//! `BEGIN IMMEDIATE`.
//!
//! A reader thread allows this only for the last message of a burst ([`reserve_here`]):
//! while more input waits, the store's thread committing beside it is worth more than the
//! hand-over saved (docs/BENCHMARKS.md).

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::worker::reserve;
use crate::clock::Clock;
use crate::store::{ReserveItem, ReserveOutcome};

thread_local! {
    static HERE_ALLOWED: Cell<bool> = const { Cell::new(false) };
}

/// Whether an SQLite reservation asked for on this thread, with a continuation, may run on
/// this thread. Only for a thread that may block on the database's own I/O (never on a lock)
/// and has nothing else to do meanwhile; off by default.
pub fn reserve_here(allowed: bool) {
    HERE_ALLOWED.with(|a| a.set(allowed));
}

pub(crate) fn allowed() -> bool {
    HERE_ALLOWED.with(Cell::get)
}

pub(crate) struct Here {
    conn: Mutex<Connection>,
    prefix: String,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    /// When the store's thread next deletes expired windows. A reservation made once that is
    /// due goes to the store's thread, which cleans up first: with every call reserved here,
    /// the store's thread would otherwise never wake to do it.
    next_cleanup_ms: Arc<AtomicU64>,
}

impl Here {
    /// `conn` is a connection of its own to the store's file; it is made never to wait
    /// for a lock.
    pub fn new(
        conn: Connection,
        prefix: String,
        clock: Arc<dyn Clock>,
        path: PathBuf,
        next_cleanup_ms: Arc<AtomicU64>,
    ) -> rusqlite::Result<Here> {
        conn.busy_timeout(Duration::ZERO)?;
        Ok(Here {
            conn: Mutex::new(conn),
            prefix,
            clock,
            path,
            next_cleanup_ms,
        })
    }

    /// Reserves `items` in a transaction of their own on this thread. `None` when that could
    /// not be done without waiting (the connection is in use, the write lock is held
    /// elsewhere), when a cleanup is due, or when it failed: the caller then hands the
    /// reservation to the store's thread, which reports its own errors. Nothing of a `None`
    /// was written.
    pub fn try_reserve(&self, items: &[ReserveItem]) -> Option<ReserveOutcome> {
        let mut conn = self.conn.try_lock().ok()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ok()?;
        // Read once the write lock is held, as the store's thread does; a due cleanup drops
        // the transaction unused (about once a minute).
        let now = self.clock.now_ms();
        if now >= self.next_cleanup_ms.load(Ordering::Acquire) {
            return None;
        }
        let outcome = reserve(&tx, &self.prefix, items, now, &self.path).ok()?;
        tx.commit().ok()?;
        Some(outcome)
    }
}
