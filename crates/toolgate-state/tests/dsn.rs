//! `--state-dsn` parsing and `open_store`: the accepted forms, and errors that say what is
//! accepted without ever repeating a credential.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use toolgate_state::{open_store, Dsn, ManualClock, StoreError};

fn error_text(dsn: &str) -> String {
    match Dsn::parse(dsn) {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("expected {dsn:?} to be refused, got {other:?}"),
    }
}

#[test]
fn memory_forms() {
    assert_eq!(Dsn::parse("memory:").unwrap(), Dsn::Memory);
    assert_eq!(Dsn::parse("memory://").unwrap(), Dsn::Memory);
    assert_eq!(Dsn::parse("MEMORY:").unwrap(), Dsn::Memory);
    assert!(error_text("memory:/tmp/x").contains("memory: takes no path"));
}

#[test]
fn sqlite_forms() {
    let parse = |dsn: &str| match Dsn::parse(dsn).unwrap() {
        Dsn::Sqlite(path) => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(parse("sqlite:state.db"), PathBuf::from("state.db"));
    assert_eq!(
        parse("sqlite:./data/state.db"),
        PathBuf::from("./data/state.db")
    );
    assert_eq!(
        parse("sqlite:/var/lib/toolgate/state.db"),
        PathBuf::from("/var/lib/toolgate/state.db")
    );
    assert_eq!(
        parse("sqlite://data/state.db"),
        PathBuf::from("data/state.db")
    );
    assert_eq!(
        parse("sqlite:///var/lib/state.db"),
        PathBuf::from("/var/lib/state.db")
    );
    assert!(error_text("sqlite:").contains("needs the path"));
    assert!(error_text("sqlite://").contains("needs the path"));
}

#[test]
fn sqlite_paths_expand_the_home_directory() {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return; // nothing to expand against on this machine
    };
    let home = PathBuf::from(home);
    assert_eq!(
        Dsn::parse("sqlite:~/.toolgate/state.db").unwrap(),
        Dsn::Sqlite(home.join(".toolgate/state.db"))
    );
    assert_eq!(
        Dsn::parse("sqlite://~/state.db").unwrap(),
        Dsn::Sqlite(home.join("state.db"))
    );
    // Only a leading `~/` is the home directory.
    assert_eq!(
        Dsn::parse("sqlite:data/~/state.db").unwrap(),
        Dsn::Sqlite(PathBuf::from("data/~/state.db"))
    );
}

#[test]
fn redis_forms_parse_and_never_show_the_password() {
    for (dsn, shown) in [
        (
            "redis://:hunter2@cache.internal:6379/0",
            "redis://:***@cache.internal:6379/0",
        ),
        (
            "rediss://user:hunter2@cache.internal",
            "rediss://user:***@cache.internal:6379/0",
        ),
        (
            "redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7000",
            "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7000",
        ),
        (
            "valkey://cache.internal:6380/3",
            "redis://cache.internal:6380/3",
        ),
    ] {
        let parsed = Dsn::parse(dsn).unwrap();
        assert!(matches!(parsed, Dsn::Redis(_)), "{dsn}");
        assert_eq!(parsed.to_string(), shown);
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }
    let message = error_text("redis+unix:///run/redis.sock?password=hunter2");
    assert!(message.contains("not supported"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let message = error_text("redis://:hunter2@cache.internal:port/0");
    assert!(message.contains("port"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains("cache.internal"), "{message}");
}

#[test]
fn anything_else_lists_the_accepted_forms() {
    let message = error_text("postgres://app:hunter2@db/toolgate");
    assert!(
        message.contains("unrecognised state DSN scheme \"postgres\""),
        "{message}"
    );
    assert!(
        message.contains("memory:, sqlite:PATH, sqlite://PATH")
            && message.contains("redis+cluster://"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let message = error_text("/var/lib/state.db");
    assert!(message.contains("no scheme"), "{message}");
    let message = error_text("user secret-token:x");
    assert!(message.contains("unrecognised state DSN;"), "{message}");
    assert!(!message.contains("secret-token"), "{message}");
}

#[test]
fn dsns_display_in_their_canonical_form() {
    assert_eq!(Dsn::Memory.to_string(), "memory:");
    assert_eq!(
        Dsn::Sqlite("/x/state.db".into()).to_string(),
        "sqlite:/x/state.db"
    );
}

#[tokio::test]
async fn open_store_opens_each_kind_under_its_prefix() {
    let clock = Arc::new(ManualClock::new(T0));
    let memory = open_store("memory:", "toolgate", clock.clone()).unwrap();
    reserved(&*memory, [calls("k", fixed(MINUTE), 1)]).await;
    assert_eq!(
        memory.current("k", fixed(MINUTE)).await.unwrap(),
        amount("1")
    );

    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite:{}", dir.path().join("s.db").display());
    let a = open_store(&dsn, "gateway-a", clock.clone()).unwrap();
    let b = open_store(&dsn, "gateway-b", clock.clone()).unwrap();
    reserved(&*a, [calls("k", fixed(MINUTE), 1)]).await;
    assert_eq!(b.current("k", fixed(MINUTE)).await.unwrap(), amount("0"));

    // Redis opens without connecting: nobody listens on this port, and that is only
    // noticed (as unavailable, without the password) when a counter is needed.
    let port = common::redis_server::free_port();
    let dsn = format!("redis://:hunter2@127.0.0.1:{port}/0?timeout_ms=300");
    let redis = open_store(&dsn, "toolgate", clock).unwrap();
    let err = redis
        .reserve(&[calls("k", fixed(MINUTE), 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "expected unavailable, got {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}
