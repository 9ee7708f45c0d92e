//! The thread that owns the SQLite connection and runs every statement.
//!
//! Why one dedicated thread fed by a channel rather than `spawn_blocking` per call: SQLite
//! admits one writer at a time anyway, so a pool of blocking threads would only queue on a
//! connection mutex (and `spawn_blocking` would grow the pool under load instead of pushing
//! back); one thread keeps one connection with its prepared-statement cache warm, the
//! bounded channel gives back-pressure, and the async side only ever awaits a reply.
//!
//! Group commit: the thread takes every request waiting in its queue (up to [`MAX_BATCH`])
//! and runs the reservations and rollbacks among them in one `BEGIN IMMEDIATE` transaction —
//! for each call, read the windows, check, upsert — and the whole batch is atomic against
//! every other process sharing the file. No call has a savepoint of its own (two parsed
//! statements a call): a call whose step fails rolls the whole transaction back, and the
//! batch runs again one call per transaction, so each call stays all-or-none.
//! A call reads what the calls before it in the batch wrote, exactly as if each had its own
//! transaction in that order; only the commit is shared, which is what makes a busy store
//! cheap. Replies go out after the commit: no call is forwarded on a reservation that could
//! still be lost. A reply that can no longer be delivered (the caller was cancelled) for a
//! reservation that was made is undone at once, so a cancelled `reserve` never leaks quota.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use toolgate_policy::{Amount, Window};

