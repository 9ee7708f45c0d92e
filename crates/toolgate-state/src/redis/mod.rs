//! `redis://…` — counters shared by every gateway that reaches one Redis (or Redis Cluster).
//!
//! Each operation is one Lua script, so Redis runs it atomically with respect to every other
//! gateway: `reserve` reads the current (and, for sliding windows, previous) fixed window of
//! every counter of a call, checks them all, and only then adds to all of them; `rollback`
//! subtracts from exactly the windows a ticket names. The scripts do the arithmetic of
//! `windows.rs` and `reservation.rs` exactly (Lua numbers are doubles, so large counts are
//! handled as digit strings; see `lua/decimal.lua`) and take the time from the Redis server
//! (`TIME`), so gateways with skewed clocks still agree on which window a call falls in.
//! `commit` is no I/O, as in every store: reserving already counted the call.
//!
//! Keys (see `keys.rs`) carry the prefix as a Redis Cluster hash tag, so a call's counters
//! always share one slot; each window's key expires when it stops being the previous window.
//!
//! Tests can hand the scripts a time instead ([`RedisTime::Clock`]); the gateway never does.

mod approvals;
mod dsn;
mod keys;
mod link;
mod pins;

use std::sync::Arc;

use async_trait::async_trait;
use redis::{Script, Value};
use tokio::sync::oneshot;
use toolgate_policy::{Amount, Window, WindowMode};

use crate::clock::Clock;
use crate::reservation;
use crate::store::{CounterStore, ReserveItem, ReserveOutcome, StoreError, Ticket};

pub use approvals::RedisApprovals;
pub use dsn::RedisDsn;
pub use link::install_crypto_provider;
pub use pins::RedisPins;

use keys::Namespace;
use link::Link;

/// Longest window the scripts accept: their digit-by-digit products stay below 2^53 (exact
/// in a Lua number) for lengths under 2^49 ms, about 17,800 years; policies allow a year.
const MAX_WINDOW_MS: u64 = 1 << 49;

/// Where the scripts read the time.
#[derive(Clone, Default)]
pub enum RedisTime {
    /// The Redis server's clock (`TIME`): one clock for every gateway. What gateways use.
    #[default]
    Server,
    /// This clock, passed to the scripts with each operation. For tests that move time
    /// instead of waiting; keys still expire by the server's clock.
    Clock(Arc<dyn Clock>),
}

/// Settings beyond the DSN.
#[derive(Clone, Default)]
pub struct RedisOptions {
    pub time: RedisTime,
}

