//! The listener's front door over real sockets: bearer-token identities (and their
//! `scope: identity` counters), Host/Origin allow-lists, session ids, protocol-version and
//! routing-header checks.
#![allow(clippy::unwrap_used)]

mod http_support;

use reqwest::StatusCode;
use serde_json::json;
use toolgate_proxy::http::ListenerOptions;

use http_support::{is_denial, sha256_hex, text_of, Client, Listener};

fn identity_policy() -> String {
    format!(
        r#"version: "1"
identities:
  alice:
    token_sha256: {}
  bob:
    - {}
tools:
  echo:
    rules:
      - name: two per identity
        rate_limit:
          max: 2
          window: 3600
          scope: identity
"#,
        sha256_hex("alice-token"),
        sha256_hex("bob-token")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_gets_exactly_its_own_limit() {
    let listener = Listener::start(&identity_policy(), ListenerOptions::default()).await;
    for token in ["alice-token", "bob-token"] {
        // Two sessions per identity: the counter follows the identity, not the session.
        let mut first = Client::new(&listener.url()).with_token(token);
        assert_eq!(first.initialize().await.status, StatusCode::OK);
        let mut second = Client::new(&listener.url()).with_token(token);
        assert_eq!(second.initialize().await.status, StatusCode::OK);
        let a = first.call("echo", json!({"message": "1"})).await;
        assert_eq!(text_of(&a), "echo: 1", "{token}");
        let b = second.call("echo", json!({"message": "2"})).await;
        assert_eq!(text_of(&b), "echo: 2", "{token}");
        let c = first.call("echo", json!({"message": "3"})).await;
        assert!(is_denial(&c), "{token}: third call must be denied: {c:?}");
        let d = second.call("echo", json!({"message": "4"})).await;
        assert!(is_denial(&d), "{token}: fourth call must be denied: {d:?}");
        assert!(text_of(&d).contains("two per identity"));
    }
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_token_is_401_and_sessions_belong_to_their_identity() {
    let listener = Listener::start(&identity_policy(), ListenerOptions::default()).await;
    let mut anonymous = Client::new(&listener.url());
    let answer = anonymous.initialize().await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.headers.get("www-authenticate").is_some());
    assert_eq!(
        listener.handle.session_count(),
        0,
        "no session for a refused client"
    );

    let mut wrong = Client::new(&listener.url()).with_token("not-a-token");
    assert_eq!(wrong.initialize().await.status, StatusCode::UNAUTHORIZED);
    let mut basic = Client::new(&listener.url());
    basic.header("authorization", "Basic YWxpY2U6YWxpY2UtdG9rZW4=");
    assert_eq!(basic.initialize().await.status, StatusCode::UNAUTHORIZED);

    let mut alice = Client::new(&listener.url()).with_token("alice-token");
    assert_eq!(alice.initialize().await.status, StatusCode::OK);
    // Bob's token on Alice's session: indistinguishable from an unknown session.
    let mut bob = Client::new(&listener.url()).with_token("bob-token");
    bob.session = alice.session.clone();
    let answer = bob.call("echo", json!({"message": "x"})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Alice's token without a valid session: 401 comes before any session lookup.
    let mut stolen = Client::new(&listener.url());
    stolen.session = alice.session.clone();
    assert_eq!(
        stolen.call("echo", json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_origin_and_host_are_403() {
    let listener = Listener::start("version: \"1\"\n", ListenerOptions::default()).await;
    let mut evil = Client::new(&listener.url());
    evil.header("origin", "http://evil.example");
    assert_eq!(evil.initialize().await.status, StatusCode::FORBIDDEN);
    let mut null_origin = Client::new(&listener.url());
    null_origin.header("origin", "null");
    assert_eq!(null_origin.initialize().await.status, StatusCode::FORBIDDEN);
    // DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host header keeps it.
    let mut rebound = Client::new(&listener.url());
    rebound.header("host", "attacker.example:80");
    assert_eq!(rebound.initialize().await.status, StatusCode::FORBIDDEN);
    let sse = rebound
        .http
        .get(format!("{}/sse", listener.base))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::FORBIDDEN);
    assert_eq!(listener.handle.session_count(), 0);

    let mut local = Client::new(&listener.url());
    local.header("origin", "http://localhost:6274");
    assert_eq!(local.initialize().await.status, StatusCode::OK);
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_versions_and_lifecycle() {
    let listener = Listener::start("version: \"1\"\n", ListenerOptions::default()).await;
    let mut client = Client::new(&listener.url());
    // No session and not an initialize: 400.
    assert_eq!(
        client.call("echo", json!({})).await.status,
        StatusCode::BAD_REQUEST
    );
    client.session = Some("0123456789abcdef0123456789abcdef".into());
    assert_eq!(
        client.call("echo", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    client.session = None;
    assert_eq!(client.initialize().await.status, StatusCode::OK);
    let id = client.session.clone().unwrap();
    assert_eq!(id.len(), 32, "a random 128-bit id");

    let bad_version = client
        .post_raw(
            json!({"jsonrpc": "2.0", "id": 50, "method": "ping"}).to_string(),
            &[("mcp-protocol-version", "1999-01-01")],
        )
        .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    let good = client
        .post_raw(
            json!({"jsonrpc": "2.0", "id": 51, "method": "ping"}).to_string(),
            &[("mcp-protocol-version", "2025-06-18")],
        )
        .await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(good.response()["id"], 51);

    // A routing header that disagrees with the body: -32020, HTTP 400, nothing forwarded.
    let mismatch = client
        .post_raw(
            json!({"jsonrpc": "2.0", "id": 52, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {}}})
            .to_string(),
            &[("mcp-method", "tools/call"), ("mcp-name", "pid")],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch.response()["error"]["code"], -32020);
    assert_eq!(mismatch.response()["id"], 52);

    // Wrong media types.
    let not_json = client
        .http
        .post(listener.url())
        .header("content-type", "text/plain")
        .header("mcp-session-id", &id)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    assert_eq!(client.delete().await, StatusCode::OK);
    assert_eq!(
        client.call("echo", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(listener.handle.session_count(), 0);
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let options = ListenerOptions {
        max_body_bytes: 1024,
        ..ListenerOptions::default()
    };
    let listener = Listener::start("version: \"1\"\n", options).await;
    let mut client = Client::new(&listener.url());
    assert_eq!(client.initialize().await.status, StatusCode::OK);
    let big = client
        .call("echo", json!({"message": "x".repeat(4096)}))
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    let ok = client.call("echo", json!({"message": "small"})).await;
    assert_eq!(text_of(&ok), "echo: small");
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_messages_before_the_answer_stream_on_the_post() {
    let listener = Listener::start("version: \"1\"\n", ListenerOptions::default()).await;
    let mut client = Client::new(&listener.url());
    assert_eq!(client.initialize().await.status, StatusCode::OK);
    let plain = client.call("echo", json!({"message": "m"})).await;
    assert!(!plain.sse, "a lone answer is plain JSON");
    let streamed = client.call("notify", json!({})).await;
    assert!(
        streamed.sse,
        "a notification first makes the answer a stream"
    );
    assert_eq!(streamed.messages[0]["method"], "notifications/message");
    assert_eq!(text_of(&streamed), "notified");
    listener.stop().await;
}
