//! The thread that owns the SQLite connection and runs every statement.
//!
//! Why one dedicated thread fed by a channel rather than `spawn_blocking` per call: SQLite
//! admits one writer at a time anyway, so a pool of blocking threads would only queue on a
//! connection mutex (and `spawn_blocking` would grow the pool under load instead of pushing
//! back); one thread keeps one connection with its prepared-statement cache warm, the
//! bounded channel gives back-pressure, and the async side only ever awaits a reply.
//!
//! Each reservation is one `BEGIN IMMEDIATE` transaction — read the windows, check, upsert,
//! commit — so it is atomic against every other process sharing the file, not just this one.
//! A reply that can no longer be delivered (the caller was cancelled) for a reservation that
//! was made is undone at once, so a cancelled `reserve` never leaks quota.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use toolgate_policy::{Amount, Window};

use super::error::store_error;
use crate::clock::Clock;
use crate::reservation::{self, Counts, Verdict};
use crate::store::{ReserveItem, ReserveOutcome, StoreError, Taken, Ticket};
use crate::windows::{self, Span};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(crate) enum Request {
    Reserve {
        items: Vec<ReserveItem>,
        reply: Reply<Delivery>,
    },
    Rollback {
        ticket: Ticket,
        reply: Reply<()>,
    },
    Current {
        key: String,
        window: Window,
        reply: Reply<Amount>,
    },
}

/// A reserve's outcome on its way to the caller. If it is dropped before the caller takes
/// it — the caller was cancelled after the worker answered but before it read the answer —
/// a reservation it carries is queued for rollback, so no ticket is ever lost in transit.
pub(crate) struct Delivery {
    outcome: ReserveOutcome,
    armed: bool,
    undo: mpsc::WeakSender<Request>,
}

impl Delivery {
    fn new(outcome: ReserveOutcome, undo: mpsc::WeakSender<Request>) -> Delivery {
        Delivery {
            armed: matches!(outcome, ReserveOutcome::Reserved(_)),
            outcome,
            undo,
        }
    }

    /// Hands the outcome over; from here on the caller settles it.
    pub fn into_outcome(mut self) -> ReserveOutcome {
        self.armed = false;
        // The placeholder left behind is never read: `Drop` only acts while armed.
        std::mem::replace(
            &mut self.outcome,
            ReserveOutcome::Reserved(Ticket { taken: Vec::new() }),
        )
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let ReserveOutcome::Reserved(ticket) = &mut self.outcome else {
            return;
        };
        let ticket = std::mem::replace(ticket, Ticket { taken: Vec::new() });
        // No sender left means the store is gone, and with it anyone who could use the
        // quota; a full queue is the one case that can still leak, and is logged.
        if let Some(requests) = self.undo.upgrade() {
            let (reply, _) = oneshot::channel();
            if requests
                .try_send(Request::Rollback { ticket, reply })
                .is_err()
            {
                tracing::error!("could not queue the undo of an abandoned reservation");
            }
        }
    }
}

pub(crate) struct Worker {
    pub conn: Connection,
    pub path: PathBuf,
    pub prefix: String,
    pub clock: Arc<dyn Clock>,
    pub cleanup_interval: Duration,
    /// This worker's own queue, for undoing reservations whose delivery failed.
    pub undo: mpsc::WeakSender<Request>,
    /// Clock time at which the next cleanup is due; 0 runs one on the first request.
    pub next_cleanup_ms: u64,
}

/// Rows one cleanup pass deletes at most, so it never holds the write lock for long; a
/// pass that hits the cap schedules the next one immediately.
const CLEANUP_BATCH: i64 = 10_000;

const SELECT_WINDOWS: &str = "SELECT start_ms, value FROM counters
     WHERE prefix = ?1 AND key = ?2 AND length_ms = ?3 AND start_ms IN (?4, ?5)";
const UPSERT: &str = "INSERT INTO counters (prefix, key, length_ms, start_ms, value, expires_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (prefix, key, length_ms, start_ms) DO UPDATE SET value = value + excluded.value";
const SUBTRACT: &str = "UPDATE counters SET value = max(value - ?5, 0)
     WHERE prefix = ?1 AND key = ?2 AND length_ms = ?3 AND start_ms = ?4";
const DELETE_EXPIRED: &str = "DELETE FROM counters
     WHERE (prefix, key, length_ms, start_ms) IN (
         SELECT prefix, key, length_ms, start_ms FROM counters WHERE expires_ms <= ?1 LIMIT ?2)";

