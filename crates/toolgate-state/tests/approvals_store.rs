//! Approval records, the same behaviour from every store: the state machine, expiry on the
//! injected clock, one standing record per fingerprint, and "consumed at most once" — within
//! a process (many tasks) and, for SQLite, across processes sharing one file.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use toolgate_policy::ir::ApprovalMode;
use toolgate_state::{
    AdmitOutcome, ApprovalError, ApprovalState, ApprovalStore, ListFilter, ManualClock,
    MemoryApprovals, NewApproval, RedisApprovals, RedisTime, SqliteApprovals, Verdict,
};

const T0: u64 = 1_767_225_600_000;
const MINUTE: u64 = 60_000;

/// One backing store that tests open handles on (several handles on one SQLite file are
/// what several gateway processes see).
struct Backend {
    clock: Arc<ManualClock>,
    memory: Option<MemoryApprovals>,
    file: Option<(tempfile::TempDir, PathBuf)>,
    /// A redis-server of this test's own; the scripts are handed the manual clock's time.
    redis: Option<common::redis_server::RedisServer>,
}

impl Backend {
    fn memory() -> Backend {
        let clock = Arc::new(ManualClock::new(T0));
        Backend {
            memory: Some(MemoryApprovals::new(clock.clone())),
            clock,
            file: None,
            redis: None,
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Backend {
            clock: Arc::new(ManualClock::new(T0)),
            memory: None,
            file: Some((dir, path)),
            redis: None,
        }
    }

    fn redis() -> Backend {
        Backend {
            clock: Arc::new(ManualClock::new(T0)),
            memory: None,
            file: None,
            redis: Some(common::redis_server::RedisServer::start()),
        }
    }

    fn handle(&self, prefix: &str) -> Arc<dyn ApprovalStore> {
        match (&self.memory, &self.file) {
            (Some(m), _) => Arc::new(m.clone()),
            (None, Some((_, path))) => {
                Arc::new(SqliteApprovals::open(path, prefix, self.clock.clone()).unwrap())
            }
            _ => {
                let server = self.redis.as_ref().unwrap();
                let time = RedisTime::Clock(self.clock.clone());
                Arc::new(RedisApprovals::open_dsn(&server.url(), prefix, time).unwrap())
            }
        }
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }
}

fn backends() -> Vec<(&'static str, Backend)> {
    vec![
        ("memory", Backend::memory()),
        ("sqlite", Backend::sqlite()),
        ("redis", Backend::redis()),
    ]
}

fn request(id: &str, fingerprint: &str) -> NewApproval {
    NewApproval {
        id: id.into(),
        fingerprint: fingerprint.into(),
        tool: "write_file".into(),
        identity: Some("alice".into()),
        session: Some("s1".into()),
        rule: "writes need approval".into(),
        policy: "abc123".into(),
        mode: ApprovalMode::Retry,
        message: Some("A person checks every write".into()),
        arguments: r#"{"content":"hi","path":"notes/x"}"#.into(),
        timeout_ms: 30 * MINUTE,
    }
}

fn approve() -> Verdict {
    Verdict::Approve {
        note: Some("looks fine".into()),
    }
}

#[tokio::test]
async fn pending_then_approved_then_consumed_once() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        let first = store.admit(request("apr_1", "fp-a")).await.unwrap();
        assert_eq!(first.outcome, AdmitOutcome::Created, "{name}");
        assert_eq!(first.record.state, ApprovalState::Pending);
        assert_eq!(first.record.expires_ms, T0 + 30 * MINUTE);

        // A retry while pending reuses the record, whatever id it proposes.
        backend.advance(1_000);
        let retry = store.admit(request("apr_2", "fp-a")).await.unwrap();
        assert_eq!(retry.outcome, AdmitOutcome::Pending, "{name}");
        assert_eq!(retry.record.id, "apr_1");
        assert!(store.get("apr_2").await.unwrap().is_none(), "{name}");

        let approved = store.decide("apr_1", &approve(), "cli:bob").await.unwrap();
        assert_eq!(approved.state, ApprovalState::Approved);
        assert_eq!(approved.decided_by.as_deref(), Some("cli:bob"));
        assert_eq!(approved.note.as_deref(), Some("looks fine"));
        // Usable for a whole timeout from the decision.
        assert_eq!(approved.expires_ms, T0 + 1_000 + 30 * MINUTE);

        let used = store.admit(request("apr_3", "fp-a")).await.unwrap();
        assert_eq!(used.outcome, AdmitOutcome::Consumed, "{name}");
        assert_eq!(used.record.id, "apr_1");
        assert_eq!(used.record.state, ApprovalState::Consumed);

        // The next identical call needs a new approval.
        let again = store.admit(request("apr_4", "fp-a")).await.unwrap();
        assert_eq!(again.outcome, AdmitOutcome::Created, "{name}");
        assert_eq!(again.record.id, "apr_4");

        // Deciding twice is a conflict that names the state.
        let err = store.decide("apr_1", &approve(), "x").await.unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalError::Conflict {
                    state: ApprovalState::Consumed,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        assert!(matches!(
            store.decide("apr_nope", &approve(), "x").await.unwrap_err(),
            ApprovalError::NotFound(_)
        ));
    }
}

