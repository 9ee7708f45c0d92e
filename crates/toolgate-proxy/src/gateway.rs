//! The gateway: one policy snapshot, one counter store, one audit sink, shared by every
//! session of every transport.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use toolgate_policy::Policy;
use toolgate_state::{Clock, CounterStore};

use crate::audit::{ArgsHasher, AuditEvent, AuditSink};
use crate::message::ToClient;
use crate::session::Session;
use crate::wire;

/// What to do with a call that needs the counter store while the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Refuse the call (the default: a limit nobody can check is not a limit).
    #[default]
    Closed,
    /// Let the call through uncounted, and say so in the audit log.
    Open,
}

/// Settings that are not policy.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Overrides the policy's `deny_prefix`.
    pub deny_prefix: Option<String>,
    pub fail_mode: FailMode,
    /// How long a forwarded call may take before its reservation is rolled back and the
    /// client is told the server did not answer.
    pub call_timeout: Duration,
    /// How long after a client cancels a forwarded call a late result still counts.
    pub cancel_grace: Duration,
    /// Whether results with `isError: true` consume quota (they reached the tool).
    pub count_error_results: bool,
    /// Where approval requests are kept and announced; without it, a call that needs
    /// approval is refused with a message saying approvals are not configured.
    pub approvals: Option<Arc<crate::approvals::Approvals>>,
    /// `--shadow`: every policy put in force runs in shadow mode, whatever its `mode` says.
    pub shadow: bool,
    /// The name the server's pins (and audit lines about its definitions) go under.
    pub server_name: String,
    /// Where pins are kept; without it (and without a lock file), nothing is pinned.
    pub pins: Option<toolgate_state::SharedPins>,
    /// Spans of calls, when tracing is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub tracer: Option<Arc<crate::otel::Tracer>>,
}

impl GatewayOptions {
    /// What the command line overrides in every policy put in force.
    fn apply_to(&self, policy: &mut Policy) {
        if self.shadow {
            policy.mode = toolgate_policy::PolicyMode::Shadow;
        }
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            deny_prefix: None,
            fail_mode: FailMode::Closed,
            call_timeout: Duration::from_secs(600),
            cancel_grace: Duration::from_secs(5),
            count_error_results: true,
            approvals: None,
            shadow: false,
            server_name: "server".into(),
            pins: None,
            tracer: None,
        }
    }
}

pub struct Gateway {
    pub(crate) policy: ArcSwap<Policy>,
    pub(crate) store: Arc<dyn CounterStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) audit: AuditSink,
    pub(crate) hasher: Option<ArgsHasher>,
    pub(crate) options: GatewayOptions,
    sessions: Mutex<Vec<Weak<Session>>>,
    /// Risk categories of the tools seen in `tools/list` results, for `categories` rules.
    pub(crate) tool_categories:
        parking_lot::RwLock<std::collections::HashMap<String, &'static str>>,
    /// Held for the whole of a reload (read, compile, swap), so that reloads from the
    /// watcher and from SIGHUP happen one after the other and the newest read always wins.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// Set by the HTTP listener, which authenticates with the policy's `identities` whenever
    /// it has some: a reload must then not remove them.
    pub(crate) serves_http: std::sync::atomic::AtomicBool,
    /// Held while the gateway lists the server's tools itself; holds when that last ended.
    pub(crate) category_listing: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Calls under an `idempotency_window`: in flight, and answers kept.
    pub(crate) idempotency: crate::idempotency::Idempotency,
    /// Tools whose definitions look poisoned, as last listed.
    pub(crate) poisoned_tools: parking_lot::RwLock<crate::pipeline::poisoning::PoisonedTools>,
    /// Where pins are kept (`options.pins`).
    pub(crate) pins: Option<toolgate_state::SharedPins>,
    /// The policy's `pinning.lock`, read: when set, pins come from it instead of the store.
    pub(crate) pin_lock: arc_swap::ArcSwapOption<crate::pinning::LockFile>,
    /// Tools whose definitions depart from their pins.
    pub(crate) pin_watch: parking_lot::RwLock<crate::pipeline::pins::PinWatch>,
    /// The file the policy was read from, for the console (none: built in).
    policy_file: parking_lot::RwLock<Option<std::path::PathBuf>>,
}

