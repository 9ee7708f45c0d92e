//! The console's pages, one file each; every one returns the HTML of its `<main>`.

pub mod approvals;
pub mod counters;
pub mod live;
pub mod overview;
pub mod policy;
mod rules;
pub mod tools;

use std::fmt::Write as _;

use super::feed::LiveDecision;
use super::html::{clock_time, esc, micros, url_part};

/// The tool page's path (`-` stands for the server of a gateway of one server).
pub fn tool_href(server: &str, tool: &str) -> String {
    let server = if server.is_empty() { "-" } else { server };
    format!("/tools/{}/{}", url_part(server), url_part(tool))
}

/// Rows of decisions, newest first (the Live page adds to them as they come).
pub fn decision_rows(decisions: &[std::sync::Arc<LiveDecision>], show_server: bool) -> String {
    let mut rows = String::new();
    for d in decisions {
        let server = if show_server {
            format!("<td>{}</td>", esc(&d.server))
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td>{server}<td><a href=\"{}\">{}</a></td>\
             <td><span class=\"tag {}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock_time(d.at_ms),
            esc(&tool_href(&d.server, &d.tool)),
            esc(&d.tool),
            d.decision,
            d.decision,
            esc(d.rule.as_deref().unwrap_or("")),
            esc(d.identity.as_deref().unwrap_or("")),
            d.outcome,
            micros(d.latency_us),
        );
    }
    rows
}

/// The header of a table of [`decision_rows`].
pub fn decision_head(show_server: bool) -> String {
    let server = if show_server { "<th>Server</th>" } else { "" };
    format!(
        "<thead><tr><th>Time (UTC)</th>{server}<th>Tool</th><th>Decision</th><th>Rule</th>\
         <th>Identity</th><th>Outcome</th><th>Took</th></tr></thead>"
    )
}
