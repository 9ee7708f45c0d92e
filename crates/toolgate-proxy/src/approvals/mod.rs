//! Human approval of tool calls: the gateway side.
//!
//! The policy decides that a call needs approval (`Decision::ApprovalRequired`); this module
//! carries that out. It binds a request to the exact call (`fingerprint`), keeps it in the
//! state backend (`toolgate_state::approvals`, shared with other gateways and the CLI),
//! answers or holds the call (`flow`), announces new requests (`notify`) and audits every
//! transition (`view`). People decide through `toolgate approvals` or the admin API
//! (`crate::admin`); both reach the same records.
//!
//! Everything that can wait — the store, a held call, a webhook — runs on a task of its own,
//! so a call waiting for a person never holds up the session's other messages.

mod fingerprint;
mod flow;
mod notify;
pub(crate) mod redact;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;
use toolgate_policy::ir::ApprovalMode;
use toolgate_state::{ApprovalError, ApprovalRecord, Clock, SharedApprovals, SystemClock, Verdict};

use crate::gateway::Gateway;

pub use fingerprint::{fingerprint, is_approval_id, new_approval_id};
pub(crate) use flow::ApprovalCall;
pub use notify::{notification_body, signature, SIGNATURE_HEADER};
pub use redact::redact_arguments;
pub use view::{
    audit_event, audit_line, check_verdict, describe_state, record_json, ApprovalAudit, Transition,
    MAX_TEXT_CHARS,
};

/// Tunables of the approval machinery (not policy).
#[derive(Debug, Clone)]
pub struct ApprovalOptions {
    /// How often a held call reads its record (decisions made by another process are seen
    /// this late at most; decisions made through this process's admin API wake it at once).
    pub poll_interval: Duration,
    /// How often a held call sends `notifications/progress` (to clients that sent a
    /// `progressToken`); the first goes out as soon as the call is held.
    pub progress_interval: Duration,
    /// How often expired records are written down (and audited).
    pub sweep_interval: Duration,
    /// Webhook: attempts per notification, and the first wait between them (doubling).
    pub webhook_attempts: u32,
    pub webhook_backoff: Duration,
    pub webhook_timeout: Duration,
    /// How long the notification command may run.
    pub command_timeout: Duration,
    /// State flags to repeat in the `toolgate approvals …` commands a notification suggests
    /// (e.g. `--state-dir DIR`), so they reach the same records.
    pub cli_args: Vec<String>,
    /// Pending requests one identity may have at once; a call that would make one more is
    /// refused (its request withdrawn at once, never announced).
    pub max_pending_per_identity: usize,
}

impl Default for ApprovalOptions {
    fn default() -> ApprovalOptions {
        ApprovalOptions {
            poll_interval: Duration::from_millis(250),
            progress_interval: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(5),
            webhook_attempts: 6,
            webhook_backoff: Duration::from_secs(1),
            webhook_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            cli_args: Vec::new(),
            max_pending_per_identity: 20,
        }
    }
}

/// One transition, as the admin event stream and held calls see it.
#[derive(Debug, Clone)]
pub struct ApprovalEvent {
    pub transition: Transition,
    pub record: ApprovalRecord,
}

