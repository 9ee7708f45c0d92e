//! Pins in Redis, shared by every gateway (and `toolgate pins`) that reaches the same server:
//! one hash per prefix (`{prefix}:pins`), each step one Lua script (`lua/pins.lua`), so Redis
//! runs it atomically against every other gateway.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::{Script, Value};

use super::dsn::RedisDsn;
use super::keys::Namespace;
use super::link::Link;
use crate::pins::{Observation, PinEntry, PinRecord, PinStore};
use crate::store::StoreError;

const LIB: &str = include_str!("lua/pins.lua");

fn script(entry: &str) -> Script {
    Script::new(&format!("{LIB}\nreturn {entry}()\n"))
}

/// Pins in Redis.
pub struct RedisPins {
    link: Link,
    hash: String,
    observe: Script,
    approve: Script,
    list: Script,
    reset: Script,
}

impl std::fmt::Debug for RedisPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPins")
            .field("target", &self.link.target())
            .finish_non_exhaustive()
    }
}

impl RedisPins {
    /// Prepares the store under `prefix` without connecting.
    pub fn open(dsn: &RedisDsn, prefix: &str) -> Result<RedisPins, StoreError> {
        Ok(RedisPins {
            link: Link::new(dsn)?,
            hash: Namespace::new(prefix)?.pins(),
            observe: script("observe"),
            approve: script("approve"),
            list: script("list"),
            reset: script("reset"),
        })
    }

    async fn run(&self, script: &Script, args: &[&str]) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.hash);
        for arg in args {
            invocation.arg(*arg);
        }
        self.link.eval(&invocation).await
    }

    fn bad(&self, what: &str) -> StoreError {
        StoreError::Backend(format!(
            "redis {}: unexpected answer from the pins {what} script",
            self.link.target()
        ))
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// An entry as the script returns it: `""` (or nil) for none.
fn entry(value: Option<&Value>) -> Option<PinEntry> {
    value
        .and_then(text)
        .filter(|t| !t.is_empty())
        .and_then(|t| PinEntry::decode(&t))
}

#[async_trait]
impl PinStore for RedisPins {
    async fn observe(
        &self,
        server: &str,
        seen: Vec<Observation>,
        pin_if_new: bool,
    ) -> Result<Vec<PinRecord>, StoreError> {
        let encoded: Vec<String> = seen.iter().map(|s| s.entry.encode()).collect();
        let mut args = vec![server, if pin_if_new { "1" } else { "0" }];
        for (seen, encoded) in seen.iter().zip(&encoded) {
            args.extend([seen.key.as_str(), seen.entry.digest.as_str(), encoded]);
        }
        let Value::Array(items) = self.run(&self.observe, &args).await? else {
            return Err(self.bad("observe"));
        };
        if items.len() != seen.len() * 2 {
            return Err(self.bad("observe"));
        }
        Ok(seen
            .into_iter()
            .zip(items.chunks(2))
            .map(|(seen, pair)| PinRecord {
                server: server.to_string(),
                key: seen.key,
                pinned: entry(pair.first()),
                pending: entry(pair.get(1)),
            })
            .collect())
    }

    async fn approve(&self, server: &str, key: &str) -> Result<Option<PinRecord>, StoreError> {
        let answer = self.run(&self.approve, &[server, key]).await?;
        Ok(entry(Some(&answer)).map(|pinned| PinRecord {
            server: server.to_string(),
            key: key.to_string(),
            pinned: Some(pinned),
            pending: None,
        }))
    }

    async fn list(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let Value::Array(items) = self.run(&self.list, &[server.unwrap_or("")]).await? else {
            return Err(self.bad("list"));
        };
        let mut records: BTreeMap<(String, String), PinRecord> = BTreeMap::new();
        for pair in items.chunks(2) {
            let (Some(field), value) = (pair.first().and_then(text), pair.get(1)) else {
                return Err(self.bad("list"));
            };
            // "P/<server>/<key>": server names have no '/', keys may.
            let Some((slot, rest)) = field.split_once('/') else {
                continue;
            };
            let Some((server, key)) = rest.split_once('/') else {
                continue;
            };
            let record = records
                .entry((server.to_string(), key.to_string()))
                .or_insert_with(|| PinRecord {
                    server: server.to_string(),
                    key: key.to_string(),
                    pinned: None,
                    pending: None,
                });
            match slot {
                "P" => record.pinned = entry(value),
                "N" => record.pending = entry(value),
                _ => {}
            }
        }
        Ok(records.into_values().collect())
    }

    async fn reset(&self, server: Option<&str>) -> Result<usize, StoreError> {
        match self.run(&self.reset, &[server.unwrap_or("")]).await? {
            Value::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
            _ => Err(self.bad("reset")),
        }
    }
}
