//! Deciding and announcing approvals: the admin API (token, loopback, list/show/approve/
//! deny, the event stream), the signed webhook with retries (checked by a receiver on
//! 127.0.0.1 that computes the HMAC itself), the notification command, and the audit trail.

#![allow(clippy::unwrap_used)]

mod approvals_support;

use std::time::Duration;

use approvals_support::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use toolgate_proxy::admin::{self, AdminOptions, AdminToken};
use toolgate_state::{ApprovalState, CounterStore};

const TOKEN: &str = "test-admin-token-0123456789";
const WRITE: &str = r#"{"path":"notes/a.txt","content":"hello","mode":420,"append":false}"#;

async fn start_admin(g: &Gate) -> String {
    let bind = admin::parse_listen("127.0.0.1:0").unwrap();
    let mut options = AdminOptions::new(bind, AdminToken::new(TOKEN).unwrap());
    options.poll_interval = Duration::from_millis(50);
    let (addr, _task) = admin::spawn(g.gateway.clone(), options).await.unwrap();
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    toolgate_proxy::tls::install_crypto_provider();
    reqwest::Client::new()
}

async fn json(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_admin_api_lists_shows_and_decides_behind_its_token() {
    let mut g = gate();
    let base = start_admin(&g).await;
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    let http = client();

    // No token, a wrong token, a foreign Host: refused before anything is read.
    let bare = http
        .get(format!("{base}/v1/approvals"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    assert!(bare.headers().contains_key("www-authenticate"));
    let wrong = http
        .get(format!("{base}/v1/approvals"))
        .bearer_auth("test-admin-token-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let rebound = http
        .get(format!("{base}/v1/approvals"))
        .bearer_auth(TOKEN)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    let list: Value = json(
        http.get(format!("{base}/v1/approvals"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let items = list["approvals"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["state"], "pending");
    assert_eq!(items[0]["identity"], "alice");
    // Lists show the redacted arguments; one request shows them whole.
    assert_eq!(items[0]["arguments"]["content"], "string");
    let shown: Value = json(
        http.get(format!("{base}/v1/approvals/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["arguments"]["content"], "hello");
    assert_eq!(shown["rule"], "writes need approval");
    let missing = http
        .get(format!("{base}/v1/approvals/apr_000000000000"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // A denial needs a reason.
    let no_reason = http
        .post(format!("{base}/v1/approvals/{id}/deny"))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), 400);

    let approved = http
        .post(format!("{base}/v1/approvals/{id}/approve"))
        .bearer_auth(TOKEN)
        .body(r#"{"note":"checked the path","by":"carol"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let approved: Value = json(approved).await;
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "admin-api:carol");
    let twice = http
        .post(format!("{base}/v1/approvals/{id}/deny"))
        .bearer_auth(TOKEN)
        .body(r#"{"reason":"too late"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 409);
    assert_eq!(json(twice).await["state"], "approved");

    g.client(&call(2, "write_file", WRITE)).await;
    let forwarded = g.next_to_server().await;
    assert!(g.carries(&forwarded, 2), "{forwarded}");
}

#[tokio::test]
async fn a_held_call_is_answered_by_an_admin_decision() {
    let mut g = gate();
    let base = start_admin(&g).await;
    g.client(&call(1, "delete_file", r#"{"path":"notes/x"}"#))
        .await;
    let http = client();
    let id = loop {
        let list: Value = json(
            http.get(format!("{base}/v1/approvals"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if let Some(first) = list["approvals"].get(0) {
            break first["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let denied = http
        .post(format!("{base}/v1/approvals/{id}/deny"))
        .bearer_auth(TOKEN)
        .body(r#"{"reason":"That file stays."}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    let answer = g.next_answer().await;
    assert!(first_text(&answer).contains("A person denied this call: That file stays."));
    g.nothing_to_server();
}

#[tokio::test]
async fn the_event_stream_announces_new_requests() {
    let mut g = gate();
    // A request made before the stream opens is announced first.
    g.client(&call(1, "write_file", WRITE)).await;
    let early = approval_id(&g.next_answer().await);
    let base = start_admin(&g).await;
    let mut stream = client()
        .get(format!("{base}/v1/approvals/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    g.client(&call(
        2,
        "write_file",
        r#"{"path":"notes/b.txt","content":"x"}"#,
    ))
    .await;
    let later = approval_id(&g.next_answer().await);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !(text.contains(&early) && text.contains(&later)) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the stream did not announce both requests")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| e.starts_with("event: requested"))
        .filter_map(|e| e.split_once("data: ").map(|(_, d)| d.trim()))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["id"], early.as_str());
    assert_eq!(events[1]["id"], later.as_str());
    assert_eq!(events[1]["tool"], "write_file");
    assert_eq!(events[1]["arguments"]["content"], "string");
}

/// What the test receiver saw of one request.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on 127.0.0.1 that answers 503 to the first `failures` requests, then
/// 204, and hands every request it read to the test.
async fn webhook_receiver(failures: usize) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/toolgate", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed mid-request");
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    break (end + 4, length);
                }
            };
            while buffer.len() < head_end + length {
                let n = socket.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let status = if seen < failures {
                "503 Service Unavailable"
            } else {
                "204 No Content"
            };
            seen += 1;
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(reply.as_bytes()).await.unwrap();
            let _ = tx
                .send(Received {
                    headers,
                    body: buffer[head_end..head_end + length].to_vec(),
                })
                .await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_webhook_is_signed_retried_and_never_holds_up_the_call() {
    let secret_var = "TOOLGATE_TEST_WEBHOOK_SECRET_1";
    std::env::set_var(secret_var, "s3cret-key");
    let (url, mut received) = webhook_receiver(2).await;
    let policy = format!(
        "{POLICY}approvals:\n  notify:\n    webhook:\n      url: \"{url}\"\n      secret_env: {secret_var}\n"
    );
    let mut g = Setup {
        policy,
        ..Setup::default()
    }
    .start();
    let base = start_admin(&g).await;
    g.client(&call(1, "write_file", WRITE)).await;
    // The agent is answered whatever the webhook does (it fails twice first).
    let id = approval_id(&g.next_answer().await);

    let mut deliveries = Vec::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("the webhook was not retried")
            .unwrap();
        deliveries.push(r);
    }
    for delivery in &deliveries {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret-key").unwrap();
        mac.update(&delivery.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            delivery.header("x-toolgate-signature"),
            Some(format!("sha256={expected}").as_str())
        );
        assert_eq!(delivery.header("content-type"), Some("application/json"));
        assert_eq!(delivery.header("x-toolgate-delivery"), Some(id.as_str()));
    }
    assert_eq!(
        deliveries[0].body, deliveries[2].body,
        "retries resend the same body"
    );
    let body: Value = serde_json::from_slice(&deliveries[0].body).unwrap();
    assert_eq!(body["event"], "approval.requested");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["tool"], "write_file");
    assert_eq!(body["identity"], "alice");
    assert_eq!(body["rule"], "writes need approval");
    // Redacted: keys, small numbers and flags only.
    assert_eq!(
        body["arguments"],
        json!({"path": "string", "content": "string", "mode": 420, "append": false})
    );
    assert!(!String::from_utf8_lossy(&deliveries[0].body).contains("hello"));
    assert_eq!(
        body["decide"]["approve_command"],
        format!("toolgate approvals approve {id}")
    );
    assert_eq!(
        body["decide"]["approve_url"],
        format!("{base}/v1/approvals/{id}/approve")
    );
    // A retry of the same call while pending announces nothing new.
    g.client(&call(2, "write_file", WRITE)).await;
    g.next_answer().await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), received.recv())
            .await
            .is_err(),
        "a retry announced the request again"
    );
}

#[tokio::test]
async fn without_its_secret_no_webhook_is_sent_unsigned() {
    let (url, mut received) = webhook_receiver(0).await;
    let policy = format!(
        "{POLICY}approvals:\n  notify:\n    webhook:\n      url: \"{url}\"\n      secret_env: TOOLGATE_TEST_UNSET_SECRET_VAR\n"
    );
    let mut g = Setup {
        policy,
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    approval_id(&g.next_answer().await);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), received.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_notification_command_gets_the_request_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notified.json");
    let policy = format!(
        "{POLICY}approvals:\n  notify:\n    command: [\"sh\", \"-c\", \"cat > '{}'; echo \\\"$TOOLGATE_APPROVAL_ID\\\" >> '{}'\"]\n",
        out.display(),
        out.display()
    );
    let mut g = Setup {
        policy,
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.ends_with(&format!("{id}\n")) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "command output: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (json_part, _) = text.rsplit_once('\n').unwrap().0.rsplit_once('}').unwrap();
    let body: Value = serde_json::from_str(&format!("{json_part}}}")).unwrap();
    assert_eq!(body["id"], id.as_str());
}

#[tokio::test]
async fn every_transition_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Setup {
        audit: Some(audit_sink(dir.path())),
        ..Setup::default()
    }
    .start();
    g.client(&call(1, "write_file", WRITE)).await;
    let id = approval_id(&g.next_answer().await);
    g.gateway
        .decide_approval(
            &id,
            &toolgate_state::Verdict::Approve {
                note: Some("ok".into()),
            },
            "test",
        )
        .await
        .unwrap();
    // The write limit is full, so the approved call is refused before it is forwarded:
    // the approval it consumed is released, and later expires unused.
    let minute = toolgate_policy::Window::parse("minute").unwrap();
    let five = toolgate_policy::Amount::from_units(5).unwrap();
    g.counters
        .reserve(&[toolgate_state::ReserveItem {
            key: "write_file._rate_minute".into(),
            window: minute,
            max: five,
            amount: five,
        }])
        .await
        .unwrap();
    g.client(&call(2, "write_file", WRITE)).await;
    assert_eq!(decision(&g.next_answer().await)["decision"], "deny");
    g.nothing_to_server();
    let _sweeper = toolgate_proxy::approvals::spawn_sweeper(&g.gateway);
    g.clock.advance(Duration::from_secs(11 * 60));

    let wanted = ["requested", "approved", "consumed", "released", "expired"];
    let lines = audit_lines(dir.path(), |lines| {
        wanted.iter().all(|t| {
            lines
                .iter()
                .any(|l| l["event"] == "approval" && l["transition"] == *t)
        })
    })
    .await;
    let transitions: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "approval")
        .map(|l| l["transition"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, wanted, "{lines:#?}");
    let approved = lines
        .iter()
        .find(|l| l["transition"] == "approved")
        .unwrap();
    assert_eq!(approved["by"], "test");
    assert_eq!(approved["note"], "ok");
    assert_eq!(approved["approval"], id.as_str());
    // Decision lines name the request; no line holds the arguments or the fingerprint.
    let decisions: Vec<&Value> = lines.iter().filter(|l| l["event"] == "decision").collect();
    assert_eq!(decisions[0]["decision"], "approval_required");
    assert_eq!(decisions[0]["approval"], id.as_str());
    assert_eq!(decisions[1]["decision"], "deny");
    assert_eq!(decisions[1]["outcome"], "not_forwarded");
    assert_eq!(decisions[1]["approval"], id.as_str());
    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains("hello") && !all.contains("sha256:"));
    assert_eq!(
        g.store.get(&id).await.unwrap().unwrap().state,
        ApprovalState::Expired
    );
}