/// The gateway's handle on approvals: the store, the options, and the in-process fan-out of
/// transitions. Shared by every session and by the admin API.
pub struct Approvals {
    pub(crate) store: SharedApprovals,
    pub(crate) options: ApprovalOptions,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<ApprovalEvent>,
    notifier: OnceLock<Option<notify::Notifier>>,
    admin_url: Mutex<Option<String>>,
    /// Held calls of this process per request id, so a cancelling client withdraws a
    /// request only when no other held call still waits on it.
    waiters: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Approvals {
    pub fn new(store: SharedApprovals, options: ApprovalOptions) -> Arc<Approvals> {
        Approvals::with_clock(store, options, Arc::new(SystemClock))
    }

    /// With the clock notification timestamps are read from (tests).
    pub fn with_clock(
        store: SharedApprovals,
        options: ApprovalOptions,
        clock: Arc<dyn Clock>,
    ) -> Arc<Approvals> {
        let (events, _) = broadcast::channel(256);
        Arc::new(Approvals {
            store,
            options,
            clock,
            events,
            notifier: OnceLock::new(),
            admin_url: Mutex::new(None),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &SharedApprovals {
        &self.store
    }

    /// How many requests wait for a person now (up to 10,000); none when the store cannot
    /// be read.
    pub async fn pending_count(&self) -> Option<usize> {
        let filter = toolgate_state::ListFilter {
            all: false,
            limit: 10_000,
        };
        self.store
            .list(filter)
            .await
            .ok()
            .map(|pending| pending.len())
    }

    /// The time approvals are judged by (the store's clock).
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Transitions made by this process, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.events.subscribe()
    }

    /// The admin API's base URL (`http://127.0.0.1:PORT`), for links in notifications.
    pub fn set_admin_url(&self, url: String) {
        *self.admin_url.lock() = Some(url);
    }

    pub(crate) fn admin_url(&self) -> Option<String> {
        self.admin_url.lock().clone()
    }

    pub(crate) fn publish(&self, transition: Transition, record: &ApprovalRecord) {
        let _ = self.events.send(ApprovalEvent {
            transition,
            record: record.clone(),
        });
    }

    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn notifier(&self) -> Option<&notify::Notifier> {
        self.notifier
            .get_or_init(|| notify::Notifier::new(self.options.webhook_timeout))
            .as_ref()
    }

    /// Counts a held call on `id` until the guard is dropped.
    pub(crate) fn wait_on(self: &Arc<Self>, id: &str) -> WaiterGuard {
        *self.waiters.lock().entry(id.to_string()).or_default() += 1;
        WaiterGuard {
            approvals: Arc::clone(self),
            id: id.to_string(),
        }
    }
}

/// A held call's registration; see [`Approvals::wait_on`].
pub(crate) struct WaiterGuard {
    approvals: Arc<Approvals>,
    id: String,
}

impl WaiterGuard {
    /// Whether no other held call of this process waits on the same request.
    pub fn is_last(&self) -> bool {
        self.approvals
            .waiters
            .lock()
            .get(&self.id)
            .is_none_or(|n| *n <= 1)
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut waiters = self.approvals.waiters.lock();
        if let Some(n) = waiters.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                waiters.remove(&self.id);
            }
        }
    }
}

pub(crate) fn mode_name(mode: ApprovalMode) -> &'static str {
    match mode {
        ApprovalMode::Retry => "retry",
        ApprovalMode::Hold => "hold",
    }
}

impl Gateway {
    /// The approvals handle, when approvals are configured.
    pub fn approvals(&self) -> Option<&Arc<Approvals>> {
        self.options.approvals.as_ref()
    }

    /// Audits a transition and tells this process's listeners.
    pub(crate) fn approval_transition(&self, transition: Transition, record: &ApprovalRecord) {
        self.audit.record(audit_event(transition, record));
        if let Some(approvals) = &self.options.approvals {
            approvals.publish(transition, record);
        }
    }

    /// A person decides a pending request (the admin API); audited and published.
    pub async fn decide_approval(
        &self,
        id: &str,
        verdict: &Verdict,
        by: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let Some(approvals) = &self.options.approvals else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        let record = approvals.store.decide(id, verdict, by).await?;
        self.approval_transition(Transition::of_verdict(verdict), &record);
        Ok(record)
    }

    /// Gives a consumed approval back (its call did not reach the tool), awaiting the store.
    pub(crate) async fn release_approval_now(&self, id: &str) {
        let Some(approvals) = &self.options.approvals else {
            return;
        };
        match approvals.store.release(id).await {
            Ok(record) => self.approval_transition(Transition::Released, &record),
            Err(e) => tracing::warn!(approval = %id, error = %e, "could not give an approval back"),
        }
    }

    /// [`Gateway::release_approval_now`] from code that cannot wait: on a task of its own.
    pub(crate) fn release_approval(&self, id: String) {
        let Some(approvals) = self.options.approvals.clone() else {
            return;
        };
        let audit = self.audit.clone();
        tokio::spawn(async move {
            match approvals.store.release(&id).await {
                Ok(record) => {
                    audit.record(audit_event(Transition::Released, &record));
                    approvals.publish(Transition::Released, &record);
                }
                Err(e) => {
                    tracing::warn!(approval = %id, error = %e, "could not give an approval back")
                }
            }
        });
    }
}

/// Writes down expired requests every `sweep_interval` (each is audited once, by whichever
/// gateway sweeps first). Returns `None` when approvals are not configured.
pub fn spawn_sweeper(gateway: &Arc<Gateway>) -> Option<tokio::task::JoinHandle<()>> {
    let approvals = gateway.options.approvals.clone()?;
    let gateway = Arc::clone(gateway);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(approvals.options.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match approvals.store.expire_due().await {
                Ok(expired) => {
                    for record in &expired {
                        gateway.approval_transition(Transition::Expired, record);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not sweep expired approval requests"),
            }
        }
    }))
}
