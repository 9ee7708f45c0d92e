//! What SQLite failures mean to the gateway.
//!
//! Anything that stops the database from answering — it cannot be opened, another process
//! holds the lock past the busy timeout, the disk is full or read-only, the file is not a
//! database — is `Unavailable`, which the proxy's fail mode decides on. Anything else is a
//! `Backend` error (a bug or a corrupted assumption). Messages name the file, which is not a
//! secret, and never carry statement parameters (counter keys may hold argument values).

use std::path::Path;

use rusqlite::ErrorCode;

use crate::store::StoreError;

pub(crate) fn store_error(path: &Path, doing: &str, err: &rusqlite::Error) -> StoreError {
    let file = path.display();
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(
            format!("{doing}: state database {file} stayed locked by another process"),
        ),
        Some(ErrorCode::NotADatabase) => {
            StoreError::Unavailable(format!("{doing}: {file} is not an SQLite database"))
        }
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory
            | ErrorCode::NoLargeFileSupport,
        ) => StoreError::Unavailable(format!(
            "{doing}: state database {file}: {}",
            code_text(err)
        )),
        _ => StoreError::Backend(format!(
            "{doing}: state database {file}: {}",
            code_text(err)
        )),
    }
}

/// SQLite's own description of the failure, without any SQL or parameter text.
fn code_text(err: &rusqlite::Error) -> String {
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => failure.to_string(),
        // Conversion errors and the like: rusqlite's text names types, not values.
        other => other.to_string(),
    }
}
