//! What the console knows of the gateway's recent past, learnt from the audit sink's events
//! (the same events the log and the metrics see, so the three never disagree).
//!
//! Everything here is bounded, whatever clients do: the latest [`RECENT`] decisions, one
//! slot per minute for the last hour (each slot's maps bounded too), the counters seen
//! ([`MAX_COUNTERS`]), and one health and one reload entry per server. Observing an event
//! costs the calling thread one short lock and a few small copies; with nobody on the Live
//! page, nothing is sent anywhere.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;
use toolgate_policy::{Amount, Window};

use crate::audit::{AuditDecision, AuditEvent, DecisionRecord};
use crate::metrics::decision_label;

/// Decisions kept for the Live page and tool pages.
pub const RECENT: usize = 500;
/// Minutes of history the overview's chart and the hourly figures cover.
pub const MINUTES: usize = 60;
/// Counters remembered for the Counters page.
pub const MAX_COUNTERS: usize = 10_000;
/// (server, tool) pairs and deny rules one minute's slot counts; past this, a minute's
/// flood of made-up names is counted in the totals only.
const MAX_KEYS_PER_MINUTE: usize = 2_000;
/// Live subscribers that fall this far behind miss decisions (and are told so).
const LIVE_BACKLOG: usize = 256;

/// One decision as the console shows it: never the arguments.
#[derive(Debug, Clone, Serialize)]
pub struct LiveDecision {
    pub at_ms: u64,
    /// The server behind a gateway config; empty for a gateway of one server.
    pub server: String,
    pub tool: String,
    pub decision: &'static str,
    pub rule: Option<String>,
    pub message: Option<String>,
    pub identity: Option<String>,
    pub session: String,
    pub outcome: &'static str,
    pub latency_us: u64,
    pub gateway_us: u64,
    pub approval: Option<String>,
}

impl LiveDecision {
    fn of(record: &DecisionRecord, server: &str, at_ms: u64) -> LiveDecision {
        LiveDecision {
            at_ms,
            server: server.to_string(),
            tool: record.tool.clone(),
            decision: decision_label(record.decision),
            rule: record.rule.clone(),
            message: record.message.clone(),
            identity: record.identity.clone(),
            session: record.session.clone(),
            outcome: record.outcome.as_str(),
            latency_us: record.latency_us,
            gateway_us: record.gateway_us,
            approval: record.approval.clone(),
        }
    }

    /// Whether the decision refused the call (or would have, in shadow mode).
    pub fn refused(&self) -> bool {
        matches!(self.decision, "deny" | "hidden" | "ambiguous" | "error")
    }
}

/// The decision kinds the overview charts, in its legend's order.
pub const CHARTED: [&str; 4] = ["allow", "deny", "hidden", "approval_required"];

/// One minute of decisions.
#[derive(Default, Clone)]
struct Minute {
    /// Minutes since the Unix epoch; slots of other minutes are stale.
    minute: u64,
    /// By [`CHARTED`] kind; everything else in `other`.
    charted: [u64; 4],
    other: u64,
    refused: u64,
    deny_rules: HashMap<String, u64>,
    /// Calls and refusals by (server, tool).
    tools: HashMap<(String, String), (u64, u64)>,
    gateway_us: LatencyBuckets,
}

/// A log-scale histogram of microseconds: bucket `i` holds values below `2^(i/2)`-ish
/// bounds (see [`bucket_of`]); enough for p50/p99 to within ~41%.
#[derive(Debug, Clone)]
pub struct LatencyBuckets {
    counts: [u64; BUCKETS],
}

impl Default for LatencyBuckets {
    fn default() -> LatencyBuckets {
        LatencyBuckets {
            counts: [0; BUCKETS],
        }
    }
}

const BUCKETS: usize = 64;

fn bucket_bound(i: usize) -> u64 {
    // Bounds √2 apart: 1, 1.4, 2, 2.8, 4, … µs.
    let base = 1u64 << (i / 2);
    if i.is_multiple_of(2) {
        base
    } else {
        base + base * 41 / 100
    }
}

fn bucket_of(us: u64) -> usize {
    (0..BUCKETS)
        .find(|&i| us <= bucket_bound(i))
        .unwrap_or(BUCKETS - 1)
}

