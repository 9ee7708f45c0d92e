//! Warnings for counters whose scope cannot partition calls on the transport the policy is
//! served on: the policy is valid, but a limit would not bind the way it reads.

use toolgate_policy::ir::{Rule, Scope};
use toolgate_policy::Policy;

use crate::cli::TransportArg;

/// One warning per limit whose scope does not bind on `transport`.
pub fn scope_warnings(policy: &Policy, transport: TransportArg) -> Vec<String> {
    let mut rules: Vec<&Rule> = policy
        .tools
        .values()
        .chain(policy.categories.values())
        .flatten()
        .chain(policy.wildcard.iter())
        .collect();
    rules.sort_by(|a, b| a.origin.cmp(&b.origin));
    let mut warnings = Vec::new();
    for rule in rules {
        for limit in &rule.limits {
            let problem = match (&limit.scope, transport) {
                (Scope::Session, TransportArg::Http) => Some(
                    "is counted per session: Streamable HTTP and HTTP+SSE sessions bind, but \
                     2026-07-28 requests carry no session, so their calls are counted per \
                     identity (and all unauthenticated callers share one counter)"
                        .to_string(),
                ),
                (Scope::Identity, TransportArg::Http) if policy.identities.is_empty() => Some(
                    "is counted per identity, but the policy has no `identities`: over HTTP \
                     every caller is the same identity and shares one counter"
                        .to_string(),
                ),
                (Scope::Identity, TransportArg::Stdio | TransportArg::Sse) => Some(
                    "is counted per identity: over stdio the identity is the --identity flag, \
                     the same for every call of one toolgate process"
                        .to_string(),
                ),
                _ => None,
            };
            if let Some(problem) = problem {
                warnings.push(format!(
                    "{}: counter {:?} of rule {:?} {problem}",
                    rule.origin, limit.counter, rule.name
                ));
            }
        }
    }
    warnings
}
