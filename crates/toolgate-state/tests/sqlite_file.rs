//! What only the SQLite store promises: the count lives in a file that survives restarts,
//! is shared safely by several OS processes, is created private, refuses files it does not
//! understand, and reports a lock it cannot get as "unavailable".

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::*;
use toolgate_state::{
    open_store, AfterReserve, CounterStore, ManualClock, ReserveOutcome, SqliteOptions,
    SqliteStore, StoreError,
};

const CHILD_DB: &str = "TOOLGATE_STATE_TEST_CHILD_DB";
const CHILD_GO: &str = "TOOLGATE_STATE_TEST_CHILD_GO";
const CHILD_ID: &str = "TOOLGATE_STATE_TEST_CHILD_ID";
const PROCESSES: usize = 4;
const ATTEMPTS_PER_PROCESS: usize = 300;
const SHARED_MAX: u32 = 600;

fn open(path: &Path, clock: Arc<ManualClock>) -> SqliteStore {
    SqliteStore::open(path, "toolgate", clock).unwrap()
}

/// Run by the child processes of `processes_sharing_a_file_never_overshoot` (this same test
/// executable, re-invoked with the database path in the environment); skipped otherwise.
#[test]
#[ignore = "child process of processes_sharing_a_file_never_overshoot"]
fn reserve_as_child_process() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let go = std::env::var(CHILD_GO).unwrap();
    let id = std::env::var(CHILD_ID).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let won = rt.block_on(async {
        // Every process sees the same minute, whatever its start-up delay.
        let store = open(Path::new(&db), Arc::new(ManualClock::new(T0 + 30 * SECOND)));
        // Start together, so the reservations really interleave.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&go).exists() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let shared = calls("_global._rate_minute", fixed(MINUTE), SHARED_MAX);
        let own = calls(&format!("process-{id}._rate_minute"), fixed(MINUTE), 1_000);
        let mut won = 0;
        for _ in 0..ATTEMPTS_PER_PROCESS {
            if let ReserveOutcome::Reserved(t) =
                store.reserve(&[own.clone(), shared.clone()]).await.unwrap()
            {
                store.commit(&t).await.unwrap();
                won += 1;
            }
        }
        won
    });
    println!("reserved={won}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_never_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let go = dir.path().join("go");
    let clock = Arc::new(ManualClock::new(T0 + 30 * SECOND));
    let store = open(&db, clock.clone()); // creates the schema before the children race
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "reserve_as_child_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_DB, &db)
                .env(CHILD_GO, &go)
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"").unwrap();
    let mut total = 0;
    let mut per_process = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let won: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("reserved="))
            .unwrap_or_else(|| panic!("no result from child: {stdout}"))
            .trim()
            .parse()
            .unwrap();
        per_process.push(won);
        total += won;
    }
    eprintln!("per process: {per_process:?}");
    assert_eq!(total, SHARED_MAX as usize, "per process: {per_process:?}");
    let shared = calls("_global._rate_minute", fixed(MINUTE), SHARED_MAX);
    assert_eq!(
        store.current(&shared.key, shared.window).await.unwrap(),
        amount(&SHARED_MAX.to_string())
    );
    // All or none across processes: each process's own counter moved with the shared one.
    for (id, won) in per_process.iter().enumerate() {
        let own = store
            .current(&format!("process-{id}._rate_minute"), fixed(MINUTE))
            .await
            .unwrap();
        assert_eq!(own, amount(&won.to_string()));
    }
}

#[tokio::test]
async fn counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    let item = item("refund.spend_day", fixed(24 * HOUR), "100", "12.5");
    {
        let store = open(&db, clock.clone());
        reserved(&store, [item.clone()]).await;
        reserved(&store, [item.clone()]).await;
    }
    let store = open(&db, clock.clone());
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("25")
    );
    let big = item_with_amount(&item, "75.000001");
    assert!(matches!(
        store.reserve(&[big]).await.unwrap(),
        ReserveOutcome::Exceeded { index: 0, .. }
    ));
}

fn item_with_amount(base: &toolgate_state::ReserveItem, add: &str) -> toolgate_state::ReserveItem {
    toolgate_state::ReserveItem {
        amount: amount(add),
        ..base.clone()
    }
}

