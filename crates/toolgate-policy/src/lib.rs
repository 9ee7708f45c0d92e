//! toolgate's policy engine: parse every policy form users have, validate it with precise
//! locations, compile it to one IR, and decide tool calls from it.
//!
//! The crate is pure — no I/O, no async, no clock. Callers hand it policy text and get a
//! [`Policy`] or every [`Diagnostic`]; they hand it a [`Call`] and get a [`Decision`], which
//! they carry out (reserve counters, forward, deny). Keeping the decision a value is what lets
//! the stdio and HTTP transports share one pipeline and lets `explain` show the exact
//! decision the gateway would take.
//!
//! Forms accepted (detected from content, never from the file name):
//! - Intercept's YAML (`tools.<name>.rules[]`), with PolicyLayer's tool-page rule forms and
//!   toolgate's extensions;
//! - PolicyLayer's JSON (`require`, `deny_if`, `limits`, `all_tools`).

pub mod amount;
pub mod approvals;
pub mod args;
pub mod caller;
pub mod canonical;
mod compile;
pub mod counter_key;
pub mod decide;
pub mod diagnostics;
pub mod diff;
pub mod explain;
pub mod fold;
pub mod gateway_config;
pub mod identities;
pub mod ir;
pub mod number;
pub mod operators;
pub mod reads;
pub mod redact;
pub mod source;
pub mod suite;
pub mod window;

pub use amount::Amount;
pub use approvals::ApprovalsConfig;
pub use caller::{Caller, IdentityPath};
pub use compile::{json_schema, SchemaForm, OPERATORS, REGEX_MAX_LEN, REGEX_SIZE_LIMIT};
pub use decide::{
    ApprovalRequest, Call, Decision, Denial, Permit, Reservation, ShadowDecision, ShadowVerdict,
    TraceStep,
};
pub use diagnostics::{Diagnostic, Location, PolicyErrors};
pub use explain::{ExplainedReservation, Explanation};
pub use identities::Identities;
pub use ir::{
    AuditArguments, DefaultAction, FindingSeverity, OnFinding, OnNewTool, OnPinChange,
    PinningPolicy, PoisoningPolicy, Policy, PolicyFormat, PolicyMode,
};
pub use window::{Window, WindowMode};

/// A policy that allows every call and hides nothing: what decides where toolgate needs a
/// gateway but the user gave no policy (listing a server's tools; a gateway config's server
/// without a `policy`, or one without a gateway-wide policy).
pub fn allow_all() -> Result<Policy, Vec<Diagnostic>> {
    compile("version: \"1\"\ntools: {}\n")
}

/// Parses, validates and compiles policy text (YAML or JSON, any supported form).
///
/// On failure, returns every problem found, sorted by position.
pub fn compile(text: &str) -> Result<Policy, Vec<Diagnostic>> {
    compile::compile(text)
}
