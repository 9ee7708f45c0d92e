//! Live: decisions as they are made, filtered by server, tool, decision and identity. The
//! page shows the latest ones it was rendered with; `console.js` adds each new one it
//! receives from `/console/events` (with the same filter) at the top.

use std::fmt::Write as _;

use super::{decision_head, decision_rows};
use crate::console::feed::LiveDecision;
use crate::console::html::esc;
use crate::console::Console;

/// Rows the page starts with.
const SHOWN: usize = 100;

/// Every decision name, for the filter's choices.
const DECISIONS: [&str; 10] = [
    "allow",
    "deny",
    "hidden",
    "approval_required",
    "ambiguous",
    "error",
    "would_deny",
    "would_hide",
    "would_require_approval",
    "duplicate",
];

/// The filter, from the query string (empty fields match everything).
#[derive(Debug, Default, Clone)]
pub struct LiveFilter {
    pub server: String,
    pub tool: String,
    pub decision: String,
    pub identity: String,
}

impl LiveFilter {
    pub fn from_query(query: &std::collections::HashMap<String, String>) -> LiveFilter {
        let field = |name: &str| query.get(name).cloned().unwrap_or_default();
        LiveFilter {
            server: field("server"),
            tool: field("tool"),
            decision: field("decision"),
            identity: field("identity"),
        }
    }

    pub fn keeps(&self, d: &LiveDecision) -> bool {
        let matches = |want: &str, have: &str| want.is_empty() || want == have;
        matches(&self.server, &d.server)
            && matches(&self.tool, &d.tool)
            && matches(&self.decision, d.decision)
            && matches(&self.identity, d.identity.as_deref().unwrap_or(""))
    }

    /// The filter as a query string.
    pub fn query(&self) -> String {
        use crate::console::html::url_part;
        let fields = [
            ("server", &self.server),
            ("tool", &self.tool),
            ("decision", &self.decision),
            ("identity", &self.identity),
        ];
        let parts: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", url_part(v)))
            .collect();
        parts.join("&")
    }
}

pub fn render(console: &Console, filter: &LiveFilter) -> String {
    let many = console.directory.is_many();
    let recent = console.data.feed.recent(SHOWN, |d| filter.keeps(d));
    let mut form = String::from("<form method=\"get\" action=\"/live\" class=\"filters\">");
    if many {
        let mut options = String::from("<option value=\"\">every server</option>");
        for served in console.directory.gateways() {
            let selected = if served.server == filter.server {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                options,
                "<option value=\"{}\"{selected}>{}</option>",
                esc(&served.server),
                esc(served.label())
            );
        }
        let _ = write!(
            form,
            "<label>Server <select name=\"server\">{options}</select></label>"
        );
    }
    let mut decisions = String::from("<option value=\"\">every decision</option>");
    for d in DECISIONS {
        let selected = if d == filter.decision {
            " selected"
        } else {
            ""
        };
        let _ = write!(decisions, "<option{selected}>{d}</option>");
    }
    let _ = write!(
        form,
        "<label>Tool <input name=\"tool\" value=\"{}\"></label>\
         <label>Decision <select name=\"decision\">{decisions}</select></label>\
         <label>Identity <input name=\"identity\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button></form>",
        esc(&filter.tool),
        esc(&filter.identity),
    );
    format!(
        "{form}<p class=\"muted\" id=\"live-status\">Connecting…</p>\
         <table class=\"live\" data-live=\"/console/events?{query}\" data-show-server=\"{many}\">\
         {head}<tbody id=\"live-rows\">{rows}</tbody></table>",
        query = esc(&filter.query()),
        head = decision_head(many),
        rows = decision_rows(&recent, many),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_empty_field_matches_everything_and_a_set_one_exactly() {
        let d = LiveDecision {
            at_ms: 0,
            server: "files".into(),
            tool: "write".into(),
            decision: "deny",
            rule: None,
            message: None,
            identity: None,
            session: "s".into(),
            outcome: "not_forwarded",
            latency_us: 1,
            gateway_us: 1,
            approval: None,
        };
        assert!(LiveFilter::default().keeps(&d));
        let deny = LiveFilter {
            decision: "deny".into(),
            ..LiveFilter::default()
        };
        assert!(deny.keeps(&d));
        let other = LiveFilter {
            tool: "writ".into(),
            ..LiveFilter::default()
        };
        assert!(!other.keeps(&d));
        let filter = LiveFilter {
            server: "a b".into(),
            identity: "x&y".into(),
            ..LiveFilter::default()
        };
        assert_eq!(filter.query(), "server=a%20b&identity=x%26y");
    }
}