impl LatencyBuckets {
    fn add(&mut self, us: u64) {
        self.counts[bucket_of(us)] += 1;
    }

    fn merge(&mut self, other: &LatencyBuckets) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding the `q`-quantile, in µs.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_bound(i));
            }
        }
        None
    }
}

/// A server's health as last reported.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub up: bool,
    pub reason: Option<String>,
    pub since_ms: u64,
}

/// The last reload of a policy (or of the gateway config).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub at_ms: u64,
    pub ok: bool,
    pub policy: Option<String>,
    pub errors: Vec<String>,
}

/// A counter some call of this process reserved.
#[derive(Debug, Clone)]
pub struct SeenCounter {
    pub server: String,
    pub key: String,
    pub window: Window,
    pub max: Amount,
    pub last_ms: u64,
}

/// The last hour, summed.
#[derive(Debug, Clone, Default)]
pub struct HourSummary {
    /// Per minute, oldest first: `(minute, counts by CHARTED kind)`.
    pub minutes: Vec<(u64, [u64; 4])>,
    pub calls: u64,
    pub refused: u64,
    pub deny_rules: Vec<(String, u64)>,
    pub gateway_us: LatencyBuckets,
}

#[derive(Default)]
struct State {
    recent: VecDeque<Arc<LiveDecision>>,
    minutes: Vec<Minute>,
    health: BTreeMap<String, Health>,
    reloads: BTreeMap<String, ReloadStatus>,
    counters: HashMap<(String, String), SeenCounter>,
    /// When full counters were last swept for passed windows: at most once a second, so
    /// calls naming ever new counters cannot make every call scan them all.
    counters_swept_ms: u64,
}

pub struct Feed {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<LiveDecision>>,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

impl Feed {
    pub fn new() -> Feed {
        Feed {
            state: Mutex::new(State {
                minutes: vec![Minute::default(); MINUTES],
                ..State::default()
            }),
            live: broadcast::channel(LIVE_BACKLOG).0,
        }
    }

    /// Learns what an audit event says happened, at `now_ms` (`server`: the server the
    /// event's gateway serves behind a gateway config).
    pub fn observe(&self, event: &AuditEvent, server: Option<&str>, now_ms: u64) {
        let server = server.unwrap_or_default();
        match event {
            AuditEvent::Decision(record) => self.decided(record, server, now_ms),
            AuditEvent::ServerHealth { up, reason } => {
                let health = Health {
                    up: *up,
                    reason: reason.clone(),
                    since_ms: now_ms,
                };
                self.state.lock().health.insert(server.to_string(), health);
            }
            AuditEvent::Reload { ok, policy, errors } => {
                let status = ReloadStatus {
                    at_ms: now_ms,
                    ok: *ok,
                    policy: policy.clone(),
                    errors: errors.clone(),
                };
                self.state.lock().reloads.insert(server.to_string(), status);
            }
            _ => {}
        }
    }

    fn decided(&self, record: &DecisionRecord, server: &str, now_ms: u64) {
        let decision = Arc::new(LiveDecision::of(record, server, now_ms));
        {
            let mut state = self.state.lock();
            let minute = minute_slot(&mut state.minutes, now_ms);
            match CHARTED.iter().position(|kind| *kind == decision.decision) {
                Some(i) => minute.charted[i] += 1,
                None => minute.other += 1,
            }
            let refused = decision.refused();
            minute.refused += u64::from(refused);
            if refused {
                if let Some(rule) = &record.rule {
                    bump(&mut minute.deny_rules, rule.clone(), |n| *n += 1);
                }
            }
            let tool_key = (server.to_string(), record.tool.clone());
            bump(&mut minute.tools, tool_key, |(calls, refusals)| {
                *calls += 1;
                *refusals += u64::from(refused);
            });
            // A wait for a person is not latency the gateway adds.
            if record.approval.is_none() && record.decision != AuditDecision::ApprovalRequired {
                minute.gateway_us.add(record.gateway_us);
            }
            Feed::counters_reserved(&mut state, server, record, now_ms);
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back(Arc::clone(&decision));
        }
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(decision);
        }
    }

