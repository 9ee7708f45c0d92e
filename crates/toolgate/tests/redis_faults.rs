//! A real `toolgate` whose Redis goes away and comes back: it starts while Redis is down,
//! refuses (fail-closed) exactly the calls that need a counter — with the state-backend
//! message, not the rule's limit text — lets calls that need no counter through, never
//! leaves a call hanging, and resumes by itself when Redis is back; fail-open forwards and
//! audits `not_counted`. The password in the DSN appears in no log or audit line.

#![allow(clippy::unwrap_used)]

#[path = "../../toolgate-state/tests/common/redis_server.rs"]
mod redis_server;
#[path = "support/gateway.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use redis_server::{free_port, RedisServer};
use support::{stay_inside_one_window, Gateway, Outcome, Tally};

const PASSWORD: &str = "pw-Zq81-never-logged";

const POLICY: &str = r#"version: "1"
tools:
  echo:
    rules:
      - name: daily echoes
        rate_limit: 1000/day
        on_deny: "echo budget used up"
"#;

const DAY: Duration = Duration::from_secs(86_400);

fn gateway(dir: &Path, port: u16, fail_mode: &str) -> Gateway {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let dsn = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0?timeout_ms=400");
    let args: Vec<String> = [
        "-c",
        policy.to_str().unwrap(),
        "--state-dsn",
        &dsn,
        "--state-fail-mode",
        fail_mode,
        "--state-dir",
        dir.join("state").to_str().unwrap(),
        "--audit-dir",
        dir.join("audit").to_str().unwrap(),
        "--no-watch",
        "--log-level",
        "debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Gateway::start(
        dir,
        &format!("toolgate-{fail_mode}"),
        &args,
        &["--tools", "1"],
    )
}

/// The audit lines written so far. The gateway is still running, so the last line may be
/// half written: only whole lines (ending in a newline) are read.
fn audit_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir.join("audit")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let whole = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        lines.extend(whole.map(|l| serde_json::from_str(l).unwrap()));
    }
    lines
}

fn assert_no_password(dir: &Path, stderr: &Path) {
    let log = std::fs::read_to_string(stderr).unwrap();
    assert!(!log.is_empty(), "toolgate wrote no log at all");
    assert!(!log.contains(PASSWORD), "password in the log");
    for entry in std::fs::read_dir(dir.join("audit")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(PASSWORD), "password in the audit log");
    }
}

/// 20 counted calls at once while the store is unreachable: every one refused with the
/// state-backend message, none hanging.
fn assert_refused_for_the_store(gateway: &mut Gateway) {
    let started = Instant::now();
    let outcomes = gateway.call_many("echo", 20);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "answers took {elapsed:?}");
    for outcome in &outcomes {
        match outcome {
            Outcome::StateUnavailable(message) => {
                assert!(
                    message.starts_with("State backend unavailable"),
                    "{message}"
                );
                assert!(!message.contains("budget used up"), "{message}");
                assert!(!message.contains(PASSWORD), "{message}");
            }
            other => panic!("expected a state-backend refusal, got {other:?}"),
        }
    }
    // A call that needs no counter does not need the store.
    assert_eq!(gateway.call("tool_0"), Outcome::Success);
}

/// Calls until the gateway forwards again (it must reconnect by itself).
fn wait_for_recovery(gateway: &mut Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match gateway.call("echo") {
            Outcome::Success => return,
            Outcome::StateUnavailable(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("the gateway did not recover: {other:?}"),
        }
    }
}

#[test]
fn fail_closed_survives_redis_outages_and_resumes_by_itself() {
    stay_inside_one_window(DAY, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Redis is down when the gateway starts: it starts anyway.
    let mut gateway = gateway(dir.path(), port, "closed");
    let pid = gateway.pid();
    assert_refused_for_the_store(&mut gateway);

    // Redis comes up: service starts without restarting toolgate.
    let mut server = RedisServer::start_on(port, &["--requirepass", PASSWORD]);
    wait_for_recovery(&mut gateway);
    assert_eq!(Tally::of(&gateway.call_many("echo", 50)).success, 50);

    // Redis stops mid-run, with calls in flight.
    let in_flight = gateway.call_many("echo", 1);
    assert_eq!(in_flight, [Outcome::Success]);
    server.stop();
    assert_refused_for_the_store(&mut gateway);
    assert!(gateway.is_running(), "toolgate crashed");

    // Redis frozen (accepts connections, never answers): still no hung call.
    server.restart();
    wait_for_recovery(&mut gateway);
    server.pause();
    assert_refused_for_the_store(&mut gateway);
    server.resume();

    // Back: the same process serves again, and limits hold.
    wait_for_recovery(&mut gateway);
    assert_eq!(gateway.pid(), pid);
    let tally = Tally::of(&gateway.call_many("echo", 20));
    assert_eq!(tally.success, 20);

    let audit = audit_lines(dir.path());
    let refused = audit
        .iter()
        .filter(|l| l["tool"] == "echo" && l["decision"] == "error")
        .count();
    assert!(refused >= 60, "{refused} refusals audited");
    let stderr = gateway.stderr.clone();
    gateway.finish();
    assert_no_password(dir.path(), &stderr);
}

#[test]
fn fail_open_forwards_uncounted_calls_and_audits_them() {
    stay_inside_one_window(DAY, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut gateway = gateway(dir.path(), port, "open");
    let started = Instant::now();
    let outcomes = gateway.call_many("echo", 10);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(Tally::of(&outcomes).success, 10, "{outcomes:?}");

    // Once Redis is back, calls are counted again.
    let server = RedisServer::start_on(port, &["--requirepass", PASSWORD]);
    let counted_before = counted_echoes(&server);
    assert_eq!(counted_before, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted_echoes(&server) == 0 {
        assert!(Instant::now() < deadline, "calls are not counted again");
        assert_eq!(gateway.call("echo"), Outcome::Success);
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = gateway.stderr.clone();
    gateway.finish();

    let audit = audit_lines(dir.path());
    let uncounted: Vec<_> = audit
        .iter()
        .filter(|l| l["tool"] == "echo" && l["not_counted"] == true)
        .collect();
    assert!(
        uncounted.len() >= 10,
        "{} uncounted calls audited",
        uncounted.len()
    );
    assert!(uncounted
        .iter()
        .all(|l| l["decision"] == "allow" && l["outcome"] == "result"));
    let counted = audit
        .iter()
        .filter(|l| {
            l["tool"] == "echo" && l["decision"] == "allow" && l.get("not_counted").is_none()
        })
        .count();
    assert!(counted >= 1);
    assert_no_password(dir.path(), &stderr);
}

/// How many echo calls the Redis counter holds (0 when the key is not there).
fn counted_echoes(server: &RedisServer) -> i64 {
    let keys = server
        .command_with_auth(PASSWORD, &["KEYS", "{toolgate}:*"])
        .unwrap();
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|k| {
            let value = server.command_with_auth(PASSWORD, &["GET", k]).unwrap();
            value.parse::<i64>().unwrap_or(0) / 1_000_000
        })
        .sum()
}

/// `--help` shows where each flag's environment variable comes from; it must not show the
/// value of `TOOLGATE_STATE_DSN`, which can carry the Redis password.
#[test]
fn help_never_shows_the_dsn_from_the_environment() {
    for args in [&["--help"][..], &["approvals", "--help"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args(args)
            .env(
                "TOOLGATE_STATE_DSN",
                format!("redis://:{PASSWORD}@cache:6379/0"),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("TOOLGATE_STATE_DSN"), "{args:?}: {text}");
        assert!(!text.contains(PASSWORD), "{args:?} shows the password");
    }
}
