//! Policy test files: arbitrary text is parsed as one (never a panic; errors carry locations
//! inside the text), and a file that parses runs its cases against a fixed policy.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use toolgate_policy::suite::parse_suite;
use toolgate_policy::Policy;

/// Calls a fuzz input may make in all: `repeat` allows far more.
const MAX_CALLS: usize = 2_000;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        toolgate_policy::compile(
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        rate_limit: 3/minute\n      - name: c\n        conditions:\n          - {path: args.a, op: lte, value: 5}\n",
        )
        .expect("the fuzz policy compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_suite(text) {
        Ok(suite) => {
            let calls: usize = suite.cases.iter().map(|c| c.expect.len()).sum();
            if calls <= MAX_CALLS {
                for case in &suite.cases {
                    let _ = case.run(policy());
                }
            }
        }
        Err(errors) => {
            // Lines as YAML counts them: `\r\n`, `\n` and a lone `\r` each end one.
            let lines = text
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .split('\n')
                .count();
            for e in errors {
                assert!(
                    e.location.line >= 1 && e.location.line <= lines + 1,
                    "{e:?}"
                );
            }
        }
    }
});
