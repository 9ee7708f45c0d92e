//! One budget across a fleet: three `toolgate` processes sharing one counter store (a Redis
//! server, or one SQLite file), 600 concurrent `tools/call`s against a limit of 100. Exactly
//! 100 are forwarded; and with a server that fails 30% of calls, failed calls give their
//! quota back and exactly 100 *successful* calls are counted — never 101.

#![allow(clippy::unwrap_used)]

#[path = "../../toolgate-state/tests/common/redis_server.rs"]
mod redis_server;
#[path = "support/gateway.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use serde_json::json;
use support::{stay_inside_one_window, Gateway, Tally};
use toolgate_policy::{Amount, Call, Decision, Window};
use toolgate_state::SystemClock;

const LIMIT: usize = 100;
const GATEWAYS: usize = 3;
const CALLS_PER_GATEWAY: usize = 200;

const POLICY: &str = r#"version: "1"
tools:
  echo:
    rules:
      - name: fleet budget
        rate_limit: 100/day
"#;

const DAY: Duration = Duration::from_secs(86_400);

fn fleet(dir: &Path, dsn: &str, prefix: &str, fixture_args: &[&str]) -> Vec<Gateway> {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    (0..GATEWAYS)
        .map(|i| {
            let state_dir = dir.join(format!("gateway-{i}"));
            let args: Vec<String> = [
                "-c",
                policy.to_str().unwrap(),
                "--state-dsn",
                dsn,
                "--state-prefix",
                prefix,
                "--state-dir",
                state_dir.to_str().unwrap(),
                "--no-audit",
                "--no-watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Gateway::start(dir, &format!("gateway-{i}"), &args, fixture_args)
        })
        .collect()
}

/// Every gateway sends its calls at once, all gateways at the same time.
fn round(gateways: &mut [Gateway]) -> Tally {
    std::thread::scope(|scope| {
        let handles: Vec<_> = gateways
            .iter_mut()
            .map(|g| scope.spawn(move || Tally::of(&g.call_many("echo", CALLS_PER_GATEWAY))))
            .collect();
        let mut total = Tally::default();
        for handle in handles {
            total.add(handle.join().unwrap());
        }
        total
    })
}

/// The value of the fleet's counter, read through the same store kind.
fn counter(dsn: &str, prefix: &str) -> Amount {
    let policy = toolgate_policy::compile(POLICY).unwrap();
    let arguments = json!({});
    let call = Call {
        tool: "echo",
        arguments: &arguments,
        session: Some("any"),
        identity: None,
        caller: None,
    };
    let Decision::Allow(permit) = policy.decide(&call) else {
        panic!("the policy should allow echo");
    };
    let key = permit.reservations[0].key.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = toolgate_state::open_store(dsn, prefix, Arc::new(SystemClock)).unwrap();
        store
            .current(&key, Window::fixed(86_400_000))
            .await
            .unwrap()
    })
}

fn exactly_the_limit_is_forwarded(dsn: &str, prefix: &str) {
    stay_inside_one_window(DAY, Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let mut gateways = fleet(dir.path(), dsn, prefix, &[]);
    let tally = round(&mut gateways);
    assert_eq!(
        tally,
        Tally {
            success: LIMIT,
            denied: GATEWAYS * CALLS_PER_GATEWAY - LIMIT,
            failed: 0,
            unavailable: 0,
        }
    );
    for gateway in gateways {
        gateway.finish();
    }
    assert_eq!(
        counter(dsn, prefix),
        Amount::from_units(LIMIT as i64).unwrap()
    );
}

fn exactly_the_limit_of_successes_is_counted(dsn: &str, prefix: &str) {
    stay_inside_one_window(DAY, Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let mut gateways = fleet(dir.path(), dsn, prefix, &["--fail-percent", "30"]);
    let mut total = Tally::default();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 30, "the budget never filled: {total:?}");
        let tally = round(&mut gateways);
        total.add(tally);
        // Never more successes than the limit, in any round, whatever failed meanwhile.
        assert!(total.success <= LIMIT, "{total:?} after round {rounds}");
        if tally.forwarded() == 0 {
            break;
        }
    }
    assert_eq!(total.success, LIMIT, "{total:?} in {rounds} rounds");
    assert!(
        total.failed > 0,
        "the fixture should have failed some calls"
    );
    assert_eq!(total.unavailable, 0);
    for gateway in gateways {
        gateway.finish();
    }
    assert_eq!(
        counter(dsn, prefix),
        Amount::from_units(LIMIT as i64).unwrap()
    );
}

#[test]
fn three_gateways_sharing_redis_forward_exactly_the_limit() {
    let server = RedisServer::start();
    exactly_the_limit_is_forwarded(&server.url(), "fleet");
}

#[test]
fn three_gateways_sharing_redis_count_exactly_the_limit_of_successes() {
    let server = RedisServer::start();
    exactly_the_limit_of_successes_is_counted(&server.url(), "fleet");
}

#[test]
fn three_gateways_sharing_sqlite_forward_exactly_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite:{}", dir.path().join("state.db").display());
    exactly_the_limit_is_forwarded(&dsn, "fleet");
}

#[test]
fn three_gateways_sharing_sqlite_count_exactly_the_limit_of_successes() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite:{}", dir.path().join("state.db").display());
    exactly_the_limit_of_successes_is_counted(&dsn, "fleet");
}
