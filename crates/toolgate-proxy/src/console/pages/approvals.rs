//! Approvals: the requests waiting for a person, with approve and deny (with a reason), and
//! the latest decided ones. The buttons post to the admin API's own routes
//! (`/v1/approvals/{id}/approve|deny`), so a decision here is the same transition as one
//! from `toolgate approvals` or a script.
//!
//! The page shows each call's arguments in their redacted form (keys, types, booleans, small
//! numbers): values are fetched from `/v1/approvals/{id}` only when someone asks to see
//! them, so they are never in the page's HTML.

use std::fmt::Write as _;

use toolgate_state::{ApprovalRecord, ListFilter};

use crate::approvals::{redact_arguments, Approvals};
use crate::audit::format_rfc3339_ms;
use crate::console::html::esc;

/// Decided requests the history shows.
const HISTORY: usize = 50;

pub async fn render(approvals: &Approvals) -> String {
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
        out.push_str(&pending_card(record));
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
        out.push_str(
            "<table><thead><tr><th>Request</th><th>Tool</th><th>Identity</th><th>State</th>\
             <th>By</th><th>Note or reason</th><th>Decided</th></tr></thead><tbody>",
        );
        for r in decided {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><span class=\"tag {}\">{}</span></td>\
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

fn pending_card(r: &ApprovalRecord) -> String {
    let arguments: serde_json::Value = serde_json::from_str(&r.arguments).unwrap_or_default();
    let redacted = serde_json::to_string_pretty(&redact_arguments(&arguments)).unwrap_or_default();
    let id = esc(&r.id);
    format!(
        "<article class=\"approval\" id=\"approval-{id}\" data-approval=\"{id}\">\
         <h3><code>{}</code> wants <strong>{}</strong></h3>\
         <dl><dt>Request</dt><dd><code>{id}</code></dd><dt>Identity</dt><dd>{}</dd>\
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
