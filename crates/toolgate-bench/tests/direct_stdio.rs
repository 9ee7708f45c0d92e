//! End to end: the real binary drives its own fixture over stdio with a tiny `direct-stdio`
//! run, reports numbers, and fails loudly when an answer is wrong.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_toolgate-bench"))
        .args(args)
        .output()
        .unwrap()
}

const TINY: [&str; 8] = [
    "--scenario",
    "direct-stdio",
    "--calls",
    "300",
    "--phase-ms",
    "100",
    "--rounds",
    "1",
];

#[test]
fn tiny_direct_run_reports_verified_calls() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let mut args = TINY.to_vec();
    args.extend(["--json", json_path.to_str().unwrap()]);
    let out = bench(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| direct-stdio |"), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let scenarios = json["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 1);
    let s = &scenarios[0];
    assert_eq!(s["name"], "direct-stdio");
    for field in [
        "p50_us",
        "p90_us",
        "p99_us",
        "calls_per_sec",
        "calls_per_sec_64",
    ] {
        assert!(s[field].as_f64().unwrap() > 0.0, "{field}: {s}");
    }
    assert!(s["p50_us"].as_f64() <= s["p99_us"].as_f64(), "{s}");
    // The fixture, measured directly, is a real process with a real footprint.
    assert!(s["rss_kb"].as_f64().unwrap() > 100.0, "{s}");
    assert!(s["calls_verified"].as_u64().unwrap() >= 300, "{s}");
}

#[test]
fn a_wrong_answer_fails_the_run() {
    let mut args = TINY.to_vec();
    // The 123rd call falls in the measured latency phase, after the warm-up.
    args.extend(["--fixture-corrupt-call", "123"]);
    let out = bench(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a corrupted echo went unnoticed");
    assert!(
        stderr.contains("scenario direct-stdio failed")
            && stderr.contains("the echo does not match the arguments sent"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no table for a failed run");
}

#[test]
fn a_missing_toolgate_binary_is_explained() {
    let out = bench(&[
        "--quick",
        "--scenario",
        "toolgate-stdio",
        "--toolgate",
        "no/such/toolgate",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("toolgate binary was not found at no/such/toolgate")
            && stderr.contains("cargo build --release -p toolgate"),
        "{stderr}"
    );
}
