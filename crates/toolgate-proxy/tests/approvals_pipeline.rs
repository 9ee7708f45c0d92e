//! Calls that need a person's approval, through the pipeline: retry mode (answer, approve,
//! retry once), hold mode (wait without blocking the session), expiry on an injected clock,
//! an approval given back when the call fails, and two gateways sharing one state file.

#![allow(clippy::unwrap_used)]

mod approvals_support;

use std::sync::Arc;
use std::time::Duration;

use approvals_support::*;
use toolgate_policy::Amount;
use toolgate_proxy::approvals::ApprovalOptions;
use toolgate_proxy::{Gateway, GatewayOptions};
use toolgate_state::{ApprovalState, ManualClock, Verdict};

fn approve() -> Verdict {
    Verdict::Approve { note: None }
}

const WRITE: &str = r#"{"path":"notes/a.txt","content":"hello"}"#;

#[tokio::test]
async fn retry_mode_asks_then_forwards_the_identical_call_once() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let asked = g.next_answer().await;
    assert_eq!(asked["id"], 1);
    assert_eq!(asked["result"]["isError"], true);
    let text = first_text(&asked);
    let id = approval_id(&asked);
    assert!(
        text.starts_with("[APPROVAL REQUIRED] A person must approve this call"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("retry exactly the same call"), "{text}");
    assert!(text.contains("Writes are checked by a person."), "{text}");
    assert_eq!(decision(&asked)["decision"], "approval_required");
    assert_eq!(decision(&asked)["rule"], "writes need approval");
    assert_eq!(
        decision(&asked)["approval"]["expires_at"],
        "2026-01-01T10:10:00.000Z"
    );
    g.nothing_to_server();

    // Retrying while pending reuses the request.
    g.client(&call(2, "write_file", WRITE)).await;
    assert_eq!(approval_id(&g.next_answer().await), id);
    g.nothing_to_server();

    g.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();
    // The same call, keys in another order: forwarded byte for byte, under a minted id.
    let retry = call(
        3,
        "write_file",
        r#"{"content":"hello","path":"notes/a.txt"}"#,
    );
    g.client(&retry).await;
    let forwarded = g.next_to_server().await;
    assert!(g.carries(&forwarded, 3));
    let minted = g.session.upstream_id_of("3").unwrap();
    assert_eq!(
        forwarded,
        retry.replace(r#""id":3,"#, &format!(r#""id":{minted},"#))
    );
    g.server(&result_for(3)).await;
    assert_eq!(
        g.next_answer().await["result"]["content"][0]["text"],
        "done"
    );
    assert_eq!(
        g.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Consumed
    );

    // Used once: the next identical call needs a new approval.
    g.client(&call(4, "write_file", WRITE)).await;
    let again = g.next_answer().await;
    assert_ne!(approval_id(&again), id);
    g.nothing_to_server_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_approval_covers_only_its_own_arguments_and_identity() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();
    g.client(&call(
        2,
        "write_file",
        r#"{"path":"notes/a.txt","content":"HELLO"}"#,
    ))
    .await;
    let other = g.next_answer().await;
    assert_ne!(approval_id(&other), id);
    g.nothing_to_server_for(Duration::from_millis(100)).await;

    // Another identity sharing the store does not get alice's approval.
    let mut bob = Setup {
        store: Some(g.store.clone()),
        identity: Some("bob".into()),
        session: "s2".into(),
        ..Setup::default()
    }
    .start();
    bob.client(&call(3, "write_file", WRITE)).await;
    assert_ne!(approval_id(&bob.next_answer().await), id);
    bob.nothing_to_server_for(Duration::from_millis(100)).await;
    assert_eq!(
        g.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Approved
    );
}

#[tokio::test]
async fn a_denial_reaches_the_agent_with_its_reason() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    let deny = Verdict::Deny {
        reason: "Not in the release freeze.".into(),
    };
    g.gateway.decide_approval(&id, &deny, "test").await.unwrap();
    g.client(&call(2, "write_file", WRITE)).await;
    let denied = g.next_answer().await;
    assert_eq!(
        first_text(&denied),
        "[POLICY DENIED] A person denied this call: Not in the release freeze. (rule \"writes need approval\"). The tool was not called."
    );
    assert_eq!(decision(&denied)["decision"], "approval_denied");
    assert_eq!(decision(&denied)["approval"]["id"], id.as_str());
    g.nothing_to_server();
}

