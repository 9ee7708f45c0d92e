//! Helpers shared by the integration tests: compile or fail with the diagnostics, decide a
//! call by tool name, and read a decision as one line that is easy to compare.
#![allow(dead_code, clippy::unwrap_used)]

use std::fmt::Write as _;

use serde_json::Value;
use toolgate_policy::{Call, Decision, Diagnostic, Policy, Reservation};

/// Compiles a policy that must be valid, printing every diagnostic otherwise.
pub fn policy(text: &str) -> Policy {
    match toolgate_policy::compile(text) {
        Ok(p) => p,
        Err(errors) => panic!(
            "policy should compile:\n{}",
            errors
                .iter()
                .map(|e| e.display_in("policy").to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The diagnostics of a policy that must be invalid.
pub fn errors(text: &str) -> Vec<Diagnostic> {
    match toolgate_policy::compile(text) {
        Ok(_) => panic!("policy should not compile:\n{text}"),
        Err(errors) => errors,
    }
}

/// Diagnostics as `(line, column, path, message)`, the parts every error test pins down.
pub fn located(text: &str) -> Vec<(usize, usize, String, String)> {
    errors(text)
        .into_iter()
        .map(|d| (d.location.line, d.location.column, d.path, d.message))
        .collect()
}

pub fn decide(policy: &Policy, tool: &str, arguments: Value) -> Decision {
    decide_as(policy, tool, arguments, None, None)
}

pub fn decide_as(
    policy: &Policy,
    tool: &str,
    arguments: Value,
    session: Option<&str>,
    identity: Option<&str>,
) -> Decision {
    policy.decide(&Call {
        tool,
        arguments: &arguments,
        session,
        identity,
        caller: None,
    })
}

/// The rule and message of a denial; panics on any other decision.
pub fn denial(decision: &Decision) -> (String, String) {
    match decision {
        Decision::Deny(d) => (d.rule.clone(), d.message.clone()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The reservations of an allowed call (or one waiting for approval).
pub fn reservations(decision: &Decision) -> Vec<Reservation> {
    match decision {
        Decision::Allow(p) => p.reservations.clone(),
        Decision::ApprovalRequired(a) => a.permit.reservations.clone(),
        other => panic!("expected a permit, got {other:?}"),
    }
}

/// One line per decision, e.g. `allow [t._rate_hour ≤5 +1/hour]`,
/// `deny "rule": message`, `approval "rule" (hold, 900000ms) […]`, `hidden`.
pub fn summary(decision: &Decision) -> String {
    fn permit(out: &mut String, reservations: &[Reservation]) {
        out.push('[');
        for (i, r) in reservations.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{} ≤{} +{}/{}", r.key, r.max, r.amount, r.window);
        }
        out.push(']');
    }
    let mut out = String::new();
    match decision {
        Decision::Allow(p) => {
            out.push_str("allow ");
            permit(&mut out, &p.reservations);
        }
        Decision::Deny(d) => {
            let _ = write!(out, "deny {:?}: {}", d.rule, d.message);
        }
        Decision::Hidden => out.push_str("hidden"),
        Decision::Ambiguous(m) => {
            let _ = write!(out, "ambiguous: {m}");
        }
        Decision::ApprovalRequired(a) => {
            let _ = write!(
                out,
                "approval {:?} ({:?}, {}ms) ",
                a.rule, a.settings.mode, a.settings.timeout_ms
            );
            permit(&mut out, &a.permit.reservations);
        }
    }
    out
}

/// Whether a call is let through (allowed, or allowed once approved).
pub fn passes(decision: &Decision) -> bool {
    matches!(decision, Decision::Allow(_) | Decision::ApprovalRequired(_))
}

pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap()
}
