//! Turns audit lines into a summary's figures, one bounded line at a time.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead};

use serde::Deserialize;
use toolgate_proxy::audit::{format_rfc3339_ms, parse_rfc3339_ms};
use toolgate_proxy::framing::{BlockingLineReader, Frame};

use super::newest::{Key, Newest};
use super::{
    AuditSummary, CallRate, DecisionCounts, Denial, FailedReload, InstanceSummary, RuleCount,
    SummaryOptions, MINUTE_MS,
};

/// Lines longer than this are not ours (an audit line is a few hundred bytes, a few KiB with
/// many counters); they are skipped without being held, so a file without newlines cannot
/// make the reader load it whole.
pub(super) const MAX_LINE_BYTES: usize = 1 << 20;

/// Accumulates a summary from any number of log streams, in any order.
pub struct Summarizer {
    options: SummaryOptions,
    /// Order of reading, to break timestamp ties: later-read lines were written later.
    seq: u64,
    files: usize,
    lines: u64,
    skipped: u64,
    events: u64,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
    instances: HashMap<String, InstanceState>,
    decisions: DecisionCounts,
    uncounted: u64,
    deny_rules: HashMap<String, u64>,
    shadow_rules: HashMap<String, u64>,
    /// Call times (ms → calls) that may still fall inside the rate window; older ones are
    /// dropped as the newest timestamp advances, so this holds one window's calls at most.
    call_times: BTreeMap<u64, u64>,
    recent_denials: Newest<Denial>,
    failed_reloads: Newest<FailedReload>,
    failed_reloads_total: u64,
    tool_changes: Newest<super::ToolChange>,
    tool_changes_total: u64,
    poisoned_total: u64,
    /// Servers behind a gateway config, by name.
    servers: BTreeMap<String, ServerState>,
}

#[derive(Default)]
struct ServerState {
    calls: u64,
    denied: u64,
    /// The newest `server_health` line: when, up or not, and why not.
    health: Option<(Key, bool, Option<String>)>,
}

struct InstanceState {
    first_ms: u64,
    last: Key,
    last_event: String,
    calls: u64,
    denied: u64,
    policy: Option<(Key, String)>,
}

/// The fields of an audit line this reader uses; anything else on the line is ignored, so
/// lines from a newer writer with more fields still count.
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    instance: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    tool: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    policy: Option<Cow<'a, str>>,
    #[serde(default)]
    not_counted: bool,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(borrow, default)]
    errors: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    server: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    change: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(default)]
    up: Option<bool>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

impl Summarizer {
    pub fn new(options: SummaryOptions) -> Summarizer {
        Summarizer {
            recent_denials: Newest::new(options.recent),
            failed_reloads: Newest::new(options.recent),
            tool_changes: Newest::new(options.recent),
            options,
            seq: 0,
            files: 0,
            lines: 0,
            skipped: 0,
            events: 0,
            first_ms: None,
            last_ms: None,
            instances: HashMap::new(),
            decisions: DecisionCounts::default(),
            uncounted: 0,
            deny_rules: HashMap::new(),
            shadow_rules: HashMap::new(),
            call_times: BTreeMap::new(),
            failed_reloads_total: 0,
            tool_changes_total: 0,
            poisoned_total: 0,
            servers: BTreeMap::new(),
        }
    }

    /// Reads one log file's lines. A final line without a newline is read like any other and
    /// skipped only if it does not parse.
    pub fn read_from(&mut self, reader: impl BufRead) -> io::Result<()> {
        self.files += 1;
        let mut lines = BlockingLineReader::new(reader, MAX_LINE_BYTES);
        while let Some(frame) = lines.next_frame()? {
            if matches!(&frame, Frame::Line(line) if line.trim().is_empty()) {
                continue;
            }
            self.lines += 1;
            self.seq += 1;
            let accepted = match &frame {
                Frame::Line(line) => self.add_line(line.as_bytes()),
                Frame::TooLong(_) | Frame::NotUtf8 => false,
            };
            if !accepted {
                self.skipped += 1;
            }
        }
        Ok(())
    }

