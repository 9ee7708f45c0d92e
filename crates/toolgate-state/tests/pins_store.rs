//! Tool pins, the same behaviour from every store: trust on first use, a change waits for
//! approval, approval moves it, listing and reset per server — and, where the store is shared
//! (two handles on one SQLite file, two connections to one Redis), one pin for concurrent
//! first sightings.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use toolgate_state::pins::{tool_key, INSTRUCTIONS_KEY};
use toolgate_state::{MemoryPins, Observation, PinEntry, PinStore, RedisPins, SqlitePins};

fn entry(digest: &str, seen_ms: u64) -> PinEntry {
    PinEntry {
        digest: digest.into(),
        body: format!("body-{digest}"),
        // Canonical JSON with what the Redis encoding must carry unharmed.
        definition: format!(r#"{{"description":"a\nb / c \u0009","name":"{digest}"}}"#),
        seen_ms,
    }
}

fn seen(key: &str, digest: &str, seen_ms: u64) -> Observation {
    Observation {
        key: key.into(),
        entry: entry(digest, seen_ms),
    }
}

/// Two handles on one store, as two gateways see it.
fn handles(kind: &str) -> (Arc<dyn PinStore>, Arc<dyn PinStore>, Box<dyn std::any::Any>) {
    match kind {
        "memory" => {
            let store = MemoryPins::default();
            (Arc::new(store.clone()), Arc::new(store), Box::new(()))
        }
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.db");
            let a = SqlitePins::open(&path, "toolgate").unwrap();
            let b = SqlitePins::open(&path, "toolgate").unwrap();
            (Arc::new(a), Arc::new(b), Box::new(dir))
        }
        _ => {
            let server = common::redis_server::RedisServer::start();
            let dsn = |url: &str| match toolgate_state::Dsn::parse(url).unwrap() {
                toolgate_state::Dsn::Redis(dsn) => dsn,
                _ => unreachable!(),
            };
            let a = RedisPins::open(&dsn(&server.url()), "toolgate").unwrap();
            let b = RedisPins::open(&dsn(&server.url()), "toolgate").unwrap();
            (Arc::new(a), Arc::new(b), Box::new(server))
        }
    }
}

async fn behaves(kind: &str) {
    let (a, b, _keep) = handles(kind);
    let read = tool_key("read_file");
    let write = tool_key("a/b tool");

    // First listing: pinned as seen.
    let records = a
        .observe(
            "files",
            vec![
                seen(&read, "r1", 1),
                seen(&write, "w1", 1),
                seen(INSTRUCTIONS_KEY, "i1", 1),
            ],
            true,
        )
        .await
        .unwrap();
    assert!(records.iter().all(|r| r.pending.is_none()));
    assert!(records[0].matches("r1") && records[1].matches("w1"));

    // The other gateway sees a changed definition: it waits, the pin stays.
    let r = b
        .observe("files", vec![seen(&read, "r2", 5)], true)
        .await
        .unwrap();
    assert!(r[0].matches("r1"));
    assert_eq!(r[0].pending.as_ref().unwrap().digest, "r2");
    // Seen again later: still first seen at 5.
    let r = a
        .observe("files", vec![seen(&read, "r2", 9)], true)
        .await
        .unwrap();
    assert_eq!(r[0].pending.as_ref().unwrap().seen_ms, 5);
    assert_eq!(r[0].pending.as_ref().unwrap(), &entry("r2", 5));

    // A new tool while new tools wait: no pin, pending.
    let fresh = tool_key("fresh");
    let r = a
        .observe("files", vec![seen(&fresh, "f1", 6)], false)
        .await
        .unwrap();
    assert!(r[0].pinned.is_none() && r[0].pending.is_some());

    // Other servers are apart.
    b.observe("memory", vec![seen(&read, "m1", 1)], true)
        .await
        .unwrap();
    assert_eq!(a.list(Some("files")).await.unwrap().len(), 4);
    assert_eq!(a.list(None).await.unwrap().len(), 5);
    let listed = b.list(Some("files")).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            INSTRUCTIONS_KEY,
            "tool:a/b tool",
            "tool:fresh",
            "tool:read_file"
        ]
    );

    // Approval moves pending to pinned, once.
    let approved = b.approve("files", &read).await.unwrap().unwrap();
    assert!(approved.matches("r2") && approved.pending.is_none());
    assert!(a.approve("files", &read).await.unwrap().is_none());
    assert!(a.approve("files", "tool:nothing").await.unwrap().is_none());
    let r = a
        .observe("files", vec![seen(&read, "r2", 10)], true)
        .await
        .unwrap();
    assert!(r[0].matches("r2") && r[0].pending.is_none());

    // Reset per server, then all.
    assert_eq!(a.reset(Some("memory")).await.unwrap(), 1);
    assert_eq!(b.list(None).await.unwrap().len(), 4);
    assert_eq!(b.reset(None).await.unwrap(), 4);
    assert!(a.list(None).await.unwrap().is_empty());
}

