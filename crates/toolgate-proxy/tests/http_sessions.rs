//! Many sessions at once over real sockets: 200 concurrent sessions with calls in flight
//! are all served, and idle sessions are reclaimed with their child processes.
#![allow(clippy::unwrap_used)]

mod http_support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use toolgate_proxy::http::ListenerOptions;

use http_support::{pid_alive, text_of, Client, Listener};

const SESSIONS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_with_calls_in_flight_then_idle_reclaim() {
    let options = ListenerOptions {
        max_sessions: 256,
        max_children: 256,
        // Generous: 200 children start at once on a small CI machine, and a client may wait
        // its turn for a while between two requests.
        session_idle_timeout: Duration::from_secs(15),
        header_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(2),
        ..ListenerOptions::default()
    };
    let listener = Listener::start("version: \"1\"\n", options).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let url = listener.url();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(&url);
            let init = client.initialize().await;
            assert_eq!(init.status, StatusCode::OK, "session {i}: {init:?}");
            let pid: u32 = text_of(&client.call("pid", json!({})).await)
                .parse()
                .unwrap();
            // Several calls in flight on one session at once.
            let calls = (1..=3).map(|k| {
                let mut c = client.fork(k * 1000);
                async move { c.call("slow", json!({"ms": 300})).await }
            });
            for answer in futures_util::future::join_all(calls).await {
                assert_eq!(answer.status, StatusCode::OK, "session {i}");
                assert_eq!(text_of(&answer), "slept", "session {i}");
            }
            pid
        }));
    }
    let mut pids = Vec::new();
    for task in tasks {
        pids.push(task.await.unwrap());
    }
    let served = started.elapsed();
    eprintln!(
        "{SESSIONS} sessions, {} calls, served in {served:?}",
        SESSIONS * 4
    );
    assert_eq!(listener.handle.session_count(), SESSIONS);
    assert!(pids.iter().all(|p| pid_alive(*p)));

    // Nobody talks any more: every session idles out and its child exits.
    let deadline = Instant::now() + Duration::from_secs(90);
    while (listener.handle.session_count() > 0 || pids.iter().any(|p| pid_alive(*p)))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        listener.handle.session_count(),
        0,
        "idle sessions reclaimed"
    );
    let alive: Vec<_> = pids.iter().filter(|p| pid_alive(**p)).collect();
    assert!(alive.is_empty(), "children still running: {alive:?}");
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_child_caps_answer_503() {
    let options = ListenerOptions {
        max_sessions: 2,
        ..ListenerOptions::default()
    };
    let listener = Listener::start("version: \"1\"\n", options).await;
    let mut a = Client::new(&listener.url());
    let mut b = Client::new(&listener.url());
    let mut c = Client::new(&listener.url());
    assert_eq!(a.initialize().await.status, StatusCode::OK);
    assert_eq!(b.initialize().await.status, StatusCode::OK);
    assert_eq!(c.initialize().await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.delete().await, StatusCode::OK);
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    listener.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_stops_its_child() {
    let listener = Listener::start("version: \"1\"\n", ListenerOptions::default()).await;
    let mut client = Client::new(&listener.url());
    assert_eq!(client.initialize().await.status, StatusCode::OK);
    let pid: u32 = text_of(&client.call("pid", json!({})).await)
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    assert_eq!(client.delete().await, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pid_alive(pid), "the child exits when its session ends");
    listener.stop().await;
}