#[tokio::test]
async fn a_cancelled_reserve_does_not_leak_quota() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(&db, clock.clone());
    let item = calls("search._rate_minute", fixed(MINUTE), 1);
    // Another process holds the write lock, so the reservation waits inside the worker...
    let mut other = rusqlite::Connection::open(&db).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let items = [item.clone()];
    let mut reserve = store.reserve(&items);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(reserve.as_mut().poll(&mut cx), Poll::Pending));
    // ...when its caller gives up (a client disconnect, a timeout).
    drop(reserve);
    lock.commit().unwrap();
    // The worker made the reservation (its row exists), found nobody to hand the ticket
    // to, and undid it.
    assert_eq!(
        store.current(&item.key, item.window).await.unwrap(),
        amount("0")
    );
    let row: Option<i64> = other
        .query_row(
            "SELECT value FROM counters WHERE key = ?1",
            [&item.key],
            |r| r.get(0),
        )
        .ok();
    assert_eq!(row, Some(0), "the reservation was made, then undone");
    reserved(&store, [item]).await;
}

#[tokio::test]
async fn a_continuation_runs_once_on_the_database_thread_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store = Arc::new(open(&db, Arc::new(ManualClock::new(T0))));
    let item = calls("search._rate_minute", fixed(MINUTE), 2);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let db = db.clone();
        let then = AfterReserve::new(move |outcome| {
            // The commit is visible to another connection by the time the continuation runs.
            let other = rusqlite::Connection::open(&db).unwrap();
            let committed: i64 = other
                .query_row("SELECT coalesce(sum(value), 0) FROM counters", [], |r| {
                    r.get(0)
                })
                .unwrap();
            let thread = std::thread::current().name().map(str::to_owned);
            let _ = tx.send((outcome, thread, committed));
        });
        Arc::clone(&store).reserve_then(vec![item.clone()], then);
        outcomes.push(rx.await.unwrap());
    }
    for (i, (outcome, thread, committed)) in outcomes.into_iter().enumerate() {
        assert_eq!(thread.as_deref(), Some("toolgate-sqlite"));
        match (i, outcome.unwrap()) {
            (0 | 1, ReserveOutcome::Reserved(_)) => {
                assert_eq!(committed, (i as i64 + 1) * 1_000_000)
            }
            (2, ReserveOutcome::Exceeded { index: 0, .. }) => {}
            (i, other) => panic!("call {i}: {other:?}"),
        }
    }
}

