//! The Redis store beyond the shared behaviour suite: its scripts decide exactly as the Rust
//! check does (a differential property test against the memory store, with counts up to
//! i64::MAX), keys and their expiry, the server's clock, scopes with awkward key text,
//! Redis Cluster, and what happens while Redis is down, frozen or restarted.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{free_port, RedisCluster, RedisServer};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use toolgate_policy::{Amount, Window, WindowMode};
use toolgate_state::{
    CounterStore, ManualClock, MemoryStore, RedisOptions, RedisStore, RedisTime, ReserveItem,
    ReserveOutcome, StoreError, Ticket,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn server_time(url: &str) -> RedisStore {
    RedisStore::open_dsn(url, "toolgate", RedisOptions::default()).unwrap()
}

fn test_time(url: &str, clock: Arc<ManualClock>) -> RedisStore {
    let options = RedisOptions {
        time: RedisTime::Clock(clock),
    };
    RedisStore::open_dsn(url, "toolgate", options).unwrap()
}

// ---------------------------------------------------------------------------------------
// The scripts mirror `reservation.rs` and `windows.rs` exactly
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Reserve(Vec<ReserveItem>),
    /// Roll back the n-th ticket obtained so far (modulo their number).
    Rollback(usize),
    Current(String, Window),
    Advance(u64),
}

fn window() -> impl Strategy<Value = Window> {
    // At least a minute: keys expire by the server's clock while the test's clock jumps, so
    // a window must outlive one test case in real time.
    let length = prop_oneof![
        4 => Just(60_000u64),
        1 => Just(90_000),
        1 => Just(3_600_000),
        1 => Just(366 * 86_400_000),
    ];
    (length, any::<bool>()).prop_map(|(length_ms, sliding)| Window {
        length_ms,
        mode: if sliding {
            WindowMode::Sliding
        } else {
            WindowMode::Fixed
        },
    })
}

/// Micros: small counts, decimal amounts, and values near i64::MAX where a double would lose
/// digits and a sum would overflow.
fn micros() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => (0i64..6).prop_map(|units| units * 1_000_000),
        2 => 0i64..3_000_000,
        1 => (i64::MAX / 2)..=i64::MAX,
        1 => (i64::MAX - 3)..=i64::MAX,
        1 => (1i64 << 53) - 3..(1i64 << 53) + 3,
    ]
}

fn any_item() -> impl Strategy<Value = ReserveItem> {
    (0usize..2, window(), micros(), micros()).prop_map(|(key, window, max, amount)| ReserveItem {
        key: ["a", "{b}.args.repo=x:y"][key].to_string(),
        window,
        max: Amount::from_micros(max),
        amount: Amount::from_micros(amount),
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any_item(), 1..4).prop_map(Op::Reserve),
        2 => (0usize..50).prop_map(Op::Rollback),
        3 => (0usize..2, window()).prop_map(|(k, w)| Op::Current(["a", "{b}.args.repo=x:y"][k].to_string(), w)),
        3 => prop_oneof![0u64..5_000, 0u64..120_000, 0u64..2 * 366 * 86_400_000].prop_map(Op::Advance),
    ]
}

async fn replay(server: &RedisServer, start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    server.command(&["FLUSHALL"]).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let memory = MemoryStore::new("toolgate", clock.clone());
    let redis = test_time(&server.url(), clock.clone());
    let mut tickets: Vec<(Ticket, Ticket)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Reserve(items) => {
                let expected = memory.reserve(items).await.unwrap();
                let got = redis.reserve(items).await.unwrap();
                prop_assert_eq!(&got, &expected, "step {}: reserve {:?}", step, items);
                if let (ReserveOutcome::Reserved(m), ReserveOutcome::Reserved(r)) = (expected, got)
                {
                    tickets.push((m, r));
                }
            }
            Op::Rollback(n) if !tickets.is_empty() => {
                let (m, r) = &tickets[n % tickets.len()];
                memory.rollback(m).await.unwrap();
                redis.rollback(r).await.unwrap();
            }
            Op::Rollback(_) => {}
            Op::Current(key, window) => {
                let expected = memory.current(key, *window).await.unwrap();
                let got = redis.current(key, *window).await.unwrap();
                prop_assert_eq!(got, expected, "step {}: current {} {:?}", step, key, window);
            }
            Op::Advance(ms) => clock.advance(Duration::from_millis(*ms)),
        }
    }
    Ok(())
}

