//! Pins in the SQLite state file, beside the counters and approvals.
//!
//! The file is opened the way the counter store opens it, then the `pins` table is added if
//! missing (the counter schema's version is untouched, as for approvals). Each step is one
//! `BEGIN IMMEDIATE` transaction, so SQLite's write lock makes it atomic against every
//! process sharing the file. Pins are read and written a few times per listing, never per
//! call, so the connection sits behind a mutex and each step runs on tokio's blocking pool
//! rather than on a thread of its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{observe_one, Observation, PinEntry, PinRecord, PinStore};
use crate::sqlite::error::store_error;
use crate::sqlite::schema;
use crate::store::StoreError;

const CREATE_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS pins (
        prefix          TEXT    NOT NULL,
        server          TEXT    NOT NULL,
        key             TEXT    NOT NULL,
        pinned_digest   TEXT,
        pinned_body     TEXT,
        pinned_def      TEXT,
        pinned_ms       INTEGER,
        pending_digest  TEXT,
        pending_body    TEXT,
        pending_def     TEXT,
        pending_ms      INTEGER,
        PRIMARY KEY (prefix, server, key)
    ) WITHOUT ROWID;
";

const COLUMNS: &str = "server, key, pinned_digest, pinned_body, pinned_def, pinned_ms, \
    pending_digest, pending_body, pending_def, pending_ms";

/// Pins in an SQLite file; clones share the connection.
#[derive(Clone)]
pub struct SqlitePins {
    conn: Arc<Mutex<Connection>>,
    path: Arc<Path>,
    prefix: Arc<str>,
}

impl std::fmt::Debug for SqlitePins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePins")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqlitePins {
    /// Opens (creating if needed) the state file at `path`. Synchronous: for start-up.
    pub fn open(path: impl AsRef<Path>, prefix: &str) -> Result<SqlitePins, StoreError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let mut conn = schema::open(&path, Duration::from_secs(5))?;
        let fail = |e: rusqlite::Error| store_error(&path, "preparing the pins table", &e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute_batch(CREATE_TABLE).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(SqlitePins {
            conn: Arc::new(Mutex::new(conn)),
            path: path.into(),
            prefix: prefix.into(),
        })
    }

    /// Runs `work` in one IMMEDIATE transaction on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        doing: &'static str,
        work: impl FnOnce(&rusqlite::Transaction<'_>, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        let prefix = Arc::clone(&self.prefix);
        tokio::task::spawn_blocking(move || {
            // A panic mid-transaction rolls the transaction back when it is dropped.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx, &prefix)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("{doing} in {}: {e}", self.path.display())))?
        .map_err(|e: rusqlite::Error| store_error(&self.path, doing, &e))
    }
}

fn read(
    tx: &rusqlite::Transaction<'_>,
    prefix: &str,
    server: &str,
    key: &str,
) -> rusqlite::Result<Option<PinRecord>> {
    tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pins WHERE prefix = ?1 AND server = ?2 AND key = ?3"
    ))?
    .query_row(params![prefix, server, key], record_from_row)
    .optional()
}

fn write(tx: &rusqlite::Transaction<'_>, prefix: &str, r: &PinRecord) -> rusqlite::Result<()> {
    let part = |e: &Option<PinEntry>| {
        e.as_ref().map(|e| {
            (
                e.digest.clone(),
                e.body.clone(),
                e.definition.clone(),
                i64::try_from(e.seen_ms).unwrap_or(i64::MAX),
            )
        })
    };
    let pinned = part(&r.pinned);
    let pending = part(&r.pending);
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO pins (prefix, {COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        prefix,
        r.server,
        r.key,
        pinned.as_ref().map(|p| &p.0),
        pinned.as_ref().map(|p| &p.1),
        pinned.as_ref().map(|p| &p.2),
        pinned.as_ref().map(|p| p.3),
        pending.as_ref().map(|p| &p.0),
        pending.as_ref().map(|p| &p.1),
        pending.as_ref().map(|p| &p.2),
        pending.as_ref().map(|p| p.3),
    ])?;
    Ok(())
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<PinRecord> {
    let entry = |at: usize| -> rusqlite::Result<Option<PinEntry>> {
        let digest: Option<String> = row.get(at)?;
        let Some(digest) = digest else {
            return Ok(None);
        };
        let seen_ms: i64 = row.get(at + 3)?;
        Ok(Some(PinEntry {
            digest,
            body: row.get(at + 1)?,
            definition: row.get(at + 2)?,
            seen_ms: u64::try_from(seen_ms).unwrap_or(0),
        }))
    };
    Ok(PinRecord {
        server: row.get(0)?,
        key: row.get(1)?,
        pinned: entry(2)?,
        pending: entry(6)?,
    })
}

#[async_trait]
impl PinStore for SqlitePins {
    async fn observe(
        &self,
        server: &str,
        seen: Vec<Observation>,
        pin_if_new: bool,
    ) -> Result<Vec<PinRecord>, StoreError> {
        let server = server.to_string();
        self.run("recording tool definitions", move |tx, prefix| {
            let mut out = Vec::with_capacity(seen.len());
            for seen in seen {
                let stored = read(tx, prefix, &server, &seen.key)?;
                let (record, changed) = observe_one(stored, &server, seen, pin_if_new);
                if changed {
                    write(tx, prefix, &record)?;
                }
                out.push(record);
            }
            Ok(out)
        })
        .await
    }

    async fn approve(&self, server: &str, key: &str) -> Result<Option<PinRecord>, StoreError> {
        let (server, key) = (server.to_string(), key.to_string());
        self.run("approving a tool definition", move |tx, prefix| {
            let Some(mut record) = read(tx, prefix, &server, &key)? else {
                return Ok(None);
            };
            let Some(pending) = record.pending.take() else {
                return Ok(None);
            };
            record.pinned = Some(pending);
            write(tx, prefix, &record)?;
            Ok(Some(record))
        })
        .await
    }

    async fn list(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let server = server.map(str::to_string);
        self.run("listing pins", move |tx, prefix| {
            let mut select = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pins WHERE prefix = ?1 AND (?2 IS NULL OR server = ?2) \
                 ORDER BY server, key"
            ))?;
            let rows = select.query_map(params![prefix, server], record_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn reset(&self, server: Option<&str>) -> Result<usize, StoreError> {
        let server = server.map(str::to_string);
        self.run("resetting pins", move |tx, prefix| {
            tx.execute(
                "DELETE FROM pins WHERE prefix = ?1 AND (?2 IS NULL OR server = ?2)",
                params![prefix, server],
            )
        })
        .await
    }
}
