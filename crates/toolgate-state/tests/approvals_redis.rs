//! Approval records in Redis: what only a shared server adds to `approvals_store.rs` (which
//! runs the state machine over every store, Redis included).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use toolgate_policy::ir::ApprovalMode;
use toolgate_state::{
    AdmitOutcome, ApprovalState, ApprovalStore, ManualClock, NewApproval, RedisApprovals,
    RedisTime, Verdict,
};

use common::redis_server::RedisServer;

const T0: u64 = 1_767_225_600_000;
const MINUTE: u64 = 60_000;

fn request(id: &str, fingerprint: &str) -> NewApproval {
    NewApproval {
        id: id.into(),
        fingerprint: fingerprint.into(),
        tool: "write_file".into(),
        identity: Some("alice".into()),
        session: None,
        rule: "writes need approval".into(),
        policy: "abc123".into(),
        mode: ApprovalMode::Hold,
        message: None,
        arguments: r#"{"path":"notes/x"}"#.into(),
        timeout_ms: 30 * MINUTE,
    }
}

fn open(server: &RedisServer, prefix: &str, time: RedisTime) -> Arc<dyn ApprovalStore> {
    Arc::new(RedisApprovals::open_dsn(&server.url(), prefix, time).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumed_exactly_once_under_concurrent_admits() {
    let server = RedisServer::start();
    // Two gateways: two store instances, two connections, one Redis, the server's clock.
    let a = open(&server, "toolgate", RedisTime::Server);
    let b = open(&server, "toolgate", RedisTime::Server);
    let first = a.admit(request("apr_1", "fp")).await.unwrap();
    assert_eq!(first.outcome, AdmitOutcome::Created);
    let approved = b
        .decide("apr_1", &Verdict::Approve { note: None }, "cli:bob")
        .await
        .unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.note, None);

    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .admit(request(&format!("apr_r{i}"), "fp"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let (mut consumed, mut created, mut pending) = (0, 0, 0);
    for handle in handles {
        let admission = handle.await.unwrap();
        match admission.outcome {
            AdmitOutcome::Consumed => {
                consumed += 1;
                assert_eq!(admission.record.id, "apr_1");
                assert_eq!(admission.record.state, ApprovalState::Consumed);
            }
            AdmitOutcome::Created => created += 1,
            AdmitOutcome::Pending => pending += 1,
            AdmitOutcome::Denied => panic!("nothing was denied"),
        }
    }
    assert_eq!(consumed, 1);
    assert_eq!(created, 1, "the losers share one new request");
    assert_eq!(pending, 14);
    let record = a.get("apr_1").await.unwrap().unwrap();
    assert_eq!(record.state, ApprovalState::Consumed);
    assert!(record.consumed_ms.is_some());
}

#[tokio::test]
async fn records_are_hashes_under_the_prefix_tag() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(&server, "team-a", RedisTime::Clock(clock));
    store.admit(request("apr_1", "fp")).await.unwrap();
    let keys = server.command(&["KEYS", "*"]).unwrap();
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "{team-a}:apr-fp:fp",
            "{team-a}:apr-list",
            "{team-a}:apr:apr_1"
        ]
    );
    assert_eq!(
        server
            .command(&["HGET", "{team-a}:apr:apr_1", "state"])
            .unwrap()
            .trim(),
        "pending"
    );
    // Optional fields that were not given are absent, and read back as None.
    let record = store.get("apr_1").await.unwrap().unwrap();
    assert_eq!(record.session, None);
    assert_eq!(record.message, None);
    assert_eq!(record.mode, ApprovalMode::Hold);
    assert_eq!(record.created_ms, T0);
    assert_eq!(record.expires_ms, T0 + 30 * MINUTE);
}

#[tokio::test]
async fn the_server_clock_dates_records() {
    let server = RedisServer::start();
    let store = open(&server, "toolgate", RedisTime::Server);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let record = store.admit(request("apr_1", "fp")).await.unwrap().record;
    // The local redis-server shares this machine's clock.
    assert!(record.created_ms + 5_000 >= before && record.created_ms <= before + 5_000);
    assert_eq!(record.expires_ms, record.created_ms + 30 * MINUTE);
}