impl Gateway {
    pub fn new(
        mut policy: Policy,
        store: Arc<dyn CounterStore>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
        hasher: Option<ArgsHasher>,
        options: GatewayOptions,
    ) -> Arc<Gateway> {
        options.apply_to(&mut policy);
        audit.record(AuditEvent::Startup {
            policy: policy.revision.clone(),
            version: env!("CARGO_PKG_VERSION"),
        });
        Arc::new(Gateway {
            policy: ArcSwap::from_pointee(policy),
            store,
            clock,
            audit,
            hasher,
            sessions: Mutex::new(Vec::new()),
            tool_categories: Default::default(),
            category_listing: Default::default(),
            reload_lock: Default::default(),
            serves_http: Default::default(),
            idempotency: Default::default(),
            poisoned_tools: Default::default(),
            pins: options.pins.clone(),
            pin_lock: Default::default(),
            pin_watch: Default::default(),
            policy_file: Default::default(),
            options,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Names the file the policy is read from (and reloaded from).
    pub fn set_policy_file(&self, path: std::path::PathBuf) {
        *self.policy_file.write() = Some(path);
    }

    /// The file the policy is read from, when it has one.
    pub fn policy_file(&self) -> Option<std::path::PathBuf> {
        self.policy_file.read().clone()
    }

    /// The counter store the gateway's limits are kept in.
    pub fn store(&self) -> &Arc<dyn CounterStore> {
        &self.store
    }

    /// The name the server goes under (pins, the console).
    pub fn server_name(&self) -> &str {
        &self.options.server_name
    }

    pub(crate) fn deny_prefix<'a>(&'a self, policy: &'a Policy) -> &'a str {
        self.options
            .deny_prefix
            .as_deref()
            .or(policy.deny_prefix.as_deref())
            .unwrap_or(wire::DEFAULT_DENY_PREFIX)
    }

    /// Marks the gateway as serving an HTTP listener: from then on, a reload that would
    /// remove the policy's `identities` (and so turn authentication off) is refused.
    pub fn mark_serving_http(&self) {
        self.serves_http
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether installing `new` would turn the listener's authentication off (neither
    /// `identities` nor `oauth` left where there was one).
    pub(crate) fn would_drop_authentication(&self, new: &Policy) -> bool {
        let authenticates = |p: &Policy| !p.identities.is_empty() || p.oauth.is_some();
        self.serves_http.load(std::sync::atomic::Ordering::SeqCst)
            && authenticates(&self.policy())
            && !authenticates(new)
    }

    /// Registers a session so reloads can reach it.
    pub fn register(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions.lock();
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(session));
    }

    /// Puts a new policy in force. Calls already being decided finish on the old snapshot;
    /// counters are untouched. Clients whose visible tools change are told.
    pub async fn replace_policy(&self, mut policy: Policy) {
        self.options.apply_to(&mut policy);
        let revision = policy.revision.clone();
        let old = self.policy.swap(Arc::new(policy));
        let new = self.policy.load_full();
        self.audit.record(AuditEvent::Reload {
            ok: true,
            policy: Some(revision),
            errors: Vec::new(),
        });
        self.notify_sessions_where(|names| {
            names
                .iter()
                .any(|n| self.shows(n, &old) != self.shows(n, &new))
        });
    }

    /// Whether a listing under `policy` shows `tool`: the policy does not hide it, and
    /// neither does its definition (poisoned, or departed from its pin under `hide`).
    pub(crate) fn shows(&self, tool: &str, policy: &Policy) -> bool {
        policy.is_visible(tool)
            && !self.hides_as_poisoned(tool, policy)
            && self.pin_action(tool, policy) != crate::pipeline::pins::PinAction::Hide
    }

    /// Sends `tools/list_changed` to every session that listed a tool `changed` names.
    pub(crate) fn notify_sessions_listing(&self, changed: impl Fn(&str) -> bool) {
        self.notify_sessions_where(|names| names.iter().any(|n| changed(n)));
    }

    /// Sends `tools/list_changed` to every session whose listed tool names `changed` says
    /// now list differently.
    fn notify_sessions_where(&self, changed: impl Fn(&[String]) -> bool) {
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for session in sessions {
            let changed = {
                let state = session.state.lock();
                state.listed_tools.as_deref().is_some_and(&changed)
            };
            if changed {
                // A client that does not read must not hold up the reload (or anything
                // waiting behind it): the notice is delivered on a task of its own.
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(30),
                        session.send_to_client(ToClient::notice(wire::tools_list_changed())),
                    )
                    .await;
                });
            }
        }
    }

    /// Records a reload that failed validation; the old policy stays in force.
    pub fn reload_failed(&self, errors: Vec<String>) {
        self.audit.record(AuditEvent::Reload {
            ok: false,
            policy: None,
            errors,
        });
    }
}
