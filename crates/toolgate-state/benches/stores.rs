//! Reserve + commit cost of each store: one task (latency), and eight concurrent tasks on
//! one shared counter (throughput under contention). Results: docs/BENCHMARKS.md.
//!
//! The Redis rows start a redis-server of their own on 127.0.0.1 (the tests' helper); when
//! `redis-server` is not installed they are skipped with a message.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::Bencher;
use tokio::runtime::{Builder, Runtime};
use toolgate_policy::{Amount, Window};
use toolgate_state::{
    CounterStore, MemoryStore, RedisOptions, RedisStore, ReserveItem, ReserveOutcome, SqliteStore,
    SystemClock,
};

fn main() {
    divan::main();
}

const STORES: &[&str] = &["memory", "sqlite", "redis"];
const TASKS: usize = 8;
const PER_TASK: usize = 100;

struct Subject {
    store: Arc<dyn CounterStore>,
    // Keeps the SQLite file alive for the bench's duration.
    _dir: Option<tempfile::TempDir>,
    // Keeps the Redis server running for the bench's duration.
    _redis: Option<redis_server::RedisServer>,
}

/// The store to measure, or `None` (with a message) when it cannot run here.
fn subject(kind: &str) -> Option<Subject> {
    Some(match kind {
        "memory" => Subject {
            store: Arc::new(MemoryStore::new("bench", Arc::new(SystemClock))),
            _dir: None,
            _redis: None,
        },
        "redis" => {
            let installed = std::process::Command::new("redis-server")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !installed {
                eprintln!("skipping the Redis rows: redis-server is not installed");
                return None;
            }
            let server = redis_server::RedisServer::start();
            let store =
                RedisStore::open_dsn(&server.url(), "bench", RedisOptions::default()).unwrap();
            Subject {
                store: Arc::new(store),
                _dir: None,
                _redis: Some(server),
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let store =
                SqliteStore::open(dir.path().join("state.db"), "bench", Arc::new(SystemClock))
                    .unwrap();
            Subject {
                store: Arc::new(store),
                _dir: Some(dir),
                _redis: None,
            }
        }
    })
}

/// A counter that never fills, so every iteration does the full reserve path.
fn items() -> [ReserveItem; 1] {
    [ReserveItem {
        key: "create_issue._rate_minute".into(),
        window: Window::fixed(60_000),
        max: Amount::from_micros(i64::MAX),
        amount: Amount::ONE,
    }]
}

async fn reserve_and_commit(store: &dyn CounterStore, items: &[ReserveItem]) {
    match store.reserve(items).await.unwrap() {
        ReserveOutcome::Reserved(ticket) => store.commit(&ticket).await.unwrap(),
        ReserveOutcome::Exceeded { .. } => unreachable!("the bench counter has no limit"),
    }
}

fn runtime(workers: usize) -> Runtime {
    if workers == 1 {
        Builder::new_current_thread().enable_all().build().unwrap()
    } else {
        Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap()
    }
}

/// One reservation at a time from one task: the latency a single call pays.
#[divan::bench(args = STORES)]
fn reserve_commit_one_task(bencher: Bencher, kind: &str) {
    let Some(subject) = subject(kind) else {
        return;
    };
    let rt = runtime(1);
    let items = items();
    bencher
        .counter(ItemsCount::new(1usize))
        .bench_local(|| rt.block_on(reserve_and_commit(&*subject.store, &items)));
}

/// Eight tasks each reserving 100 times on the same counter: throughput under contention.
#[divan::bench(args = STORES, sample_count = 30)]
fn reserve_commit_eight_tasks(bencher: Bencher, kind: &str) {
    let Some(subject) = subject(kind) else {
        return;
    };
    let rt = runtime(2);
    bencher
        .counter(ItemsCount::new(TASKS * PER_TASK))
        .bench_local(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let store = Arc::clone(&subject.store);
                        tokio::spawn(async move {
                            let items = items();
                            for _ in 0..PER_TASK {
                                reserve_and_commit(&*store, &items).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        });
}