/// Counters in Redis. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    namespace: Namespace,
    time: RedisTime,
    reserve: Script,
    rollback: Script,
    current: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.link.target())
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Prepares the store under `prefix` without connecting: it opens while Redis is down,
    /// answers [`StoreError::Unavailable`] until Redis is reachable, and reconnects by itself.
    /// Fails only on an empty prefix or a configuration the driver refuses.
    pub fn open(
        dsn: &RedisDsn,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<RedisStore, StoreError> {
        const LIB: &str = include_str!("lua/decimal.lua");
        Ok(RedisStore {
            inner: Arc::new(Inner {
                link: Link::new(dsn)?,
                namespace: Namespace::new(prefix)?,
                time: options.time,
                reserve: Script::new(&[LIB, include_str!("lua/reserve.lua")].concat()),
                rollback: Script::new(&[LIB, include_str!("lua/rollback.lua")].concat()),
                current: Script::new(&[LIB, include_str!("lua/current.lua")].concat()),
            }),
        })
    }

    /// Parses `dsn` (`redis://…`, `rediss://…`, `redis+cluster://…`) and opens it.
    pub fn open_dsn(
        dsn: &str,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<RedisStore, StoreError> {
        match crate::dsn::Dsn::parse(dsn)? {
            crate::dsn::Dsn::Redis(dsn) => RedisStore::open(&dsn, prefix, options),
            _ => Err(StoreError::Unavailable("not a Redis DSN".into())),
        }
    }

    /// The pattern (for `SCAN MATCH`) of every key this store writes.
    pub fn key_pattern(&self) -> String {
        self.inner.namespace.pattern()
    }
}

impl Inner {
    fn now_arg(&self) -> String {
        match &self.time {
            RedisTime::Server => String::new(),
            RedisTime::Clock(clock) => clock.now_ms().to_string(),
        }
    }

    /// Runs the reserve script; the reply is decoded into an outcome. Waits for the answer
    /// past the caller's timeout, so that a late reservation can still be rolled back.
    async fn reserve(&self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError> {
        let mut invocation = self.reserve.prepare_invoke();
        invocation.arg(self.now_arg());
        for (index, item) in items.iter().enumerate() {
            // What earlier items of this call add to the same counter, exactly as
            // `reservation::check` sums it.
            let earlier = items[..index]
                .iter()
                .filter(|other| reservation::same_counter(other, item))
                .fold(0i64, |sum, other| {
                    sum.saturating_add(other.amount.to_micros())
                });
            let max = item.max.to_micros().max(-1);
            invocation
                .key(self.namespace.counter(&item.key, item.window.length_ms))
                .arg(item.window.length_ms)
                .arg(sliding_flag(item.window))
                .arg(max)
                .arg(item.amount.to_micros())
                .arg(earlier);
        }
        let reply = self
            .link
            .eval_within(&invocation, self.link.timeout() + link::LINGER)
            .await?;
        self.decode_reserve(items, reply)
    }

    fn decode_reserve(
        &self,
        items: &[ReserveItem],
        reply: Value,
    ) -> Result<ReserveOutcome, StoreError> {
        let bad = || {
            StoreError::Backend(format!(
                "redis {}: unexpected answer from the reserve script",
                self.link.target()
            ))
        };
        let Value::Array(fields) = reply else {
            return Err(bad());
        };
        match fields.as_slice() {
            [Value::Int(1), now] => {
                let now = integer(now)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(bad)?;
                Ok(ReserveOutcome::Reserved(reservation::ticket(items, now)))
            }
            [Value::Int(0), index, current] => {
                let index = integer(index)
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < items.len())
                    .ok_or_else(bad)?;
                let current = integer(current).ok_or_else(bad)?;
                Ok(ReserveOutcome::Exceeded {
                    index,
                    current: Amount::from_micros(current),
                })
            }
            _ => Err(bad()),
        }
    }

    async fn rollback(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let mut invocation = self.rollback.prepare_invoke();
        invocation.arg(self.now_arg());
        for taken in &ticket.taken {
            invocation
                .key(self.namespace.counter(&taken.key, taken.window.length_ms))
                .arg(taken.window.length_ms)
                .arg(taken.window_start_ms)
                .arg(taken.amount.to_micros());
        }
        self.link.eval(&invocation).await.map(drop)
    }
}

#[async_trait]
impl CounterStore for RedisStore {
    async fn reserve(&self, items: &[ReserveItem]) -> Result<ReserveOutcome, StoreError> {
        reservation::validate_items(items)?;
        for item in items {
            validate_length(&item.key, item.window.length_ms)?;
        }
        if items.is_empty() {
            return Ok(ReserveOutcome::Reserved(Ticket { taken: Vec::new() }));
        }
        // The script runs in a task of its own, which rolls the reservation back if nobody
        // is left to receive the ticket: the caller was cancelled, or gave up when the
        // timeout passed while the answer was on its way.
        let (reply, answer) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let items = items.to_vec();
        tokio::spawn(async move {
            let outcome = inner.reserve(&items).await;
            if let Err(Ok(ReserveOutcome::Reserved(ticket))) = reply.send(outcome) {
                if let Err(error) = inner.rollback(&ticket).await {
                    tracing::warn!(%error, "returning an abandoned reservation failed; its quota stays used");
                }
            }
        });
        let timeout = self.inner.link.timeout();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(StoreError::Unavailable(format!(
                "redis {}: the reservation task stopped",
                self.inner.link.target()
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {}: no answer within {} ms",
                self.inner.link.target(),
                timeout.as_millis()
            ))),
        }
    }

    async fn commit(&self, _ticket: &Ticket) -> Result<(), StoreError> {
        // Reserving already counted the amounts; nothing is pending.
        Ok(())
    }

    async fn rollback(&self, ticket: &Ticket) -> Result<(), StoreError> {
        reservation::validate_ticket(ticket)?;
        for taken in &ticket.taken {
            validate_length(&taken.key, taken.window.length_ms)?;
        }
        if ticket.taken.is_empty() {
            return Ok(());
        }
        self.inner.rollback(ticket).await
    }

    async fn current(&self, key: &str, window: Window) -> Result<Amount, StoreError> {
        reservation::validate_window(key, window.length_ms)?;
        validate_length(key, window.length_ms)?;
        let inner = &self.inner;
        let mut invocation = inner.current.prepare_invoke();
        invocation
            .key(inner.namespace.counter(key, window.length_ms))
            .arg(inner.now_arg())
            .arg(window.length_ms)
            .arg(sliding_flag(window));
        let reply = inner.link.eval(&invocation).await?;
        integer(&reply).map(Amount::from_micros).ok_or_else(|| {
            StoreError::Backend(format!(
                "redis {}: unexpected answer from the current script",
                inner.link.target()
            ))
        })
    }
}

fn sliding_flag(window: Window) -> &'static str {
    match window.mode {
        WindowMode::Fixed => "0",
        WindowMode::Sliding => "1",
    }
}

fn validate_length(key: &str, length_ms: u64) -> Result<(), StoreError> {
    if length_ms >= MAX_WINDOW_MS {
        return Err(StoreError::Backend(format!(
            "counter {key:?} has a window longer than the Redis store supports"
        )));
    }
    Ok(())
}

/// An integer reply, or a count the script returned as a string (counts can pass 2^53).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(text) => text.parse().ok(),
        _ => None,
    }
}