    /// Remembers the counters a call reserved, for the Counters page.
    fn counters_reserved(state: &mut State, server: &str, record: &DecisionRecord, now_ms: u64) {
        for counter in &record.counters {
            let id = (server.to_string(), counter.key.clone());
            if let Some(seen) = state.counters.get_mut(&id) {
                seen.last_ms = now_ms;
                seen.max = counter.max;
                seen.window = counter.window;
                continue;
            }
            if state.counters.len() >= MAX_COUNTERS {
                if now_ms < state.counters_swept_ms + 1_000 {
                    continue;
                }
                // Forget counters whose window has passed since they last moved.
                state.counters_swept_ms = now_ms;
                state
                    .counters
                    .retain(|_, c| c.last_ms + c.window.length_ms * 2 > now_ms);
                if state.counters.len() >= MAX_COUNTERS {
                    continue;
                }
            }
            let seen = SeenCounter {
                server: server.to_string(),
                key: counter.key.clone(),
                window: counter.window,
                max: counter.max,
                last_ms: now_ms,
            };
            state.counters.insert(id, seen);
        }
    }

    /// Follows decisions as they are made.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveDecision>> {
        self.live.subscribe()
    }

    /// The latest decisions, newest first, that `keep` keeps (at most `limit`).
    pub fn recent(
        &self,
        limit: usize,
        keep: impl Fn(&LiveDecision) -> bool,
    ) -> Vec<Arc<LiveDecision>> {
        let state = self.state.lock();
        state
            .recent
            .iter()
            .rev()
            .filter(|d| keep(d))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The last hour at `now_ms`.
    pub fn hour(&self, now_ms: u64) -> HourSummary {
        let now_minute = now_ms / 60_000;
        let state = self.state.lock();
        let mut summary = HourSummary::default();
        let mut rules: HashMap<&str, u64> = HashMap::new();
        for back in (0..MINUTES as u64).rev() {
            let Some(minute) = now_minute.checked_sub(back) else {
                continue;
            };
            let slot = &state.minutes[(minute % MINUTES as u64) as usize];
            let counts = if slot.minute == minute {
                summary.calls += slot.charted.iter().sum::<u64>() + slot.other;
                summary.refused += slot.refused;
                for (rule, n) in &slot.deny_rules {
                    *rules.entry(rule).or_default() += n;
                }
                summary.gateway_us.merge(&slot.gateway_us);
                slot.charted
            } else {
                [0; 4]
            };
            summary.minutes.push((minute, counts));
        }
        let mut rules: Vec<(String, u64)> =
            rules.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
        rules.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rules.truncate(10);
        summary.deny_rules = rules;
        summary
    }

    /// Calls and refusals of each (server, tool) in the last hour.
    pub fn tool_hour(&self, now_ms: u64) -> HashMap<(String, String), (u64, u64)> {
        let now_minute = now_ms / 60_000;
        let state = self.state.lock();
        let mut out: HashMap<(String, String), (u64, u64)> = HashMap::new();
        for slot in &state.minutes {
            if slot.minute + (MINUTES as u64) <= now_minute || slot.minute > now_minute {
                continue;
            }
            for (key, (calls, refused)) in &slot.tools {
                let entry = out.entry(key.clone()).or_default();
                entry.0 += calls;
                entry.1 += refused;
            }
        }
        out
    }

    pub fn health(&self) -> BTreeMap<String, Health> {
        self.state.lock().health.clone()
    }

    pub fn reloads(&self) -> BTreeMap<String, ReloadStatus> {
        self.state.lock().reloads.clone()
    }

    pub fn counters(&self) -> Vec<SeenCounter> {
        self.state.lock().counters.values().cloned().collect()
    }
}

/// The slot of `now_ms`'s minute, emptied if it last held an older minute.
fn minute_slot(minutes: &mut [Minute], now_ms: u64) -> &mut Minute {
    let minute = now_ms / 60_000;
    let slot = &mut minutes[(minute % MINUTES as u64) as usize];
    if slot.minute != minute {
        *slot = Minute {
            minute,
            ..Minute::default()
        };
    }
    slot
}