/// Many first sightings of one tool, with different definitions, from two handles at once:
/// exactly one becomes the pin, and every caller is told which.
async fn one_pin_for_concurrent_first_sightings(kind: &str) {
    let (a, b, _keep) = handles(kind);
    let key = tool_key("t");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            store
                .observe("s", vec![seen(&key, &format!("d{i}"), i)], true)
                .await
                .unwrap()
                .remove(0)
        }));
    }
    let mut pins = std::collections::HashSet::new();
    for task in tasks {
        pins.insert(task.await.unwrap().pinned.unwrap().digest);
    }
    assert_eq!(pins.len(), 1, "{pins:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_pins() {
    behaves("memory").await;
    one_pin_for_concurrent_first_sightings("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_pins() {
    behaves("sqlite").await;
    one_pin_for_concurrent_first_sightings("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_pins() {
    behaves("redis").await;
    one_pin_for_concurrent_first_sightings("redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lists_see_later_approvals() {
    let (a, b, _keep) = handles("sqlite");
    let key = tool_key("t");
    a.observe("s", vec![seen(&key, "one", 1)], true)
        .await
        .unwrap();
    a.observe("s", vec![seen(&key, "two", 2)], true)
        .await
        .unwrap();
    assert!(a.list(Some("s")).await.unwrap()[0].matches("one"));
    b.approve("s", &key).await.unwrap().unwrap();
    assert!(a.list(Some("s")).await.unwrap()[0].matches("two"));
}

const CHILD_DB: &str = "TOOLGATE_PINS_TEST_DB";

/// Run by `a_gateway_sees_what_another_process_approved`; does nothing otherwise.
#[test]
#[ignore = "child process of a_gateway_sees_what_another_process_approved"]
fn approve_as_child_process() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqlitePins::open(&db, "toolgate").unwrap();
        assert!(store.approve("s", &tool_key("t")).await.unwrap().is_some());
    });
}

/// A gateway holds the counters, the approvals and the pins of one file open (each opened
/// in turn), and a short-lived process (`toolgate pins approve`) changes the file and exits:
/// the gateway reads the change. (`tests/e2e/test_pinning.py` runs the same through the real
/// binaries, where opening the file once more used to drop the gateway's locks on it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_sees_what_another_process_approved() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(toolgate_state::ManualClock::new(1_767_225_600_000));
    let counters = toolgate_state::SqliteStore::open(&db, "toolgate", clock.clone()).unwrap();
    use toolgate_state::CounterStore;
    let item = common::item("k", common::fixed(common::MINUTE), "10", "1");
    let _ticket = counters.reserve(&[item]).await.unwrap();
    let _approvals = toolgate_state::SqliteApprovals::open(&db, "toolgate", clock).unwrap();
    let pins = SqlitePins::open(&db, "toolgate").unwrap();
    let key = tool_key("t");
    pins.observe("s", vec![seen(&key, "one", 1)], true)
        .await
        .unwrap();
    pins.observe("s", vec![seen(&key, "two", 2)], true)
        .await
        .unwrap();
    assert!(pins.list(Some("s")).await.unwrap()[0].matches("one"));
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "approve_as_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(pins.list(Some("s")).await.unwrap()[0].matches("two"));
}