/// A thread allowed to reserve here runs the transaction itself, continuation and all, when
/// nothing holds the database; the counts are the same as through the store's thread.
#[test]
fn a_thread_allowed_to_reserve_here_runs_the_reservation_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store = Arc::new(open(&db, Arc::new(ManualClock::new(T0))));
    let item = calls("search._rate_minute", fixed(MINUTE), 2);
    // The store's first call runs its first cleanup, on the store's thread.
    let (first, done) = std::sync::mpsc::channel();
    let then = AfterReserve::new(move |outcome| drop(first.send(outcome)));
    Arc::clone(&store).reserve_then(vec![calls("warm-up", fixed(MINUTE), 1)], then);
    done.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    toolgate_state::reserve_here(true);
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let tx = tx.clone();
        let then = AfterReserve::new(move |outcome| {
            let thread = std::thread::current().id();
            let _ = tx.send((outcome, thread));
        });
        Arc::clone(&store).reserve_then(vec![item.clone()], then);
    }
    toolgate_state::reserve_here(false);
    let here = std::thread::current().id();
    let outcomes: Vec<_> = rx.try_iter().collect();
    assert_eq!(
        outcomes.len(),
        3,
        "every continuation ran before reserve_then returned"
    );
    for (i, (outcome, thread)) in outcomes.into_iter().enumerate() {
        assert_eq!(thread, here, "call {i} ran on another thread");
        match (i, outcome.unwrap()) {
            (0 | 1, ReserveOutcome::Reserved(_))
            | (2, ReserveOutcome::Exceeded { index: 0, .. }) => {}
            (i, other) => panic!("call {i}: {other:?}"),
        }
    }
    let other = rusqlite::Connection::open(&db).unwrap();
    let committed: i64 = other
        .query_row(
            "SELECT coalesce(sum(value), 0) FROM counters WHERE key = ?1",
            [&item.key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(committed, 2_000_000);
}

/// With every call allowed to reserve here, expired windows are still deleted on time: a
/// call made once a cleanup is due goes to the store's thread, which cleans up first.
#[test]
fn reserving_here_leaves_the_due_cleanup_to_the_store_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(open(&db, clock.clone()));
    let reserve = |key: &str| {
        let (tx, rx) = std::sync::mpsc::channel();
        let then = AfterReserve::new(move |outcome| {
            let _ = tx.send((outcome, std::thread::current().id()));
        });
        Arc::clone(&store).reserve_then(vec![calls(key, fixed(MINUTE), 5)], then);
        let (outcome, thread) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(outcome, Ok(ReserveOutcome::Reserved(_))));
        thread == std::thread::current().id()
    };
    let rows = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM counters", [], |r| r.get(0))
            .unwrap()
    };
    toolgate_state::reserve_here(true);
    assert!(
        !reserve("old"),
        "the first call runs the first cleanup on the store's thread"
    );
    assert!(
        reserve("old"),
        "within the interval, calls are reserved here"
    );
    clock.advance(Duration::from_secs(5 * 60));
    assert!(
        !reserve("new"),
        "a due cleanup sends the call to the store's thread"
    );
    assert_eq!(rows(), 1, "the expired window of `old` was deleted");
    assert!(reserve("new"));
    toolgate_state::reserve_here(false);
}

/// While another connection holds the write lock, a thread allowed to reserve here does not
/// wait for it: the reservation goes to the store's thread, which waits and then answers.
#[tokio::test]
async fn a_held_write_lock_sends_the_reservation_to_the_store_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store = Arc::new(open(&db, Arc::new(ManualClock::new(T0))));
    let mut holder = rusqlite::Connection::open(&db).unwrap();
    let lock = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let then = AfterReserve::new(move |outcome| {
        let thread = std::thread::current().name().map(str::to_owned);
        let _ = tx.send((outcome, thread));
    });
    let started = Instant::now();
    toolgate_state::reserve_here(true);
    Arc::clone(&store).reserve_then(vec![calls("k", fixed(MINUTE), 5)], then);
    toolgate_state::reserve_here(false);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the calling thread waited for the lock"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.rollback().unwrap();
    let (outcome, thread) = rx.await.unwrap();
    assert!(matches!(outcome, Ok(ReserveOutcome::Reserved(_))));
    assert_eq!(thread.as_deref(), Some("toolgate-sqlite"));
}

/// Threads reserving here and the store's thread, all at once on one counter: exactly the
/// limit is granted, as between processes.
#[test]
fn reservations_here_and_on_the_store_thread_never_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(
        &dir.path().join("state.db"),
        Arc::new(ManualClock::new(T0)),
    ));
    let item = calls("shared._rate_minute", fixed(MINUTE), 300);
    let (tx, rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, item, tx) = (Arc::clone(&store), item.clone(), tx.clone());
            std::thread::spawn(move || {
                // Half the threads may reserve here; the others always hand over.
                toolgate_state::reserve_here(t % 2 == 0);
                for _ in 0..150 {
                    let tx = tx.clone();
                    let then = AfterReserve::new(move |outcome| drop(tx.send(outcome)));
                    Arc::clone(&store).reserve_then(vec![item.clone()], then);
                }
            })
        })
        .collect();
    drop(tx);
    for thread in threads {
        thread.join().unwrap();
    }
    let outcomes: Vec<_> = rx.iter().collect();
    assert_eq!(outcomes.len(), 600);
    let granted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(ReserveOutcome::Reserved(_))))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(ReserveOutcome::Exceeded { .. })))
        .count();
    assert_eq!((granted, refused), (300, 300));
}

