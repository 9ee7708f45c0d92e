//! Tool definition pins at run time (`docs/INTEGRITY.md`). Every `tools/list` page that
//! passes through — and toolgate's own listings — is compared with the pins of the server
//! (`--server-name`): those in the state store, trusted on first use, or those of the
//! policy's `pinning.lock` file. A tool whose definition departs from its pin is
//! *drifting* until the listing shows the pinned definition again or a person approves
//! the new one (`toolgate pins approve`), which a watcher notices within a second.
//!
//! What a drifting tool gets is the policy's, read at each use (`pinning.on_change`,
//! `on_new_tool`): hidden from listings and answered as unknown, listed but refused, or
//! allowed. Every drift is audited once per definition as `tool_changed`, with a readable
//! diff; sessions whose view of the tools changes are sent `tools/list_changed`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;
use toolgate_policy::{OnNewTool, OnPinChange, Policy};
use toolgate_state::pins::{tool_key, tool_of_key, INSTRUCTIONS_KEY};
use toolgate_state::{Observation, PinEntry, PinRecord, PinStore};

use crate::audit::AuditEvent;
use crate::gateway::{FailMode, Gateway};
use crate::pinning::{
    compare, instructions_entry, seen_tool, Drift, DriftKind, LockFile, SeenTool,
};

/// Most pin records (tools and instructions) the store keeps for one server.
const MAX_RECORDS_PER_SERVER: usize = 10_000;
/// How often the watcher looks for approvals while something drifts.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Drifts already audited that are remembered; past it, the set starts again (a server that
/// lists ever new definitions gets them reported again rather than remembered without end).
const REPORTED_AT_MOST: usize = 4096;

/// What the gateway knows of the server's drift from its pins.
#[derive(Default)]
pub(crate) struct PinWatch {
    /// Tools whose listed definition departs from their pin, by name, as last listed.
    drifting: HashMap<String, Drift>,
    /// Drifts audited (tool and definition).
    reported: HashSet<String>,
    /// The server's first listing is under way: its later pages are trusted on first use.
    first_listing: bool,
}

/// What a drifting tool gets under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinAction {
    Allow,
    Hide,
    Deny,
}

impl PinAction {
    fn as_str(self) -> &'static str {
        match self {
            PinAction::Allow => "allow",
            PinAction::Hide => "hide",
            PinAction::Deny => "deny",
        }
    }
}

fn action_for(kind: &DriftKind, policy: &Policy) -> PinAction {
    match kind {
        DriftKind::Changed | DriftKind::Renamed { .. } => match policy.pinning.on_change {
            OnPinChange::Hide => PinAction::Hide,
            OnPinChange::Deny => PinAction::Deny,
            OnPinChange::Warn => PinAction::Allow,
        },
        DriftKind::New => match policy.pinning.on_new_tool {
            OnNewTool::Hide => PinAction::Hide,
            OnNewTool::Allow => PinAction::Allow,
        },
        DriftKind::Removed => PinAction::Allow,
    }
}

impl Gateway {
    /// Whether pins are kept at all (a state store or a lock file).
    pub(crate) fn pins_kept(&self) -> bool {
        self.pins.is_some() || self.pin_lock.load().is_some()
    }

    /// What `tool` gets for its drift from its pin (allow when it does not drift).
    pub(crate) fn pin_action(&self, tool: &str, policy: &Policy) -> PinAction {
        let watch = self.pin_watch.read();
        if watch.drifting.is_empty() {
            return PinAction::Allow;
        }
        watch
            .drifting
            .get(tool)
            .map_or(PinAction::Allow, |d| action_for(&d.kind, policy))
    }

    /// The denial message of a call to a tool whose definition drifts under `deny`.
    pub(crate) fn pin_denial_message(&self, tool: &str) -> String {
        let server = &self.options.server_name;
        format!(
            "The definition of tool \"{tool}\" changed since it was approved, so toolgate \
             refuses calls to it until an operator reviews the change (toolgate pins diff \
             {server}/{tool}) and approves it (toolgate pins approve {server}/{tool})."
        )
    }