use super::error::store_error;
use crate::clock::Clock;
use crate::reservation::{self, Counts, Verdict};
use crate::store::{AfterReserve, ReserveItem, ReserveOutcome, StoreError, Taken, Ticket};
use crate::windows::{self, Span};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(crate) enum Request {
    Reserve {
        items: Vec<ReserveItem>,
        reply: ReserveReply,
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

/// Where a reservation's outcome goes.
pub(crate) enum ReserveReply {
    /// To a caller awaiting it.
    Awaited(Reply<Delivery>),
    /// To a continuation, run on this thread once the batch has committed.
    Then(AfterReserve),
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
    /// Clock time at which the next cleanup is due; 0 runs one on the first request. Shared
    /// with the reservations run on callers' threads (`here`), which leave a due cleanup's
    /// reservation to this thread.
    pub next_cleanup_ms: Arc<AtomicU64>,
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

/// Requests one transaction takes at most: enough that a busy store commits rarely, few enough
/// that the write lock is never held for long.
const MAX_BATCH: usize = 256;

/// Why a batch's transaction was not committed.
enum Failure {
    /// It could not start or commit (what it was doing, and why): every change of it fails.
    Transaction(&'static str, rusqlite::Error),
    /// One change failed: the others may succeed on their own.
    Step(StoreError),
}

impl Failure {
    fn into_error(self, path: &std::path::Path) -> StoreError {
        match self {
            Failure::Transaction(doing, error) => store_error(path, doing, &error),
            Failure::Step(error) => error,
        }
    }
}

/// What one request of a batch produced, to be sent once the batch has committed.
enum Answer {
    Reserve(ReserveReply, Result<ReserveOutcome, StoreError>),
    Rollback(Reply<()>, Result<(), StoreError>),
}

impl Worker {
    /// Serves requests until every sender is gone (the store was dropped), then closes the
    /// connection.
    pub fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = requests.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.serve(&mut batch);
        }
    }

    /// Runs one batch in the order it came: consecutive changes share one transaction; a read
    /// between them sees every change queued before it, as if each had run alone.
    fn serve(&mut self, batch: &mut Vec<Request>) {
        let mut changes = Vec::with_capacity(batch.len());
        for request in batch.drain(..) {
            match request {
                Request::Current { key, window, reply } => {
                    self.commit_changes(std::mem::take(&mut changes));
                    let _ = reply.send(self.current(&key, window));
                }
                change => changes.push(change),
            }
        }
        self.commit_changes(changes);
    }

    /// Applies `changes` in one transaction, then answers each.
    fn commit_changes(&mut self, changes: Vec<Request>) {
        if changes.is_empty() {
            return;
        }
        self.cleanup_if_due();
        for answer in self.apply(changes) {
            match answer {
                Answer::Reserve(reply, outcome) => self.deliver(reply, outcome),
                Answer::Rollback(reply, result) => {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Applies reservations and rollbacks in one transaction and commits; each is answered as
    /// if it had run alone, in order. A change that fails takes the transaction with it (it
    /// is rolled back, nothing of it written), and the batch then runs again one change per
    /// transaction, so only the failing change fails. When a transaction cannot start or
    /// commit, every change of it fails.
    fn apply(&mut self, changes: Vec<Request>) -> Vec<Answer> {
        let results = match self.run_in_one_transaction(&changes) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(Failure::Step(error)) if changes.len() == 1 => vec![Err(error)],
            Err(Failure::Step(_)) => changes
                .iter()
                .map(|change| {
                    self.run_in_one_transaction(std::slice::from_ref(change))
                        .map(|outcomes| outcomes.into_iter().next().flatten())
                        .map_err(|failure| failure.into_error(&self.path))
                })
                .collect(),
            Err(Failure::Transaction(doing, error)) => changes
                .iter()
                .map(|_| Err(store_error(&self.path, doing, &error)))
                .collect(),
        };
        changes
            .into_iter()
            .zip(results)
            .filter_map(|(change, result)| match (change, result) {
                (Request::Reserve { reply, .. }, Ok(Some(outcome))) => {
                    Some(Answer::Reserve(reply, Ok(outcome)))
                }
                (Request::Reserve { reply, .. }, Err(error)) => {
                    Some(Answer::Reserve(reply, Err(error)))
                }
                (Request::Rollback { reply, .. }, result) => {
                    Some(Answer::Rollback(reply, result.map(drop)))
                }
                // Every reservation gets an outcome, and reads are not changes. Were one left
                // without, its reply would be dropped, which its caller takes for "unavailable".
                _ => None,
            })
            .collect()
    }

    /// Runs `changes` in one write transaction, without savepoints: a step that fails leaves
    /// the transaction to be rolled back whole (dropping it does that). Gives each change its
    /// outcome: a reservation's, or `None` for a rollback.
    fn run_in_one_transaction(
        &mut self,
        changes: &[Request],
    ) -> Result<Vec<Option<ReserveOutcome>>, Failure> {
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Failure::Transaction("reserving", e))?;
        // Read after the write lock is held: the window is the one current when this
        // process is the only writer.
        let now = self.clock.now_ms();
        let mut applied = Vec::with_capacity(changes.len());
        for change in changes {
            applied.push(match change {
                Request::Reserve { items, .. } => {
                    let outcome = reserve(&tx, &self.prefix, items, now, path);
                    Some(outcome.map_err(Failure::Step)?)
                }
                Request::Rollback { ticket, .. } => {
                    subtract(&tx, &self.prefix, ticket)
                        .map_err(|e| Failure::Step(store_error(path, "rolling back", &e)))?;
                    None
                }
                // Reads are served between transactions (`serve`).
                Request::Current { .. } => None,
            });
        }
        tx.commit()
            .map_err(|e| Failure::Transaction("committing", e))?;
        Ok(applied)
    }

    /// Hands a reservation's outcome to its caller; one nobody waits for any more is undone.
    fn deliver(&mut self, reply: ReserveReply, outcome: Result<ReserveOutcome, StoreError>) {
        let reply = match reply {
            ReserveReply::Awaited(reply) => reply,
            ReserveReply::Then(then) => {
                // A continuation that panics must not take the store's thread with it.
                let run = std::panic::AssertUnwindSafe(|| then.run(outcome));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("a reservation's continuation panicked");
                }
                return;
            }
        };
        let outcome = outcome.map(|o| Delivery::new(o, self.undo.clone()));
        if let Err(Ok(undelivered)) = reply.send(outcome) {
            // The caller stopped waiting: nobody holds this ticket to settle it. Undone here
            // rather than queued, so a full queue cannot lose it.
            if let ReserveOutcome::Reserved(ticket) = undelivered.into_outcome() {
                if let Err(err) = self.rollback(&ticket) {
                    tracing::error!(error = %err, "could not undo an abandoned reservation");
                }
            }
        }
    }

    /// A rollback on its own (an undelivered reservation), in a transaction of its own.
    fn rollback(&mut self, ticket: &Ticket) -> Result<(), StoreError> {
        let path = &self.path;
        let fail = |e: rusqlite::Error| store_error(path, "rolling back", &e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        subtract(&tx, &self.prefix, ticket).map_err(fail)?;
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
        if now < self.next_cleanup_ms.load(Ordering::Acquire) {
            return;
        }
        let interval = u64::try_from(self.cleanup_interval.as_millis()).unwrap_or(u64::MAX);
        self.next_cleanup_ms
            .store(now.saturating_add(interval), Ordering::Release);
        let deleted = self
            .conn
            .prepare_cached(DELETE_EXPIRED)
            .and_then(|mut delete| delete.execute(params![sql_ms(now), CLEANUP_BATCH]));
        match deleted {
            Ok(n) if i64::try_from(n).unwrap_or(i64::MAX) >= CLEANUP_BATCH => {
                self.next_cleanup_ms.store(now, Ordering::Release);
            }
            Ok(n) => tracing::debug!(deleted = n, "state database cleanup"),
            Err(err) => {
                let err = store_error(&self.path, "cleaning up", &err);
                tracing::warn!(error = %err, "state database cleanup failed; will retry");
            }
        }
    }
}

/// Checks and records one call's reservation: every counter or none.
pub(super) fn reserve(
    conn: &Connection,
    prefix: &str,
    items: &[ReserveItem],
    now: u64,
    path: &std::path::Path,
) -> Result<ReserveOutcome, StoreError> {
    let fail = |e: rusqlite::Error| store_error(path, "reserving", &e);
    let verdict = reservation::check(items, now, |item, span| {
        read_counts(conn, prefix, item, span).map_err(fail)
    })?;
    if let Verdict::Exceeded { index, current } = verdict {
        return Ok(ReserveOutcome::Exceeded { index, current });
    }
    let mut upsert = conn.prepare_cached(UPSERT).map_err(fail)?;
    for item in items {
        let start = item.window.start_of(now);
        upsert
            .execute(params![
                prefix,
                item.key,
                sql_ms(item.window.length_ms),
                sql_ms(start),
                item.amount.to_micros(),
                sql_ms(windows::expires_at(start, item.window.length_ms)),
            ])
            .map_err(fail)?;
    }
    Ok(ReserveOutcome::Reserved(reservation::ticket(items, now)))
}

/// Gives back what a ticket took, from exactly the windows it went to; a row already cleaned
/// up matches nothing, and a newer window is never touched.
fn subtract(conn: &Connection, prefix: &str, ticket: &Ticket) -> rusqlite::Result<()> {
    let mut subtract = conn.prepare_cached(SUBTRACT)?;
    for Taken {
        key,
        window,
        window_start_ms,
        amount,
    } in &ticket.taken
    {
        subtract.execute(params![
            prefix,
            key,
            sql_ms(window.length_ms),
            sql_ms(*window_start_ms),
            amount.to_micros(),
        ])?;
    }
    Ok(())
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;

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

    fn item(key: &str) -> ReserveItem {
        ReserveItem {
            key: key.into(),
            window: Window::fixed(60_000),
            max: Amount::from_units(10).unwrap(),
            amount: Amount::ONE,
        }
    }

    /// A batch in which one call's write fails: the batch runs again call by call, so the
    /// others are reserved exactly once and the failing one leaves nothing behind.
    #[test]
    fn a_failing_call_fails_alone_and_its_batch_counts_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let conn = super::super::schema::open(&path, Duration::from_secs(5)).unwrap();
        // Any write to the counter `poison` fails, after its call has read its windows.
        conn.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON counters WHEN NEW.key = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
        let (requests, _queue) = mpsc::channel(4);
        let mut worker = Worker {
            conn,
            path: path.clone(),
            prefix: "p".into(),
            clock: Arc::new(ManualClock::new(1_000)),
            cleanup_interval: Duration::from_secs(60),
            undo: requests.downgrade(),
            next_cleanup_ms: Arc::new(AtomicU64::new(u64::MAX)),
        };
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for key in ["a", "poison", "a", "b"] {
            let (reply, answer) = oneshot::channel();
            batch.push(Request::Reserve {
                items: vec![item(key)],
                reply: ReserveReply::Awaited(reply),
            });
            answers.push(answer);
        }
        worker.serve(&mut batch);
        let outcomes: Vec<_> = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap().map(Delivery::into_outcome))
            .collect();
        assert!(matches!(outcomes[0], Ok(ReserveOutcome::Reserved(_))));
        let error = outcomes[1].as_ref().unwrap_err().to_string();
        assert!(
            error.contains("reserving") && error.contains("RAISE"),
            "{error}"
        );
        assert!(matches!(outcomes[2], Ok(ReserveOutcome::Reserved(_))));
        assert!(matches!(outcomes[3], Ok(ReserveOutcome::Reserved(_))));
        let mut count = |key: &str| worker.current(key, Window::fixed(60_000)).unwrap();
        assert_eq!(count("a"), Amount::from_units(2).unwrap());
        assert_eq!(count("b"), Amount::ONE);
        assert_eq!(count("poison"), Amount::ZERO);
    }
}
