//! Opening the state file: directory and file permissions, connection settings, and the
//! schema, versioned with SQLite's `user_version`.
//!
//! Version 1 is one table holding one row per (prefix, key, window length, window start):
//! the count of one fixed window, in micros. `expires_ms` (start + 2 × length, the moment
//! the window stops being anybody's previous window) is stored so cleanup is one indexed
//! range delete. A file of a newer version, or a database that already holds other tables,
//! is refused rather than guessed at.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::error::store_error;
use crate::store::StoreError;

/// The schema this build reads and writes.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const CREATE_V1: &str = "
    CREATE TABLE counters (
        prefix     TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        length_ms  INTEGER NOT NULL,
        start_ms   INTEGER NOT NULL,
        value      INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (prefix, key, length_ms, start_ms)
    ) WITHOUT ROWID;
    CREATE INDEX counters_expiry ON counters (expires_ms);
";

/// Opens (creating if needed) the state database at `path`, ready for use.
pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    prepare_file(path)?;
    let mut conn = Connection::open(path).map_err(|e| store_error(path, "opening", &e))?;
    // Set first: every later statement, even the pragmas, may have to wait for another
    // process that is creating the schema or checkpointing.
    conn.busy_timeout(busy_timeout)
        .map_err(|e| store_error(path, "configuring", &e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| store_error(path, "enabling WAL", &e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems cannot hold a WAL. Locking stays correct in the rollback
        // journal mode (every reservation is still one IMMEDIATE transaction); only
        // concurrency with readers suffers.
        tracing::warn!(
            file = %path.display(),
            journal_mode = %mode,
            "state database could not use WAL; continuing in its current journal mode"
        );
    }
    // In WAL mode NORMAL survives an application crash; only a power loss can drop the
    // last commits, which for rate counters means forgetting a few calls, not corruption.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| store_error(path, "configuring", &e))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Creates the parent directory (0700: counter keys can name users and repositories) and
/// the file itself (0600; SQLite gives its `-wal` and `-shm` files the same mode).
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let unavailable = |doing: &str, file: &Path, err: std::io::Error| {
        StoreError::Unavailable(format!("{doing} {}: {err}", file.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(parent)
                .map_err(|e| unavailable("creating the state directory", parent, e))?;
        }
    }
    // Only a file that does not exist yet is touched here. Closing a descriptor of a file
    // drops every POSIX lock this process holds on it, including those of SQLite connections
    // already open on it (the counters, approvals and pins share one file): another process
    // could then take itself for the last connection, checkpoint and reset the WAL under
    // them, and they would go on reading a snapshot from before its writes.
    if path.exists() {
        return Ok(());
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| unavailable("opening the state database", path, e))?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| store_error(path, "preparing the schema", &e);
    // IMMEDIATE: two processes opening a new file at once must not both create the table.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    match version {
        0 => {
            let tables: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |row| row.get(0),
                )
                .map_err(fail)?;
            if tables > 0 {
                return Err(StoreError::Unavailable(format!(
                    "{} is not a toolgate state database (it already holds other tables)",
                    path.display()
                )));
            }
            tx.execute_batch(CREATE_V1).map_err(fail)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        newer => Err(StoreError::Unavailable(format!(
            "state database {} has schema version {newer}, newer than this toolgate \
             understands ({SCHEMA_VERSION}); upgrade toolgate or use another state file",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rusqlite::Connection;

    fn compiled_with(conn: &Connection, option: &str) -> bool {
        conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap()
            == 1
    }

    /// `.cargo/config.toml` builds SQLite without what the store never uses; an extension
    /// loader in particular would be a way to run code from a file.
    #[test]
    fn sqlite_is_built_without_extensions_or_full_text_search() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(compiled_with(&conn, "OMIT_LOAD_EXTENSION"));
        assert!(compiled_with(&conn, "DEFAULT_MEMSTATUS=0"));
        for unused in ["ENABLE_FTS3", "ENABLE_FTS5", "ENABLE_RTREE", "ENABLE_STAT4"] {
            assert!(!compiled_with(&conn, unused), "{unused}");
        }
        assert!(conn
            .execute_batch("CREATE VIRTUAL TABLE t USING fts5(x)")
            .is_err());
    }
}
