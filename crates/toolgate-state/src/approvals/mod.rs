//! Approval records: calls waiting for a person's decision, kept where every gateway process
//! and the `toolgate approvals` command see them.
//!
//! A record is bound to one exact call by its fingerprint (computed by the caller from the
//! identity, tool, canonical arguments, rule and policy revision) and moves through
//!
//! ```text
//! pending ──approve──▶ approved ──consume──▶ consumed
//!    │                    ▲   │                  │
//!    │                    │   └─(time)─▶ expired │
//!    │                    └─────release──────────┘   (the forwarded call failed)
//!    ├──deny────▶ denied
//!    ├──withdraw▶ withdrawn                          (the waiting client cancelled)
//!    └─(time)───▶ expired
//! ```
//!
//! Every transition is one atomic, conditional step in the store ("set approved where the
//! state is pending and the deadline has not passed"), so an approval is consumed at most
//! once even when several gateways retry the same call at the same moment. Time comes from
//! the injected [`Clock`](crate::Clock); a deadline that has passed makes a pending or
//! approved record expired even before a sweep writes it down.
//!
//! Each method is a single round trip, so the Redis store
//! ([`RedisApprovals`](crate::RedisApprovals)) runs it as one server-side script (a hash per
//! record, a set of ids per fingerprint, a sorted set of ids by creation time), with the
//! server's clock.

mod memory;
mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use toolgate_policy::ir::ApprovalMode;

use crate::clock::Clock;
use crate::dsn::Dsn;
use crate::store::StoreError;

pub use memory::MemoryApprovals;
pub use sqlite::SqliteApprovals;

/// How long finished records (consumed, denied, expired, withdrawn) are kept once their
/// deadline has passed, so `approvals list --all` can still show recent history.
pub const RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalState {
    /// Waiting for a person.
    Pending,
    /// Approved and not yet used: the next identical call goes through.
    Approved,
    /// Used by a forwarded call.
    Consumed,
    /// A person refused it; identical calls get the reason until the deadline.
    Denied,
    /// Nobody decided (or nobody used the approval) before the deadline.
    Expired,
    /// The waiting client cancelled its call (hold mode).
    Withdrawn,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Consumed => "consumed",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<ApprovalState> {
        Some(match text {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "consumed" => ApprovalState::Consumed,
            "denied" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            "withdrawn" => ApprovalState::Withdrawn,
            _ => return None,
        })
    }

    /// Whether the state can still change other than by time (pending, approved, consumed).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ApprovalState::Pending | ApprovalState::Approved | ApprovalState::Consumed
        )
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller supplies to ask for an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    /// A fresh id (`apr_…`), used only if a new record is created.
    pub id: String,
    /// Binds the record to the exact call; see the proxy's `approvals::fingerprint`.
    pub fingerprint: String,
    pub tool: String,
    pub identity: Option<String>,
    /// The client session that first asked (informational: retries may come from another).
    pub session: Option<String>,
    pub rule: String,
    /// The policy revision the call was decided on.
    pub policy: String,
    pub mode: ApprovalMode,
    /// The rule's message for the person deciding.
    pub message: Option<String>,
    /// The call's arguments as canonical JSON.
    pub arguments: String,
    /// How long the request waits for a decision, and how long an approval stays usable.
    pub timeout_ms: u64,
}

/// One approval record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub id: String,
    pub fingerprint: String,
    /// The state as of the store's clock when it was read (a passed deadline already reads
    /// as `Expired`).
    pub state: ApprovalState,
    pub tool: String,
    pub identity: Option<String>,
    pub session: Option<String>,
    pub rule: String,
    pub policy: String,
    pub mode: ApprovalMode,
    pub message: Option<String>,
    pub arguments: String,
    pub timeout_ms: u64,
    pub created_ms: u64,
    /// Pending: when the request lapses. Approved or consumed: when the approval stops
    /// being usable (decision + timeout). Denied: until when identical calls get the denial.
    pub expires_ms: u64,
    /// Time of the last transition.
    pub updated_ms: u64,
    pub decided_ms: Option<u64>,
    /// Who approved or denied it (`cli:alice`, `admin-api`), as the deciding tool reported.
    pub decided_by: Option<String>,
    /// The approver's note.
    pub note: Option<String>,
    /// Why it was denied or withdrawn.
    pub reason: Option<String>,
    /// When it was last consumed.
    pub consumed_ms: Option<u64>,
}

impl ApprovalRecord {
    /// The state once the deadline is taken into account.
    pub(crate) fn effective_state(&self, now_ms: u64) -> ApprovalState {
        match self.state {
            ApprovalState::Pending | ApprovalState::Approved if self.expires_ms <= now_ms => {
                ApprovalState::Expired
            }
            state => state,
        }
    }

    pub(crate) fn at(mut self, now_ms: u64) -> ApprovalRecord {
        self.state = self.effective_state(now_ms);
        self
    }

    /// Whether this record answers calls with its fingerprint: pending or approved before
    /// the deadline, or a denial that still stands.
    pub(crate) fn stands(&self, now_ms: u64) -> bool {
        matches!(
            self.state,
            ApprovalState::Pending | ApprovalState::Approved | ApprovalState::Denied
        ) && self.expires_ms > now_ms
    }

    fn from_new(new: NewApproval, now_ms: u64) -> ApprovalRecord {
        ApprovalRecord {
            id: new.id,
            fingerprint: new.fingerprint,
            state: ApprovalState::Pending,
            tool: new.tool,
            identity: new.identity,
            session: new.session,
            rule: new.rule,
            policy: new.policy,
            mode: new.mode,
            message: new.message,
            arguments: new.arguments,
            timeout_ms: new.timeout_ms,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(new.timeout_ms),
            updated_ms: now_ms,
            decided_ms: None,
            decided_by: None,
            note: None,
            reason: None,
            consumed_ms: None,
        }
    }
}