    /// Takes one line into the figures; false when it is not an audit line.
    fn add_line(&mut self, bytes: &[u8]) -> bool {
        let Ok(line) = serde_json::from_slice::<RawLine<'_>>(bytes) else {
            return false;
        };
        let Some(ms) = parse_rfc3339_ms(&line.ts) else {
            return false;
        };
        let key = (ms, self.seq);
        match &*line.event {
            "decision" => {
                let (Some(tool), Some(decision)) = (&line.tool, &line.decision) else {
                    return false;
                };
                let denied = decision == "deny";
                match &**decision {
                    "allow" => self.decisions.allow += 1,
                    "deny" => self.decisions.deny += 1,
                    "hidden" => self.decisions.hidden += 1,
                    "approval_required" => self.decisions.approval_required += 1,
                    "error" => self.decisions.error += 1,
                    "would_deny" => self.decisions.would_deny += 1,
                    "would_hide" => self.decisions.would_hide += 1,
                    "would_require_approval" => self.decisions.would_require_approval += 1,
                    "duplicate" => self.decisions.duplicate += 1,
                    _ => self.decisions.other += 1,
                }
                if decision.starts_with("would_") {
                    if let Some(rule) = &line.rule {
                        *self.shadow_rules.entry(rule.to_string()).or_default() += 1;
                    }
                }
                if line.not_counted {
                    self.uncounted += 1;
                }
                self.add_call_time(ms);
                if denied {
                    if let Some(rule) = &line.rule {
                        *self.deny_rules.entry(rule.to_string()).or_default() += 1;
                    }
                    self.recent_denials.offer(key, || Denial {
                        ts: format_rfc3339_ms(ms),
                        instance: line.instance.to_string(),
                        // Behind a gateway config, as the client names it.
                        tool: match &line.server {
                            Some(server) => {
                                toolgate_policy::gateway_config::aggregated_name(server, tool)
                            }
                            None => tool.to_string(),
                        },
                        rule: line.rule.as_deref().map(str::to_string),
                        message: line.message.as_deref().map(str::to_string),
                    });
                }
                let state = self.instance(&line.instance, key);
                state.calls += 1;
                state.denied += u64::from(denied);
                if let Some(server) = &line.server {
                    let state = self.servers.entry(server.to_string()).or_default();
                    state.calls += 1;
                    state.denied += u64::from(denied);
                }
            }
            "reload" => {
                let Some(ok) = line.ok else { return false };
                if !ok {
                    self.failed_reloads_total += 1;
                    self.failed_reloads.offer(key, || FailedReload {
                        ts: format_rfc3339_ms(ms),
                        instance: line.instance.to_string(),
                        error: line.errors.first().map(|e| e.to_string()),
                        error_count: line.errors.len(),
                    });
                }
            }
            "tool_changed" => {
                self.tool_changes_total += 1;
                self.tool_changes.offer(key, || super::ToolChange {
                    ts: format_rfc3339_ms(ms),
                    instance: line.instance.to_string(),
                    server: line.server.as_deref().unwrap_or("").to_string(),
                    tool: line.tool.as_deref().map(str::to_string),
                    change: line.change.as_deref().unwrap_or("").to_string(),
                    action: line.action.as_deref().unwrap_or("").to_string(),
                });
            }
            "poisoned_tool" | "poisoned_text" => self.poisoned_total += 1,
            "server_health" => {
                let (Some(server), Some(up)) = (&line.server, line.up) else {
                    return false;
                };
                let state = self.servers.entry(server.to_string()).or_default();
                if state.health.as_ref().is_none_or(|(k, _, _)| *k < key) {
                    let reason = line.reason.as_deref().map(str::to_string);
                    state.health = Some((key, up, reason));
                }
            }
            // Startup, shutdown, and events of a newer writer: they only date the instance.
            _ => {}
        }
        // Only lines that name the policy in force move the instance's revision: a failed
        // reload leaves the old one running and carries none.
        let revision = match &*line.event {
            "decision" | "startup" => line.policy.as_deref(),
            "reload" if line.ok == Some(true) => line.policy.as_deref(),
            _ => None,
        }
        .map(str::to_string);
        let state = self.instance(&line.instance, key);
        if key >= state.last {
            state.last = key;
            state.last_event = line.event.to_string();
        }
        if let Some(revision) = revision {
            if state.policy.as_ref().is_none_or(|(k, _)| key >= *k) {
                state.policy = Some((key, revision));
            }
        }
        self.events += 1;
        self.first_ms = Some(self.first_ms.map_or(ms, |f| f.min(ms)));
        self.last_ms = Some(self.last_ms.map_or(ms, |l| l.max(ms)));
        self.prune_call_times();
        true
    }

    fn instance(&mut self, name: &str, key: Key) -> &mut InstanceState {
        let state = self
            .instances
            .entry(name.to_string())
            .or_insert_with(|| InstanceState {
                first_ms: key.0,
                last: key,
                last_event: String::new(),
                calls: 0,
                denied: 0,
                policy: None,
            });
        state.first_ms = state.first_ms.min(key.0);
        state
    }

    fn add_call_time(&mut self, ms: u64) {
        let after_start = self
            .window_end()
            .is_none_or(|end| ms > end.saturating_sub(self.window_ms()));
        let before_now = self.options.now_ms.is_none_or(|now| ms <= now);
        if after_start && before_now {
            *self.call_times.entry(ms).or_default() += 1;
        }
    }

    /// Drops call times that can no longer be inside the window: its end only moves later.
    fn prune_call_times(&mut self) {
        let Some(end) = self.window_end() else { return };
        let start = end.saturating_sub(self.window_ms());
        while let Some(oldest) = self.call_times.first_entry() {
            if *oldest.key() > start {
                break;
            }
            oldest.remove();
        }
    }

    fn window_end(&self) -> Option<u64> {
        self.options.now_ms.or(self.last_ms)
    }

    fn window_minutes(&self) -> u32 {
        self.options.window_minutes.max(1)
    }

    fn window_ms(&self) -> u64 {
        u64::from(self.window_minutes()) * MINUTE_MS
    }

    pub fn finish(self) -> AuditSummary {
        let rate = self.window_end().map(|end| {
            let minutes = self.window_minutes();
            let start = end.saturating_sub(self.window_ms());
            let mut per_minute: HashMap<u64, u64> = HashMap::new();
            let mut calls = 0;
            // The window is (start, end]; a call after an injected "now" is not in it.
            for (&ms, &n) in self.call_times.range(start + 1..=end) {
                calls += n;
                *per_minute.entry((end - ms) / MINUTE_MS).or_default() += n;
            }
            CallRate {
                minutes,
                from: format_rfc3339_ms(start),
                to: format_rfc3339_ms(end),
                calls,
                per_minute: calls as f64 / f64::from(minutes),
                peak_per_minute: per_minute.values().copied().max().unwrap_or(0),
            }
        });

        let top_deny_rules = most_frequent(self.deny_rules, self.options.top_rules);
        let top_shadow_rules = most_frequent(self.shadow_rules, self.options.top_rules);

        let mut instances: Vec<(Key, InstanceSummary)> = self
            .instances
            .into_iter()
            .map(|(instance, s)| {
                let summary = InstanceSummary {
                    first_seen: format_rfc3339_ms(s.first_ms),
                    last_seen: format_rfc3339_ms(s.last.0),
                    running: s.last_event != "shutdown",
                    last_event: s.last_event,
                    calls: s.calls,
                    denied: s.denied,
                    policy: s.policy.map(|(_, p)| p),
                    instance,
                };
                (s.last, summary)
            })
            .collect();
        instances.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.instance.cmp(&y.instance)));

        let calls = self.decisions.allow
            + self.decisions.deny
            + self.decisions.hidden
            + self.decisions.approval_required
            + self.decisions.error
            + self.decisions.shadow()
            + self.decisions.duplicate
            + self.decisions.other;
        AuditSummary {
            files: self.files,
            lines: self.lines,
            skipped_lines: self.skipped,
            events: self.events,
            first_ts: self.first_ms.map(format_rfc3339_ms),
            last_ts: self.last_ms.map(format_rfc3339_ms),
            instances: instances.into_iter().map(|(_, s)| s).collect(),
            calls,
            deny_rate: if calls == 0 {
                0.0
            } else {
                self.decisions.deny as f64 / calls as f64
            },
            decisions: self.decisions,
            uncounted_calls: self.uncounted,
            rate,
            top_deny_rules,
            top_shadow_rules,
            recent_denials: self.recent_denials.newest_first(),
            failed_reloads: self.failed_reloads.newest_first(),
            failed_reloads_total: self.failed_reloads_total,
            tool_changes: self.tool_changes.newest_first(),
            tool_changes_total: self.tool_changes_total,
            poisoned_total: self.poisoned_total,
            servers: self
                .servers
                .into_iter()
                .map(|(name, s)| super::ServerSummary {
                    name,
                    calls: s.calls,
                    denied: s.denied,
                    up: s.health.as_ref().map(|(_, up, _)| *up),
                    since: s
                        .health
                        .as_ref()
                        .map(|((ms, _), _, _)| format_rfc3339_ms(*ms)),
                    reason: s.health.and_then(|(_, _, reason)| reason),
                })
                .collect(),
        }
    }
}

/// Rules by count, most frequent first (ties by name), at most `top`.
fn most_frequent(counts: HashMap<String, u64>, top: usize) -> Vec<RuleCount> {
    let mut rules: Vec<RuleCount> = counts
        .into_iter()
        .map(|(rule, count)| RuleCount { rule, count })
        .collect();
    rules.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
    rules.truncate(top);
    rules
}
