//! Fixtures shared by the store tests: one backend per store kind, opened under any prefix,
//! with a manual clock, plus small builders for items.

#![allow(clippy::unwrap_used, dead_code)]

pub mod redis_server;

use std::path::PathBuf;
use std::sync::Arc;

use toolgate_policy::{Amount, Window, WindowMode};
use toolgate_state::Clock;
use toolgate_state::{
    CounterStore, ManualClock, MemoryStore, RedisOptions, RedisStore, RedisTime, ReserveItem,
    ReserveOutcome, SqliteStore, Ticket,
};

/// 2026-01-01T00:00:00Z, a UTC midnight.
pub const T0: u64 = 1_767_225_600_000;
pub const SECOND: u64 = 1_000;
pub const MINUTE: u64 = 60 * SECOND;
pub const HOUR: u64 = 60 * MINUTE;

/// One backing store (a memory table or an SQLite file) that tests open handles on.
pub struct Backend {
    pub clock: Arc<ManualClock>,
    kind: Kind,
}

enum Kind {
    Memory(MemoryStore),
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    /// A redis-server of this test's own; the scripts are handed the manual clock's time.
    Redis(redis_server::RedisServer),
}

impl Backend {
    pub fn memory() -> Backend {
        let clock = Arc::new(ManualClock::new(T0));
        Backend {
            kind: Kind::Memory(MemoryStore::new("toolgate", clock.clone())),
            clock,
        }
    }

    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Backend {
            clock: Arc::new(ManualClock::new(T0)),
            kind: Kind::Sqlite { _dir: dir, path },
        }
    }

    pub fn redis() -> Backend {
        Backend {
            clock: Arc::new(ManualClock::new(T0)),
            kind: Kind::Redis(redis_server::RedisServer::start()),
        }
    }

    /// A store on this backend under `prefix` (handles with the same prefix share counts).
    pub fn store(&self, prefix: &str) -> Arc<dyn CounterStore> {
        match &self.kind {
            Kind::Memory(base) => Arc::new(base.with_prefix(prefix)),
            Kind::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open(path, prefix, self.clock.clone()).unwrap())
            }
            Kind::Redis(server) => {
                let options = RedisOptions {
                    time: RedisTime::Clock(self.clock.clone()),
                };
                Arc::new(RedisStore::open_dsn(&server.url(), prefix, options).unwrap())
            }
        }
    }

    /// Fixed windows currently held, across all prefixes.
    pub fn stored_windows(&self) -> usize {
        match &self.kind {
            Kind::Memory(base) => base.stored_windows(),
            Kind::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row("SELECT count(*) FROM counters WHERE value > 0", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap() as usize
            }
            // Keys outlive the manual clock's jumps (they expire by the server's clock, see
            // `redis_windows.rs`), so count the windows that are still current or previous
            // at the test's time, by the start and length in each key's name.
            Kind::Redis(server) => {
                let now = self.clock.now_ms();
                let keys = server.command(&["KEYS", "*"]).unwrap();
                keys.lines()
                    .filter(|key| {
                        let mut fields = key.rsplit(':');
                        let start: u64 = fields.next().unwrap().parse().unwrap();
                        let length: u64 = fields.next().unwrap().parse().unwrap();
                        let value: i64 =
                            server.command(&["GET", key]).unwrap().parse().unwrap_or(0);
                        value > 0 && start + 2 * length > now
                    })
                    .count()
            }
        }
    }

    pub fn at(&self, ms: u64) {
        self.clock.set(ms);
    }
}

pub fn amount(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

pub fn fixed(length_ms: u64) -> Window {
    Window::fixed(length_ms)
}

pub fn sliding(length_ms: u64) -> Window {
    Window {
        length_ms,
        mode: WindowMode::Sliding,
    }
}

pub fn item(key: &str, window: Window, max: &str, add: &str) -> ReserveItem {
    ReserveItem {
        key: key.into(),
        window,
        max: amount(max),
        amount: amount(add),
    }
}

pub fn calls(key: &str, window: Window, max: u32) -> ReserveItem {
    item(key, window, &max.to_string(), "1")
}

/// Reserves, expecting success.
pub async fn reserved(store: &dyn CounterStore, items: impl AsRef<[ReserveItem]>) -> Ticket {
    match store.reserve(items.as_ref()).await.unwrap() {
        ReserveOutcome::Reserved(ticket) => ticket,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// Reserves, expecting the limit: returns (index, current).
pub async fn exceeded(
    store: &dyn CounterStore,
    items: impl AsRef<[ReserveItem]>,
) -> (usize, Amount) {
    match store.reserve(items.as_ref()).await.unwrap() {
        ReserveOutcome::Exceeded { index, current } => (index, current),
        other => panic!("expected the limit to be hit, got {other:?}"),
    }
}

/// How many of `attempts` one-item reservations succeed.
pub async fn admitted(store: &dyn CounterStore, item: &ReserveItem, attempts: usize) -> usize {
    let mut n = 0;
    for _ in 0..attempts {
        if let ReserveOutcome::Reserved(_) =
            store.reserve(std::slice::from_ref(item)).await.unwrap()
        {
            n += 1;
        }
    }
    n
}