#[tokio::test]
async fn an_expired_request_starts_a_new_one() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.clock.advance(Duration::from_secs(10 * 60));
    assert!(g
        .gateway
        .decide_approval(&id, &approve(), "late")
        .await
        .is_err());
    g.client(&call(2, "write_file", WRITE)).await;
    let fresh = g.next_answer().await;
    assert_ne!(approval_id(&fresh), id);
    assert_eq!(
        g.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Expired
    );
    // An approval nobody uses in time lapses too.
    let second = approval_id(&fresh);
    g.gateway
        .decide_approval(&second, &approve(), "test")
        .await
        .unwrap();
    g.clock.advance(Duration::from_secs(10 * 60 + 1));
    g.client(&call(3, "write_file", WRITE)).await;
    assert_ne!(approval_id(&g.next_answer().await), second);
    g.nothing_to_server();
}

#[tokio::test]
async fn a_forwarded_call_keeps_its_approval_consumed_whatever_the_answer() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();
    g.client(&call(2, "write_file", WRITE)).await;
    let forwarded = g.next_to_server().await;
    assert!(g.carries(&forwarded, 2), "{forwarded}");
    g.server(r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"disk full"}}"#)
        .await;
    assert_eq!(g.next_answer().await["error"]["message"], "disk full");
    // The server may have run the tool before it failed: one approval, one forwarded call.
    assert_eq!(
        g.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Consumed
    );
    g.client(&call(3, "write_file", WRITE)).await;
    assert_eq!(
        decision(&g.next_answer().await)["decision"],
        "approval_required"
    );
    g.nothing_to_server();
}

