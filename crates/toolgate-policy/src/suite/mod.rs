//! Policy test files: calls with the decision each must get, run against a compiled policy.
//!
//! A test file names its policy and lists cases; a case is one call, or a sequence of the
//! same call whose counters carry over from one call to the next, so a rate limit's last
//! allowed call and first refused one can both be asserted. Running is pure: counters live
//! in a map that starts from the case's `counters` and grows by what each allowed call
//! reserves, exactly as the store would count them within one window.
//!
//! ```yaml
//! policy: policy.yaml
//! cases:
//!   - name: the sixth issue in an hour is refused
//!     tool: create_issue
//!     repeat: 6
//!     expect: [allow, allow, allow, allow, allow, deny]
//! ```

pub(crate) mod parse;
mod run;

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::amount::Amount;
use crate::diagnostics::Location;

pub use parse::parse_suite;
pub use run::{CallFailure, CaseResult};

/// Most calls one case may make (`repeat`), so a typo cannot run for minutes.
pub const MAX_REPEAT: u64 = 100_000;

/// A parsed test file.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The policy file, as written (relative to the test file).
    pub policy: String,
    pub policy_location: Location,
    pub cases: Vec<Case>,
}

/// One case: a call made `expect.len()` times in a row.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub location: Location,
    pub tool: String,
    pub arguments: serde_json::Value,
    /// What each call in the sequence must get, one per call.
    pub expect: Vec<Outcome>,
    /// The rule that must decide every call expected to be denied or held for approval.
    pub rule: Option<String>,
    pub identity: Option<String>,
    pub session: Option<String>,
    /// The tool's risk category, for policies with `categories` rules.
    pub category: Option<String>,
    /// Counter values before the first call, by key (as `explain` names them).
    pub counters: HashMap<String, Amount>,
}

/// What a call gets from the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    Deny,
    Hidden,
    Approval,
    /// Refused as malformed, never decided (arguments readable two ways).
    Malformed,
    /// Let through by a dry-run rule or a policy in shadow mode, which would have refused it,
    /// hidden the tool, or held it for approval.
    WouldDeny,
    WouldHide,
    WouldRequireApproval,
}

impl Outcome {
    pub const NAMES: &'static str =
        "allow, deny, hidden, approval, malformed, would_deny, would_hide, would_require_approval";

    pub fn parse(text: &str) -> Option<Outcome> {
        Some(match text {
            "allow" => Outcome::Allow,
            "deny" => Outcome::Deny,
            "hidden" => Outcome::Hidden,
            "approval" => Outcome::Approval,
            "malformed" => Outcome::Malformed,
            "would_deny" => Outcome::WouldDeny,
            "would_hide" => Outcome::WouldHide,
            "would_require_approval" => Outcome::WouldRequireApproval,
            _ => return None,
        })
    }

    /// Whether a rule decides this outcome (and so `rule:` can be checked against it).
    pub fn has_rule(self) -> bool {
        matches!(
            self,
            Outcome::Deny | Outcome::Approval | Outcome::WouldDeny | Outcome::WouldRequireApproval
        )
    }

    /// Whether the gateway forwards a call that gets this outcome.
    pub fn is_forwarded(self) -> bool {
        matches!(
            self,
            Outcome::Allow
                | Outcome::WouldDeny
                | Outcome::WouldHide
                | Outcome::WouldRequireApproval
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Hidden => "hidden",
            Outcome::Approval => "approval",
            Outcome::Malformed => "malformed",
            Outcome::WouldDeny => "would_deny",
            Outcome::WouldHide => "would_hide",
            Outcome::WouldRequireApproval => "would_require_approval",
        })
    }
}
