//! State DSNs (`--state-dsn`): which store to open, and opening it.
//!
//! Accepted: `memory:`, `sqlite:PATH`, `sqlite://PATH` (PATH relative, absolute, or
//! starting with `~/`), and the Redis forms of `redis/dsn.rs` (`redis://`, `rediss://`,
//! `redis+cluster://`). Error messages never repeat what follows the scheme, because a DSN
//! (`redis://:password@host`) can carry a credential.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::Clock;
use crate::memory::MemoryStore;
use crate::redis::{RedisDsn, RedisOptions, RedisStore};
use crate::sqlite::SqliteStore;
use crate::store::{SharedStore, StoreError};

const ACCEPTED: &str = "accepted forms: memory:, sqlite:PATH, sqlite://PATH (PATH relative, \
     absolute, or ~/…), redis://[user:password@]host[:port][/db][?timeout_ms=N], rediss://… \
     (TLS), redis+cluster://host:port,host:port,… (Redis Cluster; rediss+cluster:// with TLS)";

/// A parsed state DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dsn {
    Memory,
    /// The database file, with `~` already expanded.
    Sqlite(PathBuf),
    /// A Redis server or cluster; shows its password as `***`.
    Redis(RedisDsn),
}

impl Dsn {
    pub fn parse(text: &str) -> Result<Dsn, StoreError> {
        let invalid = |why: String| StoreError::Unavailable(format!("{why}; {ACCEPTED}"));
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(invalid("the state DSN has no scheme".into()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => match rest {
                "" | "//" => Ok(Dsn::Memory),
                _ => Err(invalid("memory: takes no path".into())),
            },
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(invalid(
                        "sqlite: needs the path of the database file".into(),
                    ));
                }
                Ok(Dsn::Sqlite(expand_home(path)?))
            }
            scheme @ ("redis" | "rediss" | "redis+cluster" | "rediss+cluster" | "valkey"
            | "valkeys" | "valkey+cluster" | "valkeys+cluster") => RedisDsn::parse(scheme, rest)
                .map(Dsn::Redis)
                .map_err(invalid),
            "redis+unix" | "unix" | "redis+tls" => Err(invalid(
                "this Redis DSN form is not supported (Unix sockets are not; TLS is rediss://)"
                    .into(),
            )),
            other if is_scheme_like(other) => {
                Err(invalid(format!("unrecognised state DSN scheme {other:?}")))
            }
            _ => Err(invalid("unrecognised state DSN".into())),
        }
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dsn::Memory => f.write_str("memory:"),
            Dsn::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Dsn::Redis(dsn) => dsn.fmt(f),
        }
    }
}

/// Opens the store a DSN names. Every key it writes is namespaced by `prefix`; every
/// window is read from `clock`, except in Redis, whose scripts read the server's clock so
/// that every gateway sharing it agrees. Opening a Redis store does not connect: it opens
/// while Redis is down and reconnects by itself.
pub fn open_store(
    dsn: &str,
    prefix: &str,
    clock: Arc<dyn Clock>,
) -> Result<SharedStore, StoreError> {
    Ok(match Dsn::parse(dsn)? {
        Dsn::Memory => Arc::new(MemoryStore::new(prefix, clock)),
        Dsn::Sqlite(path) => Arc::new(SqliteStore::open(path, prefix, clock)?),
        Dsn::Redis(dsn) => Arc::new(RedisStore::open(&dsn, prefix, RedisOptions::default())?),
    })
}

fn expand_home(path: &str) -> Result<PathBuf, StoreError> {
    let rest = match path.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        // `~user/…` or a file literally named `~x`: taken as written.
        _ => return Ok(PathBuf::from(path)),
    };
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            StoreError::Unavailable(
                "the state DSN starts with ~ but no home directory is set (HOME)".into(),
            )
        })?;
    Ok(PathBuf::from(home).join(rest))
}

/// A short token that can be echoed safely: a scheme name, not a path or a secret.
fn is_scheme_like(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 20
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}