#[tokio::test]
async fn another_fingerprint_is_another_request() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        store.admit(request("apr_a", "fp-a")).await.unwrap();
        store.decide("apr_a", &approve(), "x").await.unwrap();
        let other = store.admit(request("apr_b", "fp-b")).await.unwrap();
        assert_eq!(other.outcome, AdmitOutcome::Created, "{name}");
        assert_eq!(
            store.get("apr_a").await.unwrap().unwrap().state,
            ApprovalState::Approved,
            "{name}: the first approval is untouched"
        );
    }
}

#[tokio::test]
async fn a_denial_stands_with_its_reason_then_lapses() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        store.admit(request("apr_1", "fp")).await.unwrap();
        let deny = Verdict::Deny {
            reason: "not on a Friday".into(),
        };
        let denied = store.decide("apr_1", &deny, "admin-api").await.unwrap();
        assert_eq!(denied.state, ApprovalState::Denied);
        let retry = store.admit(request("apr_2", "fp")).await.unwrap();
        assert_eq!(retry.outcome, AdmitOutcome::Denied, "{name}");
        assert_eq!(retry.record.reason.as_deref(), Some("not on a Friday"));
        backend.advance(30 * MINUTE);
        let later = store.admit(request("apr_3", "fp")).await.unwrap();
        assert_eq!(later.outcome, AdmitOutcome::Created, "{name}");
        assert_eq!(
            store.get("apr_1").await.unwrap().unwrap().state,
            ApprovalState::Denied,
            "{name}: a lapsed denial stays a denial in the record"
        );
    }
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        store.admit(request("apr_1", "fp")).await.unwrap();
        backend.advance(30 * MINUTE - 1);
        assert_eq!(
            store.get("apr_1").await.unwrap().unwrap().state,
            ApprovalState::Pending
        );
        backend.advance(1);
        // Reads as expired at once; nobody can approve it any more.
        assert_eq!(
            store.get("apr_1").await.unwrap().unwrap().state,
            ApprovalState::Expired,
            "{name}"
        );
        let err = store.decide("apr_1", &approve(), "x").await.unwrap_err();
        assert!(matches!(
            err,
            ApprovalError::Conflict {
                state: ApprovalState::Expired,
                ..
            }
        ));
        // After expiry, the same call starts a new request; the old one is written down.
        let next = store.admit(request("apr_2", "fp")).await.unwrap();
        assert_eq!(next.outcome, AdmitOutcome::Created, "{name}");
        assert_eq!(next.expired.len(), 1);
        assert_eq!(next.expired[0].id, "apr_1");

        // An approval nobody uses expires too, and the sweep reports it once.
        store.decide("apr_2", &approve(), "x").await.unwrap();
        backend.advance(30 * MINUTE);
        let swept = store.expire_due().await.unwrap();
        assert_eq!(
            swept.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["apr_2"],
            "{name}"
        );
        assert!(store.expire_due().await.unwrap().is_empty(), "{name}");
        assert!(matches!(
            store.consume("apr_2").await.unwrap_err(),
            ApprovalError::Conflict {
                state: ApprovalState::Expired,
                ..
            }
        ));
    }
}

#[tokio::test]
async fn a_failed_call_gives_the_approval_back_until_it_expires() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        store.admit(request("apr_1", "fp")).await.unwrap();
        store.decide("apr_1", &approve(), "x").await.unwrap();
        assert_eq!(
            store.admit(request("apr_2", "fp")).await.unwrap().outcome,
            AdmitOutcome::Consumed
        );
        let back = store.release("apr_1").await.unwrap();
        assert_eq!(back.state, ApprovalState::Approved, "{name}");
        assert!(matches!(
            store.release("apr_1").await.unwrap_err(),
            ApprovalError::Conflict {
                state: ApprovalState::Approved,
                ..
            }
        ));
        assert_eq!(
            store.admit(request("apr_3", "fp")).await.unwrap().outcome,
            AdmitOutcome::Consumed,
            "{name}"
        );
        backend.advance(31 * MINUTE);
        let late = store.release("apr_1").await.unwrap();
        assert_eq!(late.state, ApprovalState::Expired, "{name}");
    }
}

