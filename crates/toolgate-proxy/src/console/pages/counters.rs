//! Counters: every counter a call of this process reserved, read from its store now, against
//! its limit, with when its window resets.
//!
//! The store holds only counts, not which limits they belong to, so the page lists the
//! counters this gateway has reserved since it started (`feed.rs`); counters other
//! processes sharing the store moved show with their shared value once this one has
//! reserved them too.

use std::fmt::Write as _;

use toolgate_policy::window::WindowMode;

use super::rules::rules_for;
use crate::console::html::{clock_time, esc};
use crate::console::Console;

/// Rows the page shows, fullest first.
const SHOWN: usize = 500;
/// Counters read from their stores for one page: those that moved most recently (a store
/// read can be a round trip, and 10,000 of them would make a page take seconds).
const READ: usize = 1_000;

/// One counter, read now.
pub struct CounterRow {
    pub server: String,
    pub key: String,
    pub window: String,
    pub used: Option<toolgate_policy::Amount>,
    pub max: toolgate_policy::Amount,
    /// When a fixed window resets (ms since the epoch); none for a sliding one.
    pub resets_ms: Option<u64>,
}

impl CounterRow {
    fn ratio(&self) -> f64 {
        let max = self.max.to_micros();
        match self.used {
            Some(used) if max > 0 => used.to_micros() as f64 / max as f64,
            _ => 0.0,
        }
    }
}

/// Every server's counters, or only those limiting one tool of one server; fullest first.
pub async fn rows_for(
    console: &Console,
    tool: Option<(&str, &str)>,
    now_ms: u64,
) -> Vec<CounterRow> {
    let mut seen = console.data.feed.counters();
    if let Some((server, tool)) = tool {
        seen.retain(|c| c.server == server);
        let Some(gateway) = console.directory.gateway_of(server) else {
            return Vec::new();
        };
        let policy = gateway.policy();
        let category = console
            .data
            .catalogue
            .get(server, tool)
            .map(|e| e.classification.category.as_str());
        let prefixes: Vec<String> = rules_for(&policy, tool, category)
            .iter()
            .flat_map(|r| r.limits.iter())
            .map(|l| format!("{}.{}", l.namespace.as_deref().unwrap_or(tool), l.counter))
            .collect();
        seen.retain(|c| {
            prefixes.iter().any(|p| {
                c.key
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
            })
        });
    }
    seen.sort_by_key(|c| std::cmp::Reverse(c.last_ms));
    seen.truncate(READ);
    let gateways: std::collections::HashMap<String, _> = console
        .directory
        .gateways()
        .into_iter()
        .map(|served| (served.server, served.gateway))
        .collect();
    let mut rows = Vec::with_capacity(seen.len());
    for counter in seen {
        let used = match gateways.get(&counter.server) {
            Some(g) => g.store().current(&counter.key, counter.window).await.ok(),
            None => None,
        };
        let resets_ms = (counter.window.mode == WindowMode::Fixed)
            .then(|| counter.window.start_of(now_ms) + counter.window.length_ms);
        rows.push(CounterRow {
            server: counter.server,
            key: counter.key,
            window: counter.window.to_string(),
            used,
            max: counter.max,
            resets_ms,
        });
    }
    rows.sort_by(|a, b| {
        b.ratio()
            .total_cmp(&a.ratio())
            .then_with(|| a.key.cmp(&b.key))
    });
    rows.truncate(SHOWN);
    rows
}

pub async fn render(console: &Console, now_ms: u64) -> String {
    let rows = rows_for(console, None, now_ms).await;
    format!(
        "<p class=\"muted\">Counters this gateway has reserved since it started, read from the \
         store now (a value shared with other gateways is the shared one).</p>{}",
        table(&rows, console.directory.is_many())
    )
}

pub fn table(rows: &[CounterRow], show_server: bool) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">No counter has been reserved yet.</p>".into();
    }
    let mut body = String::new();
    for row in rows {
        let server = if show_server {
            format!("<td>{}</td>", esc(&row.server))
        } else {
            String::new()
        };
        let used = row
            .used
            .map_or("unavailable".to_string(), |u| u.to_string());
        let percent = (row.ratio() * 100.0).clamp(0.0, 100.0);
        let level = match percent {
            p if p >= 90.0 => "deny",
            p if p >= 70.0 => "approval_required",
            _ => "allow",
        };
        let resets = row.resets_ms.map_or("sliding".to_string(), |ms| {
            format!("{} UTC", clock_time(ms))
        });
        let _ = write!(
            body,
            "<tr>{server}<td><code>{}</code></td><td>{}</td><td>{used} / {}</td>\
             <td><meter class=\"{level}\" min=\"0\" max=\"100\" value=\"{percent:.0}\">{percent:.0}%</meter> {percent:.0}%</td>\
             <td>{resets}</td></tr>",
            esc(&row.key),
            esc(&row.window),
            row.max,
        );
    }
    let server = if show_server { "<th>Server</th>" } else { "" };
    format!(
        "<div class=\"scroll\"><table class=\"counters\"><thead><tr>{server}<th>Counter</th><th>Window</th>\
         <th>Used / limit</th><th>Usage</th><th>Resets</th></tr></thead><tbody>{body}</tbody></table></div>"
    )
}