#[test]
fn scripts_decide_exactly_like_the_memory_store() {
    let server = RedisServer::start();
    let rt = runtime();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0u64..86_400_000, proptest::collection::vec(op(), 1..40));
    runner
        .run(&strategy, |(offset, ops)| {
            rt.block_on(replay(&server, T0 + offset, &ops))
        })
        .unwrap();
}

/// The cases random schedules rarely reach, each compared with the memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounding_and_saturation_edges_match_the_memory_store() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::new(T0 + 10 * SECOND));
    let memory = MemoryStore::new("toolgate", clock.clone());
    let redis = test_time(&server.url(), clock.clone());
    let stores = [&memory as &dyn CounterStore, &redis];
    // One micro in the previous window, read in the last millisecond of the next: the
    // weighted part is 1/60000 of a micro and must round up to one, not down to none.
    for store in stores {
        reserved(store, [item("k", fixed(MINUTE), "1", "0.000001")]).await;
    }
    clock.set(T0 + 2 * MINUTE - 1);
    same(&memory, &redis, "a sliver of the previous window").await;
    assert_eq!(
        redis.current("k", sliding(MINUTE)).await.unwrap(),
        Amount::from_micros(1)
    );
    // Fixed-window reservations fill two consecutive windows close to i64::MAX (a fixed
    // window does not look at the previous one); read as sliding, the sum saturates.
    let near_max = ReserveItem {
        key: "k".into(),
        window: fixed(MINUTE),
        max: Amount::from_micros(i64::MAX),
        amount: Amount::from_micros(i64::MAX - 7),
    };
    clock.set(T0 + 3 * MINUTE + SECOND);
    for store in stores {
        reserved(store, [near_max.clone()]).await;
    }
    clock.set(T0 + 4 * MINUTE + SECOND);
    for store in stores {
        reserved(store, [near_max.clone()]).await;
    }
    same(&memory, &redis, "both windows near i64::MAX").await;
    assert_eq!(
        redis.current("k", sliding(MINUTE)).await.unwrap(),
        Amount::from_micros(i64::MAX)
    );
    let sliding_item = ReserveItem {
        window: sliding(MINUTE),
        amount: Amount::from_micros(0),
        ..near_max.clone()
    };
    let expected = memory
        .reserve(std::slice::from_ref(&sliding_item))
        .await
        .unwrap();
    assert_eq!(
        expected,
        ReserveOutcome::Reserved(toolgate_state::Ticket {
            taken: vec![toolgate_state::Taken {
                key: "k".into(),
                window: sliding(MINUTE),
                window_start_ms: T0 + 4 * MINUTE,
                amount: Amount::from_micros(0),
            }]
        }),
        "MAX + 0 fits a max of MAX"
    );
    assert_eq!(
        redis
            .reserve(std::slice::from_ref(&sliding_item))
            .await
            .unwrap(),
        expected
    );
    let one_more = ReserveItem {
        amount: Amount::from_micros(1),
        ..sliding_item
    };
    let expected = memory
        .reserve(std::slice::from_ref(&one_more))
        .await
        .unwrap();
    assert_eq!(
        expected,
        ReserveOutcome::Exceeded {
            index: 0,
            current: Amount::from_micros(i64::MAX)
        }
    );
    assert_eq!(
        redis
            .reserve(std::slice::from_ref(&one_more))
            .await
            .unwrap(),
        expected
    );
    // A negative max (only reachable through the public fields) admits nothing.
    let negative = ReserveItem {
        key: "n".into(),
        window: fixed(MINUTE),
        max: Amount::from_micros(-3),
        amount: Amount::from_micros(0),
    };
    let expected = memory
        .reserve(std::slice::from_ref(&negative))
        .await
        .unwrap();
    assert!(matches!(
        expected,
        ReserveOutcome::Exceeded { index: 0, .. }
    ));
    assert_eq!(
        redis
            .reserve(std::slice::from_ref(&negative))
            .await
            .unwrap(),
        expected
    );

    // A product count × overlap just past 2^53 (where a double rounds to a multiple of 8)
    // whose exact quotient sits one part in 60000 above an integer: it must round up.
    let big = ReserveItem {
        key: "p".into(),
        window: fixed(MINUTE),
        max: Amount::from_micros(i64::MAX),
        amount: Amount::from_micros(60_000 * 20_000_000 - 1),
    };
    clock.set(T0 + 5 * MINUTE + 30 * SECOND);
    for store in stores {
        reserved(store, [big.clone()]).await;
    }
    clock.set(T0 + 6 * MINUTE + 1);
    let expected = memory.current("p", sliding(MINUTE)).await.unwrap();
    assert_eq!(expected, Amount::from_micros(1_199_980_000_000));
    assert_eq!(redis.current("p", sliding(MINUTE)).await.unwrap(), expected);
}

