//! `sqlite:PATH` — counters in an SQLite file, the default store.
//!
//! Persistent across restarts and safe for several gateway processes sharing one file:
//! every reservation is a single `BEGIN IMMEDIATE` transaction, so SQLite's file lock
//! serialises writers from all processes, and the file runs in WAL mode so readers never
//! wait. All SQLite work happens on one dedicated thread (see `worker`); the async methods
//! only send a request and await the reply, so the runtime is never blocked.

pub(crate) mod error;
pub(crate) mod here;
pub(crate) mod schema;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use toolgate_policy::{Amount, Window};

use crate::clock::Clock;
use crate::reservation;
use crate::store::{AfterReserve, CounterStore, ReserveItem, ReserveOutcome, StoreError, Ticket};
use here::Here;
use worker::{Request, ReserveReply, Worker};

/// Requests queued for the worker before callers wait to enqueue (back-pressure).
const QUEUE_DEPTH: usize = 1024;

/// Tunables for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a statement waits for another process's lock before the store reports
    /// itself unavailable.
    pub busy_timeout: Duration,
    /// How often (clock time) windows older than the previous one are deleted.
    pub cleanup_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            cleanup_interval: Duration::from_secs(60),
        }
    }
}

/// Counters in an SQLite file. Dropping the store (every clone) stops its worker thread
/// and closes the file.
#[derive(Clone)]
pub struct SqliteStore {
    requests: mpsc::Sender<Request>,
    /// For reservations a thread may run itself (`here`).
    here: Arc<Here>,
    path: Arc<Path>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens or creates the state file at `path` with the default options.
    pub fn open(
        path: impl AsRef<Path>,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, prefix, clock, SqliteOptions::default())
    }

    /// Opens or creates the state file at `path`: creates a missing parent directory (mode
    /// 0700) and the schema, and starts the worker thread. Synchronous: meant for start-up.
    pub fn open_with(
        path: impl AsRef<Path>,
        prefix: &str,
        clock: Arc<dyn Clock>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let conn = schema::open(&path, options.busy_timeout)?;
        // 0: the first request runs a cleanup.
        let next_cleanup_ms = Arc::new(AtomicU64::new(0));
        let here = Here::new(
            schema::open(&path, options.busy_timeout)?,
            prefix.to_owned(),
            Arc::clone(&clock),
            path.clone(),
            Arc::clone(&next_cleanup_ms),
        )
        .map_err(|e| error::store_error(&path, "configuring", &e))?;
        let (requests, receiver) = mpsc::channel(QUEUE_DEPTH);
        let worker = Worker {
            undo: requests.downgrade(),
            conn,
            path: path.clone(),
            prefix: prefix.to_owned(),
            clock,
            cleanup_interval: options.cleanup_interval,
            next_cleanup_ms,
        };
        std::thread::Builder::new()
            .name("toolgate-sqlite".into())
            .spawn(move || worker.run(receiver))
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "starting the state database thread for {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteStore {
            requests,
            here: Arc::new(here),
            path: path.into(),
        })
    }

    /// The state file this store uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(
        &self,
        request: impl FnOnce(worker::Reply<T>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "the state database thread for {} has stopped",
            self.path.display()
        ))
    }
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn reserve(&self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError> {
        reservation::validate_items(items)?;
        if items.is_empty() {
            return Ok(ReserveOutcome::Reserved(Ticket { taken: Vec::new() }));
        }
        let items = items.to_vec();
        let delivery = self
            .call(|reply| Request::Reserve {
                items,
                reply: ReserveReply::Awaited(reply),
            })
            .await?;
        // No await point from here on: once taken, the ticket is the caller's to settle.
        Ok(delivery.into_outcome())
    }

    async fn commit(&self, _ticket: &Ticket) -> Result<(), StoreError> {
        // The reservation's transaction already committed the amounts; nothing is pending,
        // so settling a success costs no I/O.
        Ok(())
    }

    async fn rollback(&self, ticket: &Ticket) -> Result<(), StoreError> {
        reservation::validate_ticket(ticket)?;
        if ticket.taken.is_empty() {
            return Ok(());
        }
        let ticket = ticket.clone();
        self.call(|reply| Request::Rollback { ticket, reply }).await
    }

    async fn current(&self, key: &str, window: Window) -> Result<Amount, StoreError> {
        reservation::validate_window(key, window.length_ms)?;
        let key = key.to_owned();
        self.call(|reply| Request::Current { key, window, reply })
            .await
    }

    /// The continuation runs on the database thread, right after the commit — or on this
    /// thread, when it may run the reservation itself ([`here`]) and nothing else waits for
    /// the database.
    fn reserve_then(self: Arc<Self>, items: Vec<ReserveItem>, then: AfterReserve) {
        if let Err(e) = reservation::validate_items(&items) {
            return then.run(Err(e));
        }
        if items.is_empty() {
            return then.run(Ok(ReserveOutcome::Reserved(Ticket { taken: Vec::new() })));
        }
        // Only a thread allowed to (a stdio reader) asks whether the queue is empty.
        if here::allowed() && self.requests.capacity() == self.requests.max_capacity() {
            if let Some(outcome) = self.here.try_reserve(&items) {
                return then.run(Ok(outcome));
            }
        }
        let request = Request::Reserve {
            items,
            reply: ReserveReply::Then(then),
        };
        match self.requests.try_send(request) {
            Ok(()) => {}
            // A full queue is waited for on a task; a request that cannot be queued at all
            // is dropped, and its continuation runs with `Unavailable`.
            Err(mpsc::error::TrySendError::Full(request)) => {
                tokio::spawn(async move { self.requests.send(request).await });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