    /// Compares one `tools/list` page with the pins, and records what drifts.
    pub(crate) async fn check_pins(&self, page: &Value, policy: &Policy) {
        let Some(tools) = page.get("tools").and_then(Value::as_array) else {
            return;
        };
        let now = self.clock.now_ms();
        let seen: Vec<SeenTool> = tools.iter().filter_map(|t| seen_tool(t, now)).collect();
        let last_page = !page.get("nextCursor").is_some_and(Value::is_string);
        let (report, standing) = match (self.pin_lock.load_full(), &self.pins) {
            (Some(lock), _) => {
                let drift = compare(&lock.tools, &seen, false);
                (drift.clone(), drift)
            }
            (None, Some(store)) => match self
                .observe_pins(store.as_ref(), &seen, policy, last_page)
                .await
            {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "could not check the server's tool definitions against their pins");
                    (Vec::new(), self.unverified(&seen))
                }
            },
            (None, None) => return,
        };
        self.take_drift(&seen, report, standing, policy);
    }

    /// Checks `seen` against the store's pins and records it there. Returns the drift to
    /// report (including new tools pinned just now) and the drift that stands (the pin is
    /// not what the listing shows).
    async fn observe_pins(
        &self,
        store: &dyn PinStore,
        seen: &[SeenTool],
        policy: &Policy,
        last_page: bool,
    ) -> Result<(Vec<Drift>, Vec<Drift>), toolgate_state::StoreError> {
        let server = &self.options.server_name;
        let records = store.list(Some(server)).await?;
        let known: HashSet<String> = records.iter().map(|r| r.key.clone()).collect();
        let pins: BTreeMap<String, PinEntry> = records
            .into_iter()
            .filter_map(|r| Some((tool_of_key(&r.key)?.to_string(), r.pinned?)))
            .collect();
        // The store is shared and lasts: a server that lists ever new names must not fill
        // it. Past the bound, new names are not recorded; they drift as new (hidden under
        // `on_new_tool: hide`) on every listing instead.
        let mut room = MAX_RECORDS_PER_SERVER.saturating_sub(known.len());
        let (recorded, unrecorded): (Vec<&SeenTool>, Vec<&SeenTool>) = seen.iter().partition(|s| {
            if known.contains(&tool_key(&s.name)) {
                return true;
            }
            let fits = room > 0;
            room = room.saturating_sub(1);
            fits
        });
        if !unrecorded.is_empty() {
            tracing::warn!(
                server = %server,
                tools = unrecorded.len(),
                "the server lists more tools than the pin store keeps for one server \
                 ({MAX_RECORDS_PER_SERVER}); the others are not pinned and count as new"
            );
        }
        let first = {
            let mut watch = self.pin_watch.write();
            let first = watch.first_listing || pins.is_empty();
            watch.first_listing = first && !last_page;
            first
        };
        // The first listing is the baseline: nothing in it drifts.
        let drift: HashMap<String, Drift> = if first {
            HashMap::new()
        } else {
            compare(&pins, seen, false)
                .into_iter()
                .map(|d| (d.tool.clone(), d))
                .collect()
        };
        let observe = |s: &SeenTool| Observation {
            key: tool_key(&s.name),
            entry: s.entry.clone(),
        };
        let (renamed, others): (Vec<&SeenTool>, Vec<&SeenTool>) =
            recorded.into_iter().partition(|s| {
                matches!(
                    drift.get(&s.name).map(|d| &d.kind),
                    Some(DriftKind::Renamed { .. })
                )
            });
        // A rename changes what an approved tool is called: pinned as seen only where
        // changes are allowed anyway.
        let pin_new = first || policy.pinning.on_new_tool == OnNewTool::Allow;
        let pin_renamed = first || policy.pinning.on_change == OnPinChange::Warn;
        // Each store answers one record per observation, in order.
        let mut observed: Vec<(&SeenTool, PinRecord)> = Vec::with_capacity(seen.len());
        for (group, pin) in [(others, pin_new), (renamed, pin_renamed)] {
            if !group.is_empty() {
                let records = store
                    .observe(server, group.iter().map(|s| observe(s)).collect(), pin)
                    .await?;
                observed.extend(group.into_iter().zip(records));
            }
        }
        let mut report = Vec::new();
        let mut standing: Vec<Drift> = unrecorded
            .into_iter()
            .map(|s| Drift {
                tool: s.name.clone(),
                kind: DriftKind::New,
                pinned: None,
                seen: Some(s.entry.clone()),
            })
            .collect();
        for (seen, record) in observed {
            let tool = seen.name.as_str();
            let found = drift.get(tool).cloned();
            if record.matches(&seen.entry.digest) {
                // Pinned just now (a new tool, or a rename, allowed): reported, not standing.
                report.extend(found);
                continue;
            }
            // Another gateway may have pinned something else first: the store decides.
            let drift = found.unwrap_or_else(|| Drift {
                tool: tool.to_string(),
                kind: if record.pinned.is_some() {
                    DriftKind::Changed
                } else {
                    DriftKind::New
                },
                pinned: record.pinned.clone(),
                seen: Some(seen.entry.clone()),
            });
            report.push(drift.clone());
            standing.push(drift);
        }
        Ok((report, standing))
    }

    /// When the store cannot be read: what already drifts keeps drifting, and every other
    /// listed tool drifts as changed (fail closed); or only what already drifts does (fail
    /// open).
    fn unverified(&self, seen: &[SeenTool]) -> Vec<Drift> {
        let closed = self.options.fail_mode == FailMode::Closed;
        let watch = self.pin_watch.read();
        seen.iter()
            .filter_map(|s| match watch.drifting.get(&s.name) {
                Some(known) => Some(known.clone()),
                None => closed.then(|| Drift {
                    tool: s.name.clone(),
                    kind: DriftKind::Changed,
                    pinned: None,
                    seen: Some(s.entry.clone()),
                }),
            })
            .collect()
    }

    /// Records the drift of one page: what it lists replaces what was known of those tools;
    /// new drift is audited; sessions that listed a tool now hidden are told.
    fn take_drift(
        &self,
        seen: &[SeenTool],
        report: Vec<Drift>,
        standing: Vec<Drift>,
        policy: &Policy,
    ) {
        let hidden = |d: &Drift| action_for(&d.kind, policy) == PinAction::Hide;
        let mut was_hidden = HashSet::new();
        let mut is_hidden = HashSet::new();
        let mut audit = Vec::new();
        {
            let mut watch = self.pin_watch.write();
            for s in seen {
                if let Some(old) = watch.drifting.remove(&s.name) {
                    if hidden(&old) {
                        was_hidden.insert(old.tool);
                    }
                }
            }
            for d in standing {
                if hidden(&d) {
                    is_hidden.insert(d.tool.clone());
                }
                watch.drifting.insert(d.tool.clone(), d);
            }
            for d in report {
                let digest = d.seen.as_ref().map_or("", |e| e.digest.as_str());
                if watch.reported.len() >= REPORTED_AT_MOST {
                    watch.reported.clear();
                }
                if watch.reported.insert(format!("{}\u{0}{digest}", d.tool)) {
                    audit.push(d);
                }
            }
        }
        for d in audit {
            self.audit_drift(Some(&d.tool), &d, action_for(&d.kind, policy));
        }
        // Tools hidden now that were shown, and shown now that were hidden.
        let flipped: HashSet<&str> = was_hidden
            .symmetric_difference(&is_hidden)
            .map(String::as_str)
            .collect();
        if !flipped.is_empty() {
            self.notify_sessions_listing(|tool| flipped.contains(tool));
        }
    }

    fn audit_drift(&self, tool: Option<&str>, drift: &Drift, action: PinAction) {
        let server = &self.options.server_name;
        let diff = drift.diff();
        let from = match &drift.kind {
            DriftKind::Renamed { from } => Some(from.clone()),
            _ => None,
        };
        tracing::warn!(
            server = %server,
            tool = tool.unwrap_or("(instructions)"),
            change = drift.kind.as_str(),
            renamed_from = from.as_deref().unwrap_or(""),
            action = action.as_str(),
            "a tool definition departs from its pin (see toolgate pins diff; docs/INTEGRITY.md)"
        );
        self.audit.record(AuditEvent::ToolChanged {
            server: server.clone(),
            tool: tool.map(str::to_string),
            change: drift.kind.as_str(),
            renamed_from: from,
            action: action.as_str(),
            pinned: drift.pinned.as_ref().map(|e| e.digest.clone()),
            seen: drift.seen.as_ref().map(|e| e.digest.clone()),
            diff,
        });
    }

    /// Checks the server's `initialize` instructions against their pin. Returns whether they
    /// must be withheld from the client (they changed, and the policy does not warn only).
    pub(crate) async fn check_instructions_pin(
        &self,
        instructions: Option<&str>,
        policy: &Policy,
    ) -> bool {
        let seen = instructions_entry(instructions, self.clock.now_ms());
        let pinned = match (self.pin_lock.load_full(), &self.pins) {
            (Some(lock), _) => match &lock.instructions {
                Some(pin) => Some(pin.clone()),
                None => return false,
            },
            (None, Some(store)) => {
                let observed = Observation {
                    key: INSTRUCTIONS_KEY.to_string(),
                    entry: seen.clone(),
                };
                match store
                    .observe(&self.options.server_name, vec![observed], true)
                    .await
                {
                    Ok(records) => records.into_iter().next().and_then(|r| r.pinned),
                    Err(error) => {
                        tracing::warn!(%error, "could not check the server's instructions against their pin");
                        return self.options.fail_mode == FailMode::Closed
                            && policy.pinning.on_change != OnPinChange::Warn;
                    }
                }
            }
            (None, None) => return false,
        };
        if pinned.as_ref().is_some_and(|p| p.digest == seen.digest) {
            return false;
        }
        let drift = Drift {
            tool: String::new(),
            kind: DriftKind::Changed,
            pinned,
            seen: Some(seen),
        };
        let action = action_for(&drift.kind, policy);
        let first_report = {
            let mut watch = self.pin_watch.write();
            let digest = drift.seen.as_ref().map_or("", |e| e.digest.as_str());
            watch
                .reported
                .insert(format!("\u{0}instructions\u{0}{digest}"))
        };
        if first_report {
            self.audit_drift(None, &drift, action);
        }
        action != PinAction::Allow
    }

    /// Puts a lock file in force (or none), and lets go of drift the new pins resolve.
    pub fn set_pin_lock(&self, lock: Option<LockFile>) {
        let lock = lock.map(Arc::new);
        self.pin_lock.store(lock.clone());
        let resolved = |d: &Drift| match &lock {
            Some(lock) => {
                let pin = lock.tools.get(&d.tool);
                pin.is_some_and(|p| d.seen.as_ref().is_some_and(|s| s.digest == p.digest))
            }
            // Back to the store: the next listing decides.
            None => true,
        };
        self.resolve_drift(resolved);
    }

    /// Forgets the drift `resolved` says is over; sessions that listed a tool that was
    /// hidden are told.
    fn resolve_drift(&self, resolved: impl Fn(&Drift) -> bool) {
        let policy = self.policy.load_full();
        let released: HashSet<String> = {
            let mut watch = self.pin_watch.write();
            let done: Vec<String> = watch
                .drifting
                .values()
                .filter(|d| resolved(d))
                .map(|d| d.tool.clone())
                .collect();
            done.into_iter()
                .filter_map(|tool| {
                    let d = watch.drifting.remove(&tool)?;
                    (action_for(&d.kind, &policy) == PinAction::Hide).then_some(tool)
                })
                .collect()
        };
        if !released.is_empty() {
            tracing::info!(
                tools = released.len(),
                "approved tool definitions are listed again"
            );
            self.notify_sessions_listing(|tool| released.contains(tool));
        }
    }

    /// Starts the task that notices approvals (and resets) made in the store by other
    /// processes, while something drifts. It ends with the gateway.
    pub fn spawn_pin_watcher(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.pins.as_ref()?;
        let gateway: Weak<Gateway> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                gateway.look_for_approvals().await;
            }
        }))
    }

    async fn look_for_approvals(&self) {
        let Some(store) = &self.pins else { return };
        let drifting: Vec<(String, PinEntry)> = {
            let watch = self.pin_watch.read();
            watch
                .drifting
                .values()
                .filter_map(|d| Some((d.tool.clone(), d.seen.clone()?)))
                .collect()
        };
        if drifting.is_empty() || self.pin_lock.load().is_some() {
            return;
        }
        let server = &self.options.server_name;
        let records: HashMap<String, PinRecord> = match store.list(Some(server)).await {
            Ok(records) => records.into_iter().map(|r| (r.key.clone(), r)).collect(),
            Err(error) => {
                tracing::debug!(%error, "could not look for approved tool definitions");
                return;
            }
        };
        let mut approved: HashMap<String, String> = HashMap::new();
        for (tool, seen) in drifting {
            match records.get(&tool_key(&tool)).map(|r| r.pinned.as_ref()) {
                Some(Some(pin)) if pin.digest == seen.digest => {
                    approved.insert(tool, seen.digest);
                }
                // Still changed, or a new tool still waiting for approval.
                Some(_) => {}
                // No record at all: the pins were reset, and what is listed now is trusted,
                // as on first use.
                None => {
                    let digest = seen.digest.clone();
                    let observed = Observation {
                        key: tool_key(&tool),
                        entry: seen,
                    };
                    if let Ok(records) = store.observe(server, vec![observed], true).await {
                        if records.first().is_some_and(|r| r.matches(&digest)) {
                            approved.insert(tool, digest);
                        }
                    }
                }
            }
        }
        if !approved.is_empty() {
            self.resolve_drift(|d| {
                approved
                    .get(&d.tool)
                    .is_some_and(|digest| d.seen.as_ref().is_some_and(|s| &s.digest == digest))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audit::AuditSink;
    use crate::gateway::GatewayOptions;
    use serde_json::json;
    use toolgate_state::{MemoryPins, MemoryStore, SystemClock};

    fn gateway(pins: MemoryPins, policy: &str) -> (Arc<Gateway>, Policy) {
        gateway_with(Arc::new(pins), policy, FailMode::Closed)
    }

    fn gateway_with(
        pins: toolgate_state::SharedPins,
        policy: &str,
        fail_mode: FailMode,
    ) -> (Arc<Gateway>, Policy) {
        let policy = toolgate_policy::compile(policy).unwrap();
        let clock = Arc::new(SystemClock);
        let options = GatewayOptions {
            server_name: "s".into(),
            pins: Some(pins),
            fail_mode,
            ..GatewayOptions::default()
        };
        let store = Arc::new(MemoryStore::new("t", clock.clone()));
        let gateway = Gateway::new(
            policy.clone(),
            store,
            clock,
            AuditSink::disabled("t".into()),
            None,
            options,
        );
        (gateway, policy)
    }

    fn page(names: impl Iterator<Item = String>) -> Value {
        let tools: Vec<Value> = names
            .map(|n| json!({"name": n, "description": format!("about {n}")}))
            .collect();
        json!({ "tools": tools })
    }

    /// A server that lists ever new names fills neither the shared store nor lets them in.
    #[tokio::test]
    async fn a_server_cannot_fill_the_pin_store() {
        let pins = MemoryPins::default();
        let (gateway, policy) = gateway(
            pins.clone(),
            "version: '1'\npinning: {on_new_tool: hide}\ntools: {}\n",
        );
        gateway
            .check_pins(&page((0..3).map(|i| format!("t{i}"))), &policy)
            .await;
        let flood = page((0..MAX_RECORDS_PER_SERVER + 50).map(|i| format!("new{i}")));
        gateway.check_pins(&flood, &policy).await;
        assert_eq!(
            pins.list(Some("s")).await.unwrap().len(),
            MAX_RECORDS_PER_SERVER
        );
        assert_eq!(gateway.pin_action("t0", &policy), PinAction::Allow);
        assert_eq!(gateway.pin_action("new0", &policy), PinAction::Hide);
        let last = format!("new{}", MAX_RECORDS_PER_SERVER + 49);
        assert_eq!(gateway.pin_action(&last, &policy), PinAction::Hide);
    }

    /// A store that cannot be reached.
    #[derive(Debug)]
    struct Unreachable;

    #[async_trait::async_trait]
    impl PinStore for Unreachable {
        async fn observe(
            &self,
            _: &str,
            _: Vec<Observation>,
            _: bool,
        ) -> Result<Vec<PinRecord>, toolgate_state::StoreError> {
            Err(toolgate_state::StoreError::Unavailable("down".into()))
        }
        async fn approve(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<PinRecord>, toolgate_state::StoreError> {
            Err(toolgate_state::StoreError::Unavailable("down".into()))
        }
        async fn list(
            &self,
            _: Option<&str>,
        ) -> Result<Vec<PinRecord>, toolgate_state::StoreError> {
            Err(toolgate_state::StoreError::Unavailable("down".into()))
        }
        async fn reset(&self, _: Option<&str>) -> Result<usize, toolgate_state::StoreError> {
            Err(toolgate_state::StoreError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_as_the_fail_mode_says() {
        let policy = "version: '1'\npinning: {on_change: hide}\ntools: {}\n";
        let (closed, p) = gateway_with(Arc::new(Unreachable), policy, FailMode::Closed);
        closed
            .check_pins(&page(["t".to_string()].into_iter()), &p)
            .await;
        assert_eq!(closed.pin_action("t", &p), PinAction::Hide);
        let (open, p) = gateway_with(Arc::new(Unreachable), policy, FailMode::Open);
        open.check_pins(&page(["t".to_string()].into_iter()), &p)
            .await;
        assert_eq!(open.pin_action("t", &p), PinAction::Allow);
    }
}