impl Worker {
    /// Serves requests until every sender is gone (the store was dropped), then closes the
    /// connection.
    pub fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while let Some(request) = requests.blocking_recv() {
            match request {
                Request::Reserve { items, reply } => {
                    self.cleanup_if_due();
                    let outcome = self
                        .reserve(&items)
                        .map(|o| Delivery::new(o, self.undo.clone()));
                    if let Err(Ok(undelivered)) = reply.send(outcome) {
                        // The caller stopped waiting: nobody holds this ticket to settle it.
                        // Undone here rather than queued, so a full queue cannot lose it.
                        if let ReserveOutcome::Reserved(ticket) = undelivered.into_outcome() {
                            if let Err(err) = self.rollback(&ticket) {
                                tracing::error!(error = %err, "could not undo an abandoned reservation");
                            }
                        }
                    }
                }
                Request::Rollback { ticket, reply } => {
                    let _ = reply.send(self.rollback(&ticket));
                }
                Request::Current { key, window, reply } => {
                    let _ = reply.send(self.current(&key, window));
                }
            }
        }
    }

    fn reserve(&mut self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError> {
        let path = &self.path;
        let fail = |e: rusqlite::Error| store_error(path, "reserving", &e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        // Read after the write lock is held: the window is the one current when this
        // process is the only writer.
        let now = self.clock.now_ms();
        let verdict = reservation::check(items, now, |item, span| {
            read_counts(&tx, &self.prefix, item, span).map_err(fail)
        })?;
        if let Verdict::Exceeded { index, current } = verdict {
            // Dropping `tx` rolls back the (read-only) transaction.
            return Ok(ReserveOutcome::Exceeded { index, current });
        }
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(fail)?;
            for item in items {
                let start = item.window.start_of(now);
                upsert
                    .execute(params![
                        self.prefix,
                        item.key,
                        sql_ms(item.window.length_ms),
                        sql_ms(start),
                        item.amount.to_micros(),
                        sql_ms(windows::expires_at(start, item.window.length_ms)),
                    ])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(ReserveOutcome::Reserved(reservation::ticket(items, now)))
    }

    fn rollback(&mut self, ticket: &Ticket) -> Result<(), StoreError> {
        let path = &self.path;
        let fail = |e: rusqlite::Error| store_error(path, "rolling back", &e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        {
            let mut subtract = tx.prepare_cached(SUBTRACT).map_err(fail)?;
            for Taken {
                key,
                window,
                window_start_ms,
                amount,
            } in &ticket.taken
            {
                // Exactly the window the amount went to; a row already cleaned up matches
                // nothing, and a newer window is never touched.
                subtract
                    .execute(params![
                        self.prefix,
                        key,
                        sql_ms(window.length_ms),
                        sql_ms(*window_start_ms),
                        amount.to_micros(),
                    ])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    fn current(&mut self, key: &str, window: Window) -> Result<Amount, StoreError> {
        let now = self.clock.now_ms();
        let span = Span::at(window, now);
        let item = ReserveItem {
            key: key.to_owned(),
            window,
            max: Amount::ZERO,
            amount: Amount::ZERO,
        };
        // One SELECT reads both windows from one snapshot; no transaction needed.
        let counts = read_counts(&self.conn, &self.prefix, &item, &span)
            .map_err(|e| store_error(&self.path, "reading", &e))?;
        Ok(Amount::from_micros(span.estimate(
            window.mode,
            counts.current,
            counts.previous,
        )))
    }

    /// Deletes windows older than their counter's previous window, across every prefix in
    /// the file: expiry depends only on the time, so any gateway may clean for all. Runs on
    /// a timer, not per call, and a failure only delays it.
    fn cleanup_if_due(&mut self) {
        let now = self.clock.now_ms();
        if now < self.next_cleanup_ms {
            return;
        }
        let interval = u64::try_from(self.cleanup_interval.as_millis()).unwrap_or(u64::MAX);
        self.next_cleanup_ms = now.saturating_add(interval);
        let deleted = self
            .conn
            .prepare_cached(DELETE_EXPIRED)
            .and_then(|mut delete| delete.execute(params![sql_ms(now), CLEANUP_BATCH]));
        match deleted {
            Ok(n) if i64::try_from(n).unwrap_or(i64::MAX) >= CLEANUP_BATCH => {
                self.next_cleanup_ms = now;
            }
            Ok(n) => tracing::debug!(deleted = n, "state database cleanup"),
            Err(err) => {
                let err = store_error(&self.path, "cleaning up", &err);
                tracing::warn!(error = %err, "state database cleanup failed; will retry");
            }
        }
    }
}

fn read_counts(
    conn: &Connection,
    prefix: &str,
    item: &ReserveItem,
    span: &Span,
) -> rusqlite::Result<Counts> {
    let mut select = conn.prepare_cached(SELECT_WINDOWS)?;
    let current = sql_ms(span.current_start);
    // Without a previous window, ask for the current one twice: it matches one row at most.
    let previous = span.previous_start.map_or(current, sql_ms);
    let mut rows = select.query(params![
        prefix,
        item.key,
        sql_ms(item.window.length_ms),
        current,
        previous
    ])?;
    let mut counts = Counts::default();
    while let Some(row) = rows.next()? {
        let start: i64 = row.get(0)?;
        let value: i64 = row.get(1)?;
        if start == current {
            counts.current = value;
        } else {
            counts.previous = value;
        }
    }
    Ok(counts)
}

/// Milliseconds as SQLite stores them (signed 64-bit); times past the year 292 million
/// saturate rather than wrap.
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            taken: vec![Taken {
                key: "k".into(),
                window: Window::fixed(60_000),
                window_start_ms: 0,
                amount: Amount::ONE,
            }],
        }
    }

    #[test]
    fn a_reservation_dropped_in_transit_is_queued_for_rollback() {
        let (requests, mut queue) = mpsc::channel(4);
        let delivery = Delivery::new(ReserveOutcome::Reserved(ticket()), requests.downgrade());
        drop(delivery);
        match queue.try_recv() {
            Ok(Request::Rollback { ticket: undone, .. }) => assert_eq!(undone, ticket()),
            _ => panic!("expected a queued rollback"),
        }
    }

    #[test]
    fn a_delivered_reservation_is_left_to_the_caller() {
        let (requests, mut queue) = mpsc::channel(4);
        let delivery = Delivery::new(ReserveOutcome::Reserved(ticket()), requests.downgrade());
        assert_eq!(delivery.into_outcome(), ReserveOutcome::Reserved(ticket()));
        assert!(queue.try_recv().is_err());
        let refused = ReserveOutcome::Exceeded {
            index: 0,
            current: Amount::ONE,
        };
        drop(Delivery::new(refused, requests.downgrade()));
        assert!(queue.try_recv().is_err());
    }
}