#[tokio::test]
async fn a_continuation_the_store_drops_runs_as_unavailable() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    drop(AfterReserve::new(move |outcome| {
        let _ = tx.send(outcome);
    }));
    assert!(matches!(rx.await.unwrap(), Err(StoreError::Unavailable(_))));
    // An invalid reservation is answered at once, on the caller's thread.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(
        &dir.path().join("s.db"),
        Arc::new(ManualClock::new(T0)),
    ));
    let mut bad = calls("k", fixed(MINUTE), 1);
    bad.window.length_ms = 0;
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.reserve_then(vec![bad], AfterReserve::new(move |o| drop(tx.send(o))));
    assert!(rx.await.unwrap().is_err());
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let store =
        SqliteStore::open_with(&db, "toolgate", Arc::new(ManualClock::new(T0)), options).unwrap();
    let mut other = rusqlite::Connection::open(&db).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let err = store
        .reserve(&[calls("k", fixed(MINUTE), 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("locked")),
        "{err}"
    );
    drop(lock);
    reserved(&store, [calls("k", fixed(MINUTE), 1)]).await;
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open(&db, "toolgate", Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("schema version 99")),
        "{err}"
    );
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = SqliteStore::open(&db, "toolgate", Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("not a toolgate state database")),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&db, "toolgate", Arc::new(ManualClock::new(T0))).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("not an SQLite database")),
        "{err}"
    );
}

#[test]
fn an_unopenable_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    // The parent "directory" is a regular file.
    let err = SqliteStore::open(
        blocker.join("state.db"),
        "toolgate",
        Arc::new(ManualClock::new(T0)),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_directory_and_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("toolgate").join("state.db");
    let dsn = format!("sqlite://{}", db.display());
    let store = open_store(&dsn, "toolgate", Arc::new(ManualClock::new(T0))).unwrap();
    reserved(&*store, [calls("k", fixed(MINUTE), 1)]).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("nested")), 0o700);
    assert_eq!(mode(&db), 0o600);
    let wal = db.with_file_name("state.db-wal");
    assert!(wal.exists(), "the database runs in WAL mode");
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn the_schema_records_its_version_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let _store = open(&db, Arc::new(ManualClock::new(T0)));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn cleanup_spares_other_live_prefixes_and_runs_on_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    let a: Arc<dyn CounterStore> = Arc::new(open(&db, clock.clone()));
    let b: Arc<dyn CounterStore> =
        Arc::new(SqliteStore::open(&db, "other", clock.clone()).unwrap());
    reserved(&*a, [calls("k", fixed(MINUTE), 5)]).await;
    reserved(&*b, [calls("k", fixed(HOUR), 5)]).await;
    clock.advance(Duration::from_secs(5 * 60));
    reserved(&*a, [calls("z", fixed(MINUTE), 5)]).await;
    // a's old minute went; b's hour window is still current and stays.
    assert_eq!(b.current("k", fixed(HOUR)).await.unwrap(), amount("1"));
    assert_eq!(a.current("k", fixed(MINUTE)).await.unwrap(), amount("0"));
    let rows = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM counters", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows(&db), 2);
    // Within the interval no cleanup runs, even though `z`'s window has expired by now.
    clock.advance(Duration::from_secs(59));
    reserved(&*a, [calls("y", fixed(SECOND), 5)]).await;
    assert_eq!(rows(&db), 3);
}

/// Many calls at once share transactions (group commit); each still reads what the calls
/// before it wrote, so exactly `max` are admitted, and a call with two counters takes both
/// or neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_committed_together_are_still_counted_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(
        &dir.path().join("state.db"),
        Arc::new(ManualClock::new(T0)),
    ));
    let small = calls("t._rate_minute", fixed(MINUTE), 10);
    let large = calls("t._rate_hour", fixed(60 * MINUTE), 1_000);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&store);
            let items = [large.clone(), small.clone()];
            tokio::spawn(async move { store.reserve(&items).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), ReserveOutcome::Reserved(_)) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(
        store.current(&small.key, small.window).await.unwrap(),
        amount("10")
    );
    // The refused calls took nothing from the counter they did fit under.
    assert_eq!(
        store.current(&large.key, large.window).await.unwrap(),
        amount("10")
    );
}