/// Adds to `map[key]`, unless the map is full and has no such key.
fn bump<K: std::hash::Hash + Eq, V: Default>(
    map: &mut HashMap<K, V>,
    key: K,
    add: impl FnOnce(&mut V),
) {
    if map.len() >= MAX_KEYS_PER_MINUTE && !map.contains_key(&key) {
        return;
    }
    add(map.entry(key).or_default());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audit::Outcome;

    fn decision(tool: &str, decision: AuditDecision, rule: Option<&str>, us: u64) -> AuditEvent {
        AuditEvent::Decision(DecisionRecord {
            session: "s".into(),
            identity: Some("alice".into()),
            tool: tool.into(),
            decision,
            rule: rule.map(str::to_string),
            message: None,
            policy: "p".into(),
            counters: Vec::new(),
            outcome: Outcome::Result,
            not_counted: false,
            latency_us: us * 10,
            gateway_us: us,
            args_hash: None,
            approval: None,
            redactions: None,
            withheld_by: None,
            arguments: None,
        })
    }

    #[test]
    fn the_hour_counts_every_decision_once_and_forgets_older_minutes() {
        let feed = Feed::new();
        let t0 = 1_700_000_000_000;
        feed.observe(
            &decision("read", AuditDecision::Allow, None, 20),
            Some("files"),
            t0,
        );
        feed.observe(
            &decision("write", AuditDecision::Deny, Some("ro"), 10),
            Some("files"),
            t0,
        );
        feed.observe(
            &decision("write", AuditDecision::Deny, Some("ro"), 10),
            None,
            t0 + 60_000,
        );
        let hour = feed.hour(t0 + 60_000);
        assert_eq!(hour.calls, 3);
        assert_eq!(hour.refused, 2);
        assert_eq!(hour.deny_rules, vec![("ro".to_string(), 2)]);
        assert_eq!(hour.minutes.len(), MINUTES);
        assert_eq!(hour.minutes[MINUTES - 2].1, [1, 1, 0, 0]);
        assert_eq!(hour.minutes[MINUTES - 1].1, [0, 1, 0, 0]);
        assert_eq!(hour.gateway_us.count(), 3);
        let tools = feed.tool_hour(t0 + 60_000);
        assert_eq!(tools[&("files".into(), "write".into())], (1, 1));
        // An hour later, the first minute is gone.
        let later = feed.hour(t0 + 60 * 60_000);
        assert_eq!(later.calls, 1);
        // Its slot is reused for a new minute, not added to.
        feed.observe(
            &decision("read", AuditDecision::Allow, None, 5),
            None,
            t0 + 60 * 60_000,
        );
        assert_eq!(feed.hour(t0 + 60 * 60_000).calls, 2);
    }

    #[test]
    fn quantiles_are_bucket_bounds_within_a_factor_of_root_two() {
        let mut buckets = LatencyBuckets::default();
        for us in 1..=1000 {
            buckets.add(us);
        }
        let p50 = buckets.quantile(0.5).unwrap();
        let p99 = buckets.quantile(0.99).unwrap();
        assert!((500..=710).contains(&p50), "{p50}");
        assert!((990..=1_420).contains(&p99), "{p99}");
        assert_eq!(LatencyBuckets::default().quantile(0.5), None);
    }

    #[test]
    fn counters_are_bounded_and_old_ones_make_room_at_most_once_a_second() {
        let feed = Feed::new();
        let with_counters = |keys: std::ops::Range<usize>| {
            let AuditEvent::Decision(mut record) = decision("t", AuditDecision::Allow, None, 1)
            else {
                unreachable!()
            };
            record.counters = keys
                .map(|i| crate::audit::CounterRecord {
                    key: format!("t.c@args.x={i}"),
                    amount: toolgate_policy::Amount::from_units(1).unwrap(),
                    max: toolgate_policy::Amount::from_units(5).unwrap(),
                    window: Window::fixed(60_000),
                })
                .collect();
            AuditEvent::Decision(record)
        };
        let t0 = 10_000_000;
        feed.observe(&with_counters(0..MAX_COUNTERS), None, t0);
        // Full, and nothing has passed: a new counter is left out.
        feed.observe(&with_counters(MAX_COUNTERS..MAX_COUNTERS + 1), None, t0 + 1);
        assert_eq!(feed.counters().len(), MAX_COUNTERS);
        // Two windows later the old ones are swept, and the new one is kept.
        let later = t0 + 120_001;
        feed.observe(&with_counters(MAX_COUNTERS..MAX_COUNTERS + 1), None, later);
        assert_eq!(feed.counters().len(), 1);
    }

    #[test]
    fn recent_decisions_are_bounded_and_newest_first() {
        let feed = Feed::new();
        for i in 0..(RECENT + 10) {
            let tool = format!("t{i}");
            feed.observe(&decision(&tool, AuditDecision::Allow, None, 1), None, 1_000);
        }
        let recent = feed.recent(usize::MAX, |_| true);
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].tool, format!("t{}", RECENT + 9));
        let only = feed.recent(5, |d| d.tool.ends_with('7'));
        assert_eq!(only.len(), 5);
        assert!(only.iter().all(|d| d.tool.ends_with('7')));
    }

    #[test]
    fn a_flood_of_made_up_tool_names_is_bounded_per_minute() {
        let feed = Feed::new();
        for i in 0..(MAX_KEYS_PER_MINUTE + 500) {
            let tool = format!("made_up_{i}");
            feed.observe(
                &decision(&tool, AuditDecision::Hidden, None, 1),
                None,
                5_000,
            );
        }
        assert_eq!(feed.tool_hour(5_000).len(), MAX_KEYS_PER_MINUTE);
        assert_eq!(feed.hour(5_000).calls, (MAX_KEYS_PER_MINUTE + 500) as u64);
    }

    #[tokio::test]
    async fn live_subscribers_see_decisions_without_arguments() {
        let feed = Feed::new();
        let mut live = feed.subscribe();
        feed.observe(
            &decision("read", AuditDecision::Allow, None, 1),
            Some("files"),
            9,
        );
        let seen = live.recv().await.unwrap();
        assert_eq!(
            (seen.server.as_str(), seen.tool.as_str()),
            ("files", "read")
        );
        let json = serde_json::to_string(&*seen).unwrap();
        assert!(!json.contains("arguments"), "{json}");
    }

    proptest::proptest! {
        /// Whatever decisions arrive when, the hour's figures are those of the decisions
        /// made in the last sixty minutes, counted once.
        #[test]
        fn the_hour_counts_exactly_the_decisions_of_the_last_sixty_minutes(
            events in proptest::collection::vec((0u64..180, 0usize..4, proptest::bool::ANY), 0..200),
            now_minute in 0u64..240,
        ) {
            let feed = Feed::new();
            let base = 1_700_000_000_000u64 / 60_000 * 60_000;
            let kinds = [
                AuditDecision::Allow,
                AuditDecision::Deny,
                AuditDecision::Hidden,
                AuditDecision::ApprovalRequired,
            ];
            let mut sorted = events.clone();
            sorted.sort_by_key(|e| e.0);
            for (minute, kind, ruled) in &sorted {
                let rule = ruled.then_some("r");
                let at = base + minute * 60_000 + 123;
                feed.observe(&decision("t", kinds[*kind], rule, 5), None, at);
            }
            let now = base + now_minute * 60_000 + 59_000;
            let last = *sorted.last().map(|(m, _, _)| m).unwrap_or(&0);
            // The feed is told of decisions as they happen: "now" is never before the last.
            proptest::prop_assume!(now_minute >= last);
            let hour = feed.hour(now);
            let window = |m: u64| m + (MINUTES as u64) > now_minute && m <= now_minute;
            let kept: Vec<_> = sorted.iter().filter(|(m, _, _)| window(*m)).collect();
            proptest::prop_assert_eq!(hour.calls, kept.len() as u64);
            let refused = kept.iter().filter(|(_, k, _)| matches!(k, 1 | 2)).count() as u64;
            proptest::prop_assert_eq!(hour.refused, refused);
            let charted: u64 = hour.minutes.iter().map(|(_, c)| c.iter().sum::<u64>()).sum();
            proptest::prop_assert_eq!(charted, kept.len() as u64);
            let ruled = kept.iter().filter(|(_, k, r)| *r && matches!(k, 1 | 2)).count() as u64;
            let rules: u64 = hour.deny_rules.iter().map(|(_, n)| n).sum();
            proptest::prop_assert_eq!(rules, ruled);
        }
    }
}
