//! `rediss://`: the store speaks TLS to a redis-server with a certificate from a throwaway
//! CA, verifies the server against the system's trust store (here pointed at that CA with
//! `SSL_CERT_FILE`, which is why this test has a binary of its own), and refuses a server it
//! cannot verify.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::redis_server::{free_port, RedisServer};
use common::*;
use toolgate_state::{CounterStore, RedisOptions, RedisStore, StoreError};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed to make the test certificates");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, and a certificate it signed for 127.0.0.1 and localhost.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=toolgate test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_verifies_the_server_and_reserves_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tls_port = free_port().to_string();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "tls-secret",
    ]);
    let dsn = format!("rediss://:tls-secret@127.0.0.1:{tls_port}/0?timeout_ms=2000");

    // A trust store holding only another CA: the server is not trusted.
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
            "-subj",
            "/CN=some other CA",
        ],
    );
    std::env::set_var("SSL_CERT_FILE", path("other.pem"));
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    match store.reserve(&[calls("k", fixed(MINUTE), 5)]).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("rediss://:***@127.0.0.1:"), "{message}");
            assert!(!message.contains("tls-secret"), "{message}");
        }
        other => panic!("an unverifiable server was used: {other:?}"),
    }

    // Trusting the CA, the same DSN works.
    std::env::set_var("SSL_CERT_FILE", path("ca.pem"));
    let store = RedisStore::open_dsn(&dsn, "toolgate", RedisOptions::default()).unwrap();
    let item = calls("k", fixed(MINUTE), 2);
    assert_eq!(admitted(&store, &item, 3).await, 2);
    assert_eq!(
        store.current("k", fixed(MINUTE)).await.unwrap(),
        amount("2")
    );
    drop(server);
}