/// What happened to a call that needs approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// No record stood for the fingerprint: a new pending one was made.
    Created,
    /// A pending record already stands for the fingerprint (a retry).
    Pending,
    /// An approved record stood and has now been consumed by this call: forward it.
    Consumed,
    /// A denial stands for the fingerprint.
    Denied,
}

/// The answer to [`ApprovalStore::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub outcome: AdmitOutcome,
    /// The record after the step (for `Consumed`: in state consumed).
    pub record: ApprovalRecord,
    /// Records of the same fingerprint this step found past their deadline and marked
    /// expired (to be audited).
    pub expired: Vec<ApprovalRecord>,
}

/// A person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approve { note: Option<String> },
    Deny { reason: String },
}

/// Which records [`ApprovalStore::list`] returns, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    /// Every record, not only those waiting for a decision.
    pub all: bool,
    pub limit: usize,
}

impl Default for ListFilter {
    fn default() -> ListFilter {
        ListFilter {
            all: false,
            limit: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval request {0:?}")]
    NotFound(String),
    /// The record is not in a state that allows the step; `state` is the one it is in.
    #[error("approval request {id} is {state}")]
    Conflict { id: String, state: ApprovalState },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where approval records live. Every method is atomic against every other caller of the
/// same backend, in this process or another.
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// The call with `request.fingerprint` needs approval: in one step, marks expired what
    /// has lapsed, then consumes a standing approval, reports a standing pending request or
    /// denial, or creates a pending record from `request`.
    async fn admit(&self, request: NewApproval) -> Result<Admission, ApprovalError>;

    async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError>;

    async fn list(&self, filter: ListFilter) -> Result<Vec<ApprovalRecord>, ApprovalError>;

    /// pending → approved (usable until now + timeout) or denied; `by` says who decided.
    async fn decide(
        &self,
        id: &str,
        verdict: &Verdict,
        by: &str,
    ) -> Result<ApprovalRecord, ApprovalError>;

    /// approved → consumed, at most once. Hold mode uses it after waiting; retries go
    /// through [`ApprovalStore::admit`].
    async fn consume(&self, id: &str) -> Result<ApprovalRecord, ApprovalError>;

    /// consumed → approved: the forwarded call did not happen (the server failed), so the
    /// approval is usable again until its deadline (after it, the record reads expired).
    async fn release(&self, id: &str) -> Result<ApprovalRecord, ApprovalError>;

    /// pending → withdrawn: the client that waited gave up.
    async fn withdraw(&self, id: &str, reason: &str) -> Result<ApprovalRecord, ApprovalError>;

    /// Writes down every pending or approved record whose deadline has passed (returned,
    /// to be audited) and deletes finished records older than [`RETENTION_MS`].
    async fn expire_due(&self) -> Result<Vec<ApprovalRecord>, ApprovalError>;
}

pub type SharedApprovals = Arc<dyn ApprovalStore>;

/// Opens the approval store of a state DSN: the same backend (and, for SQLite, the same
/// file) as the counters, namespaced by the same prefix.
pub fn open_approvals(
    dsn: &str,
    prefix: &str,
    clock: Arc<dyn Clock>,
) -> Result<SharedApprovals, StoreError> {
    Ok(match Dsn::parse(dsn)? {
        Dsn::Memory => Arc::new(MemoryApprovals::new(clock)),
        Dsn::Sqlite(path) => Arc::new(SqliteApprovals::open(path, prefix, clock)?),
        // Shared by every gateway on the same Redis; the scripts read the server's clock.
        Dsn::Redis(dsn) => Arc::new(crate::redis::RedisApprovals::open(
            &dsn,
            prefix,
            crate::redis::RedisTime::Server,
        )?),
    })
}

pub(crate) fn mode_str(mode: ApprovalMode) -> &'static str {
    match mode {
        ApprovalMode::Retry => "retry",
        ApprovalMode::Hold => "hold",
    }
}

pub(crate) fn parse_mode(text: &str) -> ApprovalMode {
    match text {
        "hold" => ApprovalMode::Hold,
        _ => ApprovalMode::Retry,
    }
}

/// The checks every store makes before a transition, on a record read under its lock:
/// whether `from` is its effective state.
pub(crate) fn require_state(
    record: Option<&ApprovalRecord>,
    id: &str,
    from: ApprovalState,
    now_ms: u64,
) -> Result<(), ApprovalError> {
    let Some(record) = record else {
        return Err(ApprovalError::NotFound(id.to_string()));
    };
    let state = record.effective_state(now_ms);
    if state == from {
        Ok(())
    } else {
        Err(ApprovalError::Conflict {
            id: id.to_string(),
            state,
        })
    }
}

/// Applies a verdict to a pending record (already checked).
pub(crate) fn apply_verdict(record: &mut ApprovalRecord, verdict: &Verdict, by: &str, now: u64) {
    record.decided_ms = Some(now);
    record.decided_by = Some(by.to_string());
    record.updated_ms = now;
    record.expires_ms = now.saturating_add(record.timeout_ms);
    match verdict {
        Verdict::Approve { note } => {
            record.state = ApprovalState::Approved;
            record.note = note.clone();
        }
        Verdict::Deny { reason } => {
            record.state = ApprovalState::Denied;
            record.reason = Some(reason.clone());
        }
    }
}