async fn same(memory: &MemoryStore, redis: &RedisStore, label: &str) {
    for window in [fixed(MINUTE), sliding(MINUTE)] {
        let expected = memory.current("k", window).await.unwrap();
        let got = redis.current("k", window).await.unwrap();
        assert_eq!(got, expected, "{label}: {window:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_near_i64_max_are_exact() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::new(T0 + 30 * SECOND));
    let memory = MemoryStore::new("toolgate", clock.clone());
    let redis = test_time(&server.url(), clock.clone());
    let year = Window {
        length_ms: 366 * 24 * HOUR,
        mode: WindowMode::Sliding,
    };
    // 2^53 + 1 micros: the first integer a double cannot hold.
    let odd = ReserveItem {
        key: "spend".into(),
        window: year,
        max: Amount::from_micros(i64::MAX),
        amount: Amount::from_micros((1 << 53) + 1),
    };
    for store in [&memory as &dyn CounterStore, &redis] {
        reserved(store, [odd.clone()]).await;
        reserved(store, [odd.clone()]).await;
    }
    assert_eq!(
        redis.current("spend", year).await.unwrap(),
        Amount::from_micros((1 << 54) + 2)
    );
    // Weighted across a year boundary: count × overlap passes 2^53 many times over.
    clock.advance(Duration::from_millis(year.length_ms - 12_345));
    assert_eq!(
        redis.current("spend", year).await.unwrap(),
        memory.current("spend", year).await.unwrap()
    );
    // A sum past i64::MAX is exceeded, reported saturated, and nothing is written.
    let huge = ReserveItem {
        amount: Amount::from_micros(i64::MAX - 5),
        ..odd.clone()
    };
    let expected = memory.reserve(std::slice::from_ref(&huge)).await.unwrap();
    assert!(matches!(
        expected,
        ReserveOutcome::Exceeded { index: 0, .. }
    ));
    assert_eq!(
        redis.reserve(std::slice::from_ref(&huge)).await.unwrap(),
        expected
    );
}

// ---------------------------------------------------------------------------------------
// Keys, expiry and the server's clock
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_name_prefix_key_and_window_and_expire_after_the_previous_window() {
    let server = RedisServer::start();
    let store = server_time(&server.url());
    let minute = calls("create_issue._rate_minute", fixed(MINUTE), 5);
    let ticket = reserved(&store, [minute]).await;
    let start = ticket.taken[0].window_start_ms;
    assert_eq!(start % MINUTE, 0);
    let key = format!("{{toolgate}}:create_issue._rate_minute:60000:{start}");
    assert_eq!(server.command(&["KEYS", "*"]).unwrap(), key);
    assert_eq!(server.command(&["GET", &key]).unwrap(), "1000000");
    // Expires when it stops being the previous window: start + 2 minutes, server time.
    let before = server_now(&server);
    let ttl: u64 = server.command(&["PTTL", &key]).unwrap().parse().unwrap();
    let after = server_now(&server);
    let expires = start + 2 * MINUTE;
    assert!(
        (expires - after - 2..=expires - before + 2).contains(&ttl),
        "ttl {ttl}: expires at {expires}, read between {before} and {after}"
    );
    assert_eq!(store.key_pattern(), "{toolgate}:*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_come_from_the_server_clock_and_keys_really_expire() {
    let server = RedisServer::start();
    // A gateway clock a day off changes nothing: the store never reads it.
    let store = toolgate_state::open_store(
        &server.url(),
        "toolgate",
        Arc::new(ManualClock::new(T0 - 24 * HOUR)),
    )
    .unwrap();
    let two_seconds = calls("k", fixed(2 * SECOND), 3);
    let before = server_now(&server);
    let ticket = reserved(&*store, [two_seconds.clone()]).await;
    let after = server_now(&server);
    let start = ticket.taken[0].window_start_ms;
    assert!(
        (before - before % 2_000..=after - after % 2_000).contains(&start),
        "window start {start} is not the server's ({before}..{after})"
    );
    // Real keys go away by themselves at start + 2 × length.
    let deadline = Instant::now() + Duration::from_secs(6);
    while server.command(&["DBSIZE"]).unwrap() != "0" {
        assert!(Instant::now() < deadline, "the key did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server_now(&server) >= start + 4_000);
}

/// Real boundaries with two-second windows and the server's clock: a fixed window resets at
/// its boundary; a sliding one still counts the previous window there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_boundaries_fixed_resets_sliding_does_not_burst() {
    let server = RedisServer::start();
    let store = server_time(&server.url());
    let fixed_item = calls("fixed", fixed(2 * SECOND), 4);
    let sliding_item = calls("sliding", sliding(2 * SECOND), 4);
    // Fill both in the second half of a window, well before its end.
    wait_until_phase(&server, 2_000, 1_000..1_300).await;
    assert_eq!(admitted(&store, &fixed_item, 6).await, 4);
    assert_eq!(admitted(&store, &sliding_item, 6).await, 4);
    // Just after the boundary: the sliding window still counts most of the previous one.
    wait_until_phase(&server, 2_000, 20..300).await;
    assert_eq!(
        admitted(&store, &fixed_item, 6).await,
        4,
        "a fixed window resets"
    );
    let burst = admitted(&store, &sliding_item, 6).await;
    assert!(
        burst <= 1,
        "the sliding window let {burst} through just after the boundary"
    );
}

fn server_now(server: &RedisServer) -> u64 {
    let time = server.command(&["TIME"]).unwrap();
    let mut parts = time.lines();
    let seconds: u64 = parts.next().unwrap().parse().unwrap();
    let micros: u64 = parts.next().unwrap().parse().unwrap();
    seconds * 1_000 + micros / 1_000
}

/// Waits until the server's time modulo `length` falls in `phase`.
async fn wait_until_phase(server: &RedisServer, length: u64, phase: std::ops::Range<u64>) {
    loop {
        let now = server_now(server);
        let at = now % length;
        if phase.contains(&at) {
            return;
        }
        let wait = (phase.start + length - at) % length;
        tokio::time::sleep(Duration::from_millis(wait.clamp(1, 50))).await;
    }
}

// ---------------------------------------------------------------------------------------
// Scopes: keys are opaque
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_keys_with_any_text_are_separate_counters() {
    let server = RedisServer::start();
    let store = server_time(&server.url());
    // What the policy builds for global, tool, session, identity and args.<path> scopes,
    // with values an agent chose: separators, braces, globs, spaces, newlines, unicode.
    let keys = [
        "_global._rate_hour",
        "create_issue._rate_hour",
        "create_issue._rate_hour@session:3f2a-…",
        "create_issue._rate_hour@identity:alice@example.com",
        "create_issue._rate_hour@args.repo:acme/widgets",
        "create_issue._rate_hour@args.repo:acme/widgets:60000:1",
        "create_issue._rate_hour@args.repo:{toolgate}:*",
        "create_issue._rate_hour@args.repo:a b\nc\u{0}d",
        "create_issue._rate_hour@args.repo:ünï©ødé 🚀",
    ];
    for key in keys {
        let item = calls(key, fixed(HOUR), 2);
        assert_eq!(admitted(&store, &item, 3).await, 2, "{key:?}");
    }
    for key in keys {
        assert_eq!(
            store.current(key, fixed(HOUR)).await.unwrap(),
            amount("2"),
            "{key:?}"
        );
    }
    let stored = server.command(&["DBSIZE"]).unwrap();
    assert_eq!(stored, keys.len().to_string());
}

// ---------------------------------------------------------------------------------------
// Redis Cluster
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reserves_a_calls_counters_in_one_slot() {
    let cluster = RedisCluster::start();
    let store = RedisStore::open_dsn(&cluster.url(), "fleet-a", RedisOptions::default()).unwrap();
    let other = RedisStore::open_dsn(&cluster.url(), "fleet-b", RedisOptions::default()).unwrap();
    let call = [
        calls("_global._rate_hour", fixed(HOUR), 100),
        calls("create_issue._rate_minute@session:s1", sliding(MINUTE), 3),
        item(
            "refund.spend_day@identity:bob",
            fixed(24 * HOUR),
            "10",
            "2.5",
        ),
    ];
    for _ in 0..3 {
        reserved(&store, call.clone()).await;
    }
    assert_eq!(exceeded(&store, call.clone()).await, (1, amount("3")));
    let ticket = reserved(&other, call.clone()).await;
    other.rollback(&ticket).await.unwrap();
    assert_eq!(
        store
            .current("refund.spend_day@identity:bob", fixed(24 * HOUR))
            .await
            .unwrap(),
        amount("7.5")
    );
    // Every key of one prefix sits on one node (one slot): the hash tag at work.
    let mut holders = 0;
    for node in &cluster.nodes {
        let keys = node.command(&["KEYS", "{fleet-a}:*"]).unwrap();
        if !keys.is_empty() {
            holders += 1;
            assert_eq!(keys.lines().count(), 3);
        }
    }
    assert_eq!(holders, 1);
}

// ---------------------------------------------------------------------------------------
// Outages
// ---------------------------------------------------------------------------------------

fn unavailable(result: Result<ReserveOutcome, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_while_redis_is_down_and_connects_when_it_comes_up() {
    let port = free_port();
    let dsn = format!("redis://:s3cret-pw@127.0.0.1:{port}/0?timeout_ms=500");
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    let item = calls("k", fixed(MINUTE), 5);
    for _ in 0..3 {
        let started = Instant::now();
        let message = unavailable(store.reserve(std::slice::from_ref(&item)).await);
        // Bounded by the timeout (500 ms), with room for a busy machine.
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "{message}"
        );
        assert!(
            message.contains(&format!("redis://:***@127.0.0.1:{port}/0")),
            "{message}"
        );
        assert!(!message.contains("s3cret-pw"), "{message}");
    }
    // The same store, never reopened, works once a server answers on that port.
    let _server = RedisServer::start_on(port, &["--requirepass", "s3cret-pw"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.reserve(std::slice::from_ref(&item)).await {
            Ok(ReserveOutcome::Reserved(_)) => break,
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(
        store.current("k", fixed(MINUTE)).await.unwrap(),
        amount("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_unavailable_and_never_shown() {
    let server = RedisServer::start_with(&["--requirepass", "right-one"]);
    let port = server.port();
    let dsn = format!("redis://app:wrong%2Fone@127.0.0.1:{port}/0");
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    let message = unavailable(store.reserve(&[calls("k", fixed(MINUTE), 5)]).await);
    assert!(message.contains("redis://app:***@127.0.0.1:"), "{message}");
    assert!(
        !message.contains("wrong/one") && !message.contains("wrong%2Fone"),
        "{message}"
    );
    assert!(!message.contains("right-one"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_is_unavailable_then_service_resumes() {
    let mut server = RedisServer::start();
    let dsn = format!("{}?timeout_ms=500", server.url());
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    let item = calls("k", fixed(MINUTE), 1_000);
    assert_eq!(admitted(&store, &item, 10).await, 10);
    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        unavailable(store.reserve(std::slice::from_ref(&item)).await);
        assert!(started.elapsed() < Duration::from_millis(1_500));
    }
    assert!(matches!(
        store.current("k", fixed(MINUTE)).await,
        Err(StoreError::Unavailable(_))
    ));
    server.restart();
    // Counts lived in memory only (no persistence): they start again from zero, and the
    // store reconnects without being reopened.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(
        store.reserve(std::slice::from_ref(&item)).await,
        Ok(ReserveOutcome::Reserved(_))
    ) {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admitted(&store, &item, 10).await, 10);
}

/// A frozen Redis accepts connections and never answers: every operation still ends within
/// the timeout, and a reservation that Redis applies after the caller gave up is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_times_out_and_late_reservations_are_returned() {
    let server = RedisServer::start();
    let dsn = format!("{}?timeout_ms=300", server.url());
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    let item = calls("k", fixed(HOUR), 1_000);
    reserved(&store, [item.clone()]).await;
    server.pause();
    let started = Instant::now();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let item = item.clone();
            tokio::spawn(async move { store.reserve(std::slice::from_ref(&item)).await })
        })
        .collect();
    for attempt in attempts {
        unavailable(attempt.await.unwrap());
    }
    // Bounded by the timeout (300 ms), with room for a busy machine.
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "took {:?}",
        started.elapsed()
    );
    let rollback = store.rollback(&Ticket { taken: Vec::new() }).await;
    assert!(rollback.is_ok(), "an empty ticket needs no Redis");
    server.resume();
    // Redis now runs the 20 queued reservations; nobody took their tickets, so each is
    // rolled back by the task that waited for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(value) = store.current("k", fixed(HOUR)).await {
            if value == amount("1") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "abandoned reservations were kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_prefix_is_refused_for_redis() {
    let message = match RedisStore::open_dsn("redis://127.0.0.1:1/0", "", RedisOptions::default()) {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("{other:?}"),
    };
    assert!(message.contains("non-empty --state-prefix"), "{message}");
}
