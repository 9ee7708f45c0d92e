//! The identity of a counter: `<namespace>.<counter>` plus the scope's partition, e.g.
//! `create_issue._rate_hour`, `_global.calls@identity:"alice"`, `deploy.runs@args.env="prod"`.
//!
//! Keys must be injective: two different partitions must never share a counter (one
//! session spending another's budget), and one partition must never get two counters (a
//! caller multiplying its budget by rewriting a value). So partition values are written as
//! canonical JSON (`canonical.rs`) — strings quoted and escaped, an absent session or
//! identity as `null` (never a name a caller could also send), numbers by exact value,
//! object keys sorted — and counter names cannot contain `.` or `@` (the compiler refuses
//! them), so no name can imitate a separator.
//!
//! Numbers in a partition are read as doubles, the coarsest reading any server uses
//! (`canonical.rs`): `2^60` and `2^60 + 1` are one account to a JavaScript server, so they
//! are one counter here. And a partition value longer than [`MAX_PARTITION_BYTES`] is stored
//! by its SHA-256, so a caller cannot make the store hold megabyte keys.

use sha2::{Digest, Sha256};

use crate::args::Lookup;
use crate::canonical::{write_canonical, write_string, Numbers};
use crate::decide::Call;
use crate::ir::{Limit, Scope};

/// Partition values longer than this are keyed by their SHA-256.
pub const MAX_PARTITION_BYTES: usize = 256;

/// Why a call's arguments cannot name a counter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A member differs from the scope's path only by case folding.
    #[error("argument member {member:?} differs from {path} only in case")]
    Ambiguous { member: String, path: String },
}

/// The key of the counter `limit` moves for `call`.
pub fn counter_key(limit: &Limit, call: &Call<'_>) -> Result<String, KeyError> {
    let namespace = limit.namespace.as_deref().unwrap_or(call.tool);
    let mut key = String::with_capacity(namespace.len() + limit.counter.len() + 24);
    key.push_str(namespace);
    key.push('.');
    key.push_str(&limit.counter);
    match &limit.scope {
        Scope::Shared => {}
        Scope::Session => {
            key.push_str("@session:");
            write_optional_string(&mut key, call.session);
        }
        Scope::Identity => {
            key.push_str("@identity:");
            write_optional_string(&mut key, call.identity);
        }
        Scope::Argument(path) => {
            key.push('@');
            key.push_str(&path.to_string());
            key.push('=');
            match path.lookup(call.arguments) {
                Lookup::Found(value) => {
                    let mut partition = String::new();
                    write_canonical(&mut partition, value, Numbers::AsDoubles);
                    if partition.len() > MAX_PARTITION_BYTES {
                        key.push_str("sha256:");
                        key.push_str(&hex::encode(Sha256::digest(partition.as_bytes())));
                    } else {
                        key.push_str(&partition);
                    }
                }
                Lookup::Missing => key.push_str("null"),
                Lookup::Ambiguous { member, path } => {
                    return Err(KeyError::Ambiguous { member, path })
                }
            }
        }
    }
    Ok(key)
}

fn write_optional_string(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => write_string(out, s),
        None => out.push_str("null"),
    }
}
