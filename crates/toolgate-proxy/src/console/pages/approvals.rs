//! Approvals: the requests waiting for a person, with approve and deny (with a reason), and
//! the latest decided ones. The buttons post to the admin API's own routes
//! (`/v1/approvals/{id}/approve|deny`), so a decision here is the same transition as one
//! from `toolgate approvals` or a script.
//!
//! The page shows each call's arguments in their redacted form (keys, types, booleans, small
//! numbers): values are fetched from `/v1/approvals/{id}` only when someone asks to see
//! them, so they are never in the page's HTML.
//!
//! Behind a gateway config a request is shown with its server. The approval store does not
//! keep one, so it is found by the request's policy revision: the server whose policy in
//! force has it (every server whose does, when several servers share one policy file; none
//! once that policy has been reloaded).

use std::collections::HashMap;
use std::fmt::Write as _;

use toolgate_state::{ApprovalRecord, ListFilter};

use crate::approvals::{redact_arguments, Approvals};
use crate::audit::format_rfc3339_ms;
use crate::console::html::esc;
use crate::console::Directory;

/// Decided requests the history shows.
const HISTORY: usize = 50;

/// The servers whose policy in force has each revision (empty for a gateway of one server).
fn servers_by_revision(directory: &Directory) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    if directory.is_many() {
        for served in directory.gateways() {
            let revision = served.gateway.policy().revision.clone();
            map.entry(revision)
                .or_default()
                .push(served.label().to_string());
        }
    }
    map
}

pub async fn render(approvals: &Approvals, directory: &Directory) -> String {
    let servers = servers_by_revision(directory);
    let server_of = |r: &ApprovalRecord| -> Option<String> {
        directory.is_many().then(|| {
            servers
                .get(&r.policy)
                .map_or("(policy since reloaded)".to_string(), |s| s.join(" or "))
        })
    };
    let store = approvals.store();
    let pending = store.list(ListFilter::default()).await;
    let all = store
        .list(ListFilter {
            all: true,
            limit: HISTORY * 2,
        })
        .await;
    let (pending, all) = match (pending, all) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "console: cannot list approvals");
            return "<p class=\"error\">The approval store cannot be read now.</p>".into();
        }
    };
    let mut out = String::from("<section data-approvals-live><h2>Waiting</h2>");
    if pending.is_empty() {
        out.push_str("<p class=\"muted\" id=\"no-pending\">Nothing is waiting for a decision.</p>");
    }
    for record in &pending {
        out.push_str(&pending_card(record, server_of(record).as_deref()));
    }
    out.push_str("</section><section><h2>History</h2>");
    let decided: Vec<&ApprovalRecord> = all
        .iter()
        .filter(|r| r.state.as_str() != "pending")
        .take(HISTORY)
        .collect();
    if decided.is_empty() {
        out.push_str("<p class=\"muted\">No request has been decided yet.</p>");
    } else {
        let server_head = if directory.is_many() {
            "<th>Server</th>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<table><thead><tr><th>Request</th>{server_head}<th>Tool</th><th>Identity</th><th>State</th>\
             <th>By</th><th>Note or reason</th><th>Decided</th></tr></thead><tbody>",
        );
        for r in decided {
            let server = server_of(r).map_or(String::new(), |s| format!("<td>{}</td>", esc(&s)));
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td>{server}<td>{}</td><td>{}</td><td><span class=\"tag {}\">{}</span></td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.id),
                esc(&r.tool),
                esc(r.identity.as_deref().unwrap_or("")),
                state_class(r.state.as_str()),
                esc(r.state.as_str()),
                esc(r.decided_by.as_deref().unwrap_or("")),
                esc(r.reason.as_deref().or(r.note.as_deref()).unwrap_or("")),
                r.decided_ms.map(format_rfc3339_ms).unwrap_or_default(),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

fn state_class(state: &str) -> &'static str {
    match state {
        "approved" | "consumed" => "allow",
        "denied" | "expired" | "withdrawn" => "deny",
        _ => "approval_required",
    }
}

fn pending_card(r: &ApprovalRecord, server: Option<&str>) -> String {
    let arguments: serde_json::Value = serde_json::from_str(&r.arguments).unwrap_or_default();
    let redacted = serde_json::to_string_pretty(&redact_arguments(&arguments)).unwrap_or_default();
    let id = esc(&r.id);
    let server = server.map_or(String::new(), |s| {
        format!("<dt>Server</dt><dd>{}</dd>", esc(s))
    });
    format!(
        "<article class=\"approval\" id=\"approval-{id}\" data-approval=\"{id}\">\
         <h3><code>{}</code> wants <strong>{}</strong></h3>\
         <dl><dt>Request</dt><dd><code>{id}</code></dd>{server}<dt>Identity</dt><dd>{}</dd>\
         <dt>Rule</dt><dd>{}</dd><dt>Why</dt><dd>{}</dd>\
         <dt>Asked</dt><dd>{}</dd><dt>Expires</dt><dd>{}</dd></dl>\
         <details open><summary>Arguments (redacted)</summary><pre class=\"arguments\">{}</pre>\
         <button type=\"button\" data-reveal=\"{id}\">Show the values</button></details>\
         <div class=\"actions\"><button type=\"button\" class=\"approve\" data-approve=\"{id}\">Approve</button>\
         <input type=\"text\" placeholder=\"Reason (required to deny)\" aria-label=\"Reason\" data-reason-for=\"{id}\">\
         <button type=\"button\" class=\"deny\" data-deny=\"{id}\">Deny</button>\
         <span class=\"result\" data-result-for=\"{id}\"></span></div></article>",
        esc(r.identity.as_deref().unwrap_or("an anonymous client")),
        esc(&r.tool),
        esc(r.identity.as_deref().unwrap_or("(none)")),
        esc(&r.rule),
        esc(r.message.as_deref().unwrap_or("(no message)")),
        format_rfc3339_ms(r.created_ms),
        format_rfc3339_ms(r.expires_ms),
        esc(&redacted),
    )
}