#[tokio::test]
async fn an_approved_call_that_times_out_does_not_run_twice() {
    let mut g = Setup {
        call_timeout: Duration::ZERO,
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();
    for retry in 2..5 {
        g.client(&call(retry, "write_file", WRITE)).await;
        if retry == 2 {
            g.next_to_server().await;
            g.gateway.expire_calls(&g.session).await;
            assert_eq!(g.next_answer().await["error"]["code"], -31002);
            // The timeout's cancellation.
            g.next_to_server().await;
        } else {
            assert_eq!(
                decision(&g.next_answer().await)["decision"],
                "approval_required"
            );
        }
    }
    g.nothing_to_server();
}

#[tokio::test]
async fn counters_are_reserved_only_when_the_approved_call_is_forwarded() {
    let mut g = gate();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.client(&call(2, "write_file", WRITE)).await;
    g.next_answer().await;
    assert_eq!(g.write_count().await, Amount::ZERO);
    g.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();
    g.client(&call(3, "write_file", WRITE)).await;
    g.next_to_server().await;
    assert_eq!(g.write_count().await, Amount::ONE);
}

#[tokio::test]
async fn a_matching_deny_rule_wins_over_approval() {
    let mut g = gate();
    g.client(&call(1, "delete_file", r#"{"path":"/"}"#)).await;
    let denied = g.next_answer().await;
    assert_eq!(decision(&denied)["decision"], "deny");
    assert_eq!(decision(&denied)["rule"], "no deleting the root");
    assert!(g.store.list(Default::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn hold_mode_waits_without_blocking_the_session() {
    let mut g = gate();
    // Handing the call to the pipeline returns at once: the wait is not the reader's.
    let held = call_with_progress(1, "delete_file", r#"{"path":"notes/x"}"#, "tok-1");
    tokio::time::timeout(Duration::from_secs(2), g.client(&held))
        .await
        .expect("the session's reader waited for the held call");
    // The held call tells the client it is waiting, and nothing reaches the server.
    let progress = g.next_to_client().await;
    assert_eq!(progress["method"], "notifications/progress");
    assert_eq!(progress["params"]["progressToken"], "tok-1");
    assert_eq!(progress["params"]["progress"], 1);
    let message = progress["params"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Waiting for a person"), "{message}");

    // Other calls of the same session go on meanwhile.
    g.client(&call(2, "read_file", r#"{"path":"notes/x"}"#))
        .await;
    let forwarded = g.next_to_server().await;
    assert!(g.carries(&forwarded, 2), "{forwarded}");
    g.server(&result_for(2)).await;
    assert_eq!(g.next_answer().await["id"], 2);

    // Progress keeps coming while it waits, with increasing values.
    let later = g.next_to_client().await;
    assert_eq!(later["method"], "notifications/progress");
    assert!(later["params"]["progress"].as_u64().unwrap() >= 2);

    let pending = g.store.list(Default::default()).await.unwrap();
    assert_eq!(pending.len(), 1);
    g.gateway
        .decide_approval(&pending[0].id, &approve(), "test")
        .await
        .unwrap();
    let forwarded = g.next_to_server().await;
    assert!(g.carries(&forwarded, 1) && forwarded.contains("delete_file"));
    g.server(&result_for(1)).await;
    assert_eq!(
        g.next_answer().await["result"]["content"][0]["text"],
        "done"
    );
}

#[tokio::test]
async fn hold_mode_sees_decisions_made_by_another_process() {
    let mut g = gate();
    g.client(&call(1, "delete_file", r#"{"path":"notes/x"}"#))
        .await;
    let id = loop {
        if let Some(r) = g.store.list(Default::default()).await.unwrap().pop() {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Straight to the store, as `toolgate approvals deny` does: no in-process wake-up.
    let deny = Verdict::Deny {
        reason: "Keep that file.".into(),
    };
    g.store.decide(&id, &deny, "cli:test").await.unwrap();
    let denied = g.next_answer().await;
    assert_eq!(denied["id"], 1);
    assert!(first_text(&denied).contains("A person denied this call: Keep that file."));
    g.nothing_to_server();
}

#[tokio::test]
async fn a_held_call_expires_with_the_clock() {
    let mut g = gate();
    g.client(&call(1, "delete_file", r#"{"path":"notes/x"}"#))
        .await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    g.clock.advance(Duration::from_secs(61));
    let expired = g.next_answer().await;
    assert_eq!(decision(&expired)["decision"], "approval_expired");
    assert!(
        first_text(&expired).contains("Nobody approved this call in time"),
        "{expired}"
    );
    g.nothing_to_server();
}

#[tokio::test]
async fn cancelling_a_held_call_withdraws_its_request() {
    let mut g = gate();
    g.client(&call(1, "delete_file", r#"{"path":"notes/x"}"#))
        .await;
    let id = loop {
        if let Some(r) = g.store.list(Default::default()).await.unwrap().pop() {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    g.client(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while g.store.get(&id).await.unwrap().unwrap().state != ApprovalState::Withdrawn {
        assert!(std::time::Instant::now() < deadline, "never withdrawn");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No answer to a cancelled request, and the server never heard of either.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), g.client_rx.recv())
            .await
            .is_err(),
        "a cancelled call got an answer"
    );
    g.nothing_to_server();
    assert!(g
        .gateway
        .decide_approval(&id, &approve(), "late")
        .await
        .is_err());
}

#[tokio::test]
async fn without_approvals_configured_the_call_is_refused() {
    let clock = Arc::new(ManualClock::new(T0));
    let gateway = Gateway::new(
        toolgate_policy::compile(POLICY).unwrap(),
        Arc::new(toolgate_state::MemoryStore::new("t", clock.clone())),
        clock,
        toolgate_proxy::audit::AuditSink::disabled("t".into()),
        None,
        GatewayOptions::default(),
    );
    let (to_client, mut client_rx) = tokio::sync::mpsc::channel(8);
    let (to_server, mut server_rx) = tokio::sync::mpsc::channel(8);
    let session = Arc::new(toolgate_proxy::Session::new(
        "s".into(),
        None,
        to_client,
        to_server,
    ));
    gateway
        .from_client(&session, call(1, "write_file", WRITE))
        .await;
    let reply: serde_json::Value =
        serde_json::from_str(&client_rx.recv().await.unwrap().text).unwrap();
    assert!(first_text(&reply).contains("approvals are not configured"));
    assert!(server_rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_sharing_a_state_file_use_one_approval_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = Arc::new(ManualClock::new(T0));
    // Two gateways, each with its own connection to the file (as two processes have).
    let mut a = Setup {
        store: Some(sqlite_store(&db, clock.clone())),
        clock: clock.clone(),
        session: "a".into(),
        ..Setup::default()
    }
    .start();
    let mut b = Setup {
        store: Some(sqlite_store(&db, clock.clone())),
        clock: clock.clone(),
        session: "b".into(),
        ..Setup::default()
    }
    .start();
    a.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&a.next_answer().await);
    b.client(&call(1, "write_file", WRITE)).await;
    assert_eq!(
        approval_id(&b.next_answer().await),
        id,
        "one request for both"
    );
    a.gateway
        .decide_approval(&id, &approve(), "test")
        .await
        .unwrap();

    // Both agents retry, many times, at once.
    for n in 10..20 {
        a.client(&call(n, "write_file", WRITE)).await;
        b.client(&call(n, "write_file", WRITE)).await;
    }
    let mut forwarded = 0;
    let mut asked = 0;
    for g in [&mut a, &mut b] {
        for _ in 10..20 {
            tokio::select! {
                m = g.server_rx.recv() => { assert!(m.is_some()); forwarded += 1; }
                m = g.client_rx.recv() => {
                    let v: serde_json::Value = serde_json::from_str(&m.unwrap().text).unwrap();
                    assert_eq!(decision(&v)["decision"], "approval_required", "{v}");
                    asked += 1;
                }
            }
        }
    }
    assert_eq!(forwarded, 1, "exactly one retry used the approval");
    assert_eq!(asked, 19);
    assert_eq!(
        a.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Consumed
    );
}

/// A store that cannot be reached.
struct Unreachable;

#[async_trait::async_trait]
impl toolgate_state::ApprovalStore for Unreachable {
    async fn admit(
        &self,
        _: toolgate_state::NewApproval,
    ) -> Result<toolgate_state::Admission, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn get(
        &self,
        _: &str,
    ) -> Result<Option<toolgate_state::ApprovalRecord>, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn list(
        &self,
        _: toolgate_state::ListFilter,
    ) -> Result<Vec<toolgate_state::ApprovalRecord>, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn decide(
        &self,
        _: &str,
        _: &Verdict,
        _: &str,
    ) -> Result<toolgate_state::ApprovalRecord, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn consume(
        &self,
        _: &str,
    ) -> Result<toolgate_state::ApprovalRecord, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn release(
        &self,
        _: &str,
    ) -> Result<toolgate_state::ApprovalRecord, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn withdraw(
        &self,
        _: &str,
        _: &str,
    ) -> Result<toolgate_state::ApprovalRecord, toolgate_state::ApprovalError> {
        Err(down())
    }
    async fn expire_due(
        &self,
    ) -> Result<Vec<toolgate_state::ApprovalRecord>, toolgate_state::ApprovalError> {
        Err(down())
    }
}

fn down() -> toolgate_state::ApprovalError {
    toolgate_state::StoreError::Unavailable("the test store is down".into()).into()
}

#[tokio::test]
async fn an_unreachable_approval_store_refuses_the_call_even_fail_open() {
    let mut g = Setup {
        store: Some(Arc::new(Unreachable)),
        // Fail-open lets calls through uncounted; it never skips a person's approval.
        fail_mode: toolgate_proxy::FailMode::Open,
        ..Setup::default()
    }
    .start();
    for (id, tool) in [(1, "write_file"), (2, "delete_file")] {
        g.client(&call(id, tool, r#"{"path":"notes/x"}"#)).await;
        let refused = g.next_answer().await;
        assert_eq!(refused["id"], id);
        assert_eq!(refused["error"]["code"], -31001, "{refused}");
        assert!(refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a person's approval"));
    }
    g.nothing_to_server();
}

#[tokio::test]
async fn one_identity_cannot_flood_people_with_approval_requests() {
    let mut g = Setup {
        options: ApprovalOptions {
            max_pending_per_identity: 2,
            ..fast_options()
        },
        ..Setup::default()
    }
    .start();
    for n in 1..=3u32 {
        let args = format!(r#"{{"path":"notes/{n}.txt","content":"x"}}"#);
        g.client(&call(n, "write_file", &args)).await;
    }
    let first = g.next_answer().await;
    let second = g.next_answer().await;
    assert_eq!(decision(&first)["decision"], "approval_required");
    assert_eq!(decision(&second)["decision"], "approval_required");
    let third = g.next_answer().await;
    assert_eq!(
        decision(&third)["decision"],
        "approval_withdrawn",
        "{third}"
    );
    assert!(
        first_text(&third).contains("too many approval requests"),
        "{third}"
    );
    // Two stay pending for a person; the third was withdrawn at once.
    let pending = g.store.list(Default::default()).await.unwrap();
    assert_eq!(pending.len(), 2);
    // Another identity is not affected.
    let mut bob = Setup {
        store: Some(g.store.clone()),
        identity: Some("bob".into()),
        session: "s2".into(),
        options: ApprovalOptions {
            max_pending_per_identity: 2,
            ..fast_options()
        },
        ..Setup::default()
    }
    .start();
    bob.client(&call(9, "write_file", WRITE)).await;
    assert_eq!(
        decision(&bob.next_answer().await)["decision"],
        "approval_required"
    );
    g.nothing_to_server();
}

#[tokio::test]
async fn intercept_wording_keeps_intercepts_approval_prefix() {
    let policy = format!(
        "deny_prefix: \"[INTERCEPT POLICY DENIED]\"\n{}",
        approvals_support::POLICY.trim_start()
    );
    let mut g = Setup {
        policy,
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    let text = first_text(&g.next_answer().await);
    assert!(
        text.starts_with("[INTERCEPT APPROVAL REQUIRED] A person must approve this call"),
        "{text}"
    );
}

#[tokio::test]
async fn past_the_dedupe_window_a_new_request_supersedes_the_pending_one() {
    let policy = format!(
        "{}approvals:\n  dedupe_window: 5m\n",
        approvals_support::POLICY.trim_start()
    );
    let mut g = Setup {
        policy,
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    let first = approval_id(&g.next_answer().await);
    // Within the window an identical call joins the pending request.
    g.clock.advance(Duration::from_secs(4 * 60));
    g.client(&call(2, "write_file", WRITE)).await;
    assert_eq!(approval_id(&g.next_answer().await), first);
    // Past it, the old request is withdrawn as superseded and a new one made.
    g.clock.advance(Duration::from_secs(2 * 60));
    g.client(&call(3, "write_file", WRITE)).await;
    let second = approval_id(&g.next_answer().await);
    assert_ne!(second, first);
    let old = g.store.get(&first).await.unwrap().unwrap();
    assert_eq!(old.state, ApprovalState::Withdrawn);
    assert!(old.reason.unwrap().starts_with("superseded"));
    assert_eq!(
        g.store.get(&second).await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
}