#[tokio::test]
async fn a_withdrawn_request_cannot_be_approved() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        store.admit(request("apr_1", "fp")).await.unwrap();
        let gone = store
            .withdraw("apr_1", "the client cancelled")
            .await
            .unwrap();
        assert_eq!(gone.state, ApprovalState::Withdrawn, "{name}");
        assert!(store.decide("apr_1", &approve(), "x").await.is_err());
        let list = store.list(ListFilter::default()).await.unwrap();
        assert!(list.is_empty(), "{name}: only pending requests by default");
        let all = store
            .list(ListFilter {
                all: true,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn lists_pending_newest_first_and_forgets_old_history() {
    for (name, backend) in backends() {
        let store = backend.handle("toolgate");
        for i in 0..3 {
            store
                .admit(request(&format!("apr_{i}"), &format!("fp{i}")))
                .await
                .unwrap();
            backend.advance(10);
        }
        store.decide("apr_1", &approve(), "x").await.unwrap();
        let pending: Vec<String> = store
            .list(ListFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(pending, vec!["apr_2", "apr_0"], "{name}");
        backend.advance(8 * 24 * 60 * MINUTE);
        store.expire_due().await.unwrap();
        assert_eq!(
            store
                .list(ListFilter {
                    all: true,
                    limit: 10
                })
                .await
                .unwrap()
                .len(),
            3,
            "{name}: just-expired records are kept"
        );
        backend.advance(8 * 24 * 60 * MINUTE);
        store.expire_due().await.unwrap();
        assert!(
            store
                .list(ListFilter {
                    all: true,
                    limit: 10
                })
                .await
                .unwrap()
                .is_empty(),
            "{name}: history older than the retention is deleted"
        );
    }
}

#[tokio::test]
async fn prefixes_keep_deployments_apart() {
    for (name, backend) in [("sqlite", Backend::sqlite()), ("redis", Backend::redis())] {
        let a = backend.handle("team-a");
        let b = backend.handle("team-b");
        a.admit(request("apr_1", "fp")).await.unwrap();
        assert!(b.get("apr_1").await.unwrap().is_none(), "{name}");
        assert_eq!(
            b.admit(request("apr_2", "fp")).await.unwrap().outcome,
            AdmitOutcome::Created,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_consume_one_approval_once() {
    for (name, backend) in backends() {
        let setup = backend.handle("toolgate");
        setup.admit(request("apr_1", "fp")).await.unwrap();
        setup.decide("apr_1", &approve(), "x").await.unwrap();
        // Eight "gateways" (separate connections for SQLite) retry the call at once.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = backend.handle("toolgate");
                tokio::spawn(async move {
                    store
                        .admit(request(&format!("apr_r{i}"), "fp"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut consumed = 0;
        let mut created = 0;
        for h in handles {
            match h.await.unwrap().outcome {
                AdmitOutcome::Consumed => consumed += 1,
                AdmitOutcome::Created => created += 1,
                AdmitOutcome::Pending => {}
                AdmitOutcome::Denied => panic!("{name}: nothing was denied"),
            }
        }
        assert_eq!(consumed, 1, "{name}");
        assert_eq!(created, 1, "{name}: the losers share one new request");
    }
}

const CHILD_DB: &str = "TOOLGATE_APPROVALS_TEST_DB";
const CHILD_GO: &str = "TOOLGATE_APPROVALS_TEST_GO";
const PROCESSES: usize = 4;
const ATTEMPTS: usize = 25;

/// Run by `processes_sharing_a_file_consume_an_approval_once`; does nothing otherwise.
#[test]
#[ignore = "child process of processes_sharing_a_file_consume_an_approval_once"]
fn admit_as_child_process() {
    let Ok(db) = std::env::var(CHILD_DB) else {
        return;
    };
    let go = std::env::var(CHILD_GO).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let consumed = rt.block_on(async {
        let store = SqliteApprovals::open(
            Path::new(&db),
            "toolgate",
            Arc::new(ManualClock::new(T0 + 1)),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&go).exists() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let mut consumed = Vec::new();
        for i in 0..ATTEMPTS {
            let id = format!("apr_{}_{i}", std::process::id());
            let admitted = store.admit(request(&id, "fp")).await.unwrap();
            if admitted.outcome == AdmitOutcome::Consumed {
                consumed.push(admitted.record.id);
            }
        }
        consumed
    });
    println!("consumed={}", consumed.join(","));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_consume_an_approval_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let go = dir.path().join("go");
    let store = SqliteApprovals::open(&db, "toolgate", Arc::new(ManualClock::new(T0))).unwrap();
    store.admit(request("apr_shared", "fp")).await.unwrap();
    store.decide("apr_shared", &approve(), "x").await.unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "admit_as_child_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_DB, &db)
                .env(CHILD_GO, &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"").unwrap();
    let mut consumed: Vec<String> = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("consumed="))
            .unwrap_or_else(|| panic!("no result from child: {stdout}"));
        consumed.extend(line.split(',').filter(|s| !s.is_empty()).map(String::from));
    }
    assert_eq!(consumed, vec!["apr_shared".to_string()]);
    assert_eq!(
        store.get("apr_shared").await.unwrap().unwrap().state,
        ApprovalState::Consumed
    );
    // Every other attempt landed on one shared pending request.
    let pending = store.list(ListFilter::default()).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
}

#[tokio::test]
async fn the_table_joins_an_existing_counter_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    // Approvals first on a fresh file, then the counter store: both must open it.
    let approvals = SqliteApprovals::open(&db, "toolgate", clock.clone()).unwrap();
    approvals.admit(request("apr_1", "fp")).await.unwrap();
    toolgate_state::SqliteStore::open(&db, "toolgate", clock.clone()).unwrap();
    let reopened = SqliteApprovals::open(&db, "toolgate", clock).unwrap();
    assert_eq!(
        reopened.get("apr_1").await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
}
