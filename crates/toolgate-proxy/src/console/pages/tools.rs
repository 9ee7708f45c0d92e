//! Tools: every tool of every server with what the classifier made of it and the rules in
//! force; and a page per tool with its definition, the recommended policy, the rules that
//! apply now, its recent decisions and its counters against their limits.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use toolgate_policy::Policy;

use toolgate_classify::{starter_policy_json, starter_policy_yaml, ToolDef};

use super::rules::{rules_for, rules_table, standing};
use super::{decision_head, decision_rows, tool_href};
use crate::console::catalogue::CatalogueEntry;
use crate::console::html::esc;
use crate::console::Console;

/// Decisions a tool page shows.
const RECENT_ON_PAGE: usize = 25;

pub fn render_list(console: &Console, now_ms: u64) -> String {
    let many = console.directory.is_many();
    let mut tools = console.data.catalogue.all();
    // Behind a gateway config, a gateway-wide policy sees every server's tools again under
    // their aggregated names: each is listed once, under its server.
    if many {
        tools.retain(|t| !t.server.is_empty());
    }
    if tools.is_empty() {
        return "<p class=\"muted\">No server has listed its tools yet. Tools appear here once a \
                client (or the gateway, for a `categories` rule) lists them.</p>"
            .into();
    }
    let hour = console.data.feed.tool_hour(now_ms);
    let policies: HashMap<String, Arc<Policy>> = console
        .directory
        .gateways()
        .into_iter()
        .map(|served| (served.server, served.gateway.policy()))
        .collect();
    let mut rows = String::new();
    for entry in &tools {
        let policy = policies.get(&entry.server);
        let category = entry.classification.category.as_str();
        let (rule_names, standing) = match &policy {
            Some(p) => {
                let names: Vec<&str> = rules_for(p, &entry.definition.name, Some(category))
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                (names.join(", "), standing(p, &entry.definition.name))
            }
            None => (String::new(), "server removed"),
        };
        let (calls, refused) = hour
            .get(&(entry.server.clone(), entry.definition.name.clone()))
            .copied()
            .unwrap_or_default();
        let server = if many {
            format!("<td>{}</td>", esc(&entry.server))
        } else {
            String::new()
        };
        let c = &entry.classification;
        let _ = write!(
            rows,
            "<tr>{server}<td><a href=\"{}\">{}</a></td><td><span class=\"tag {cat}\">{cat}</span></td>\
             <td><span class=\"tag risk-{risk}\">{risk}</span></td><td>{:.0}%</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{calls}</td><td>{refused}</td></tr>",
            esc(&tool_href(&entry.server, &entry.definition.name)),
            esc(&entry.definition.name),
            c.confidence * 100.0,
            esc(c.evidence.first().map(String::as_str).unwrap_or("")),
            esc(&rule_names),
            standing,
            cat = category,
            risk = c.risk.as_str(),
        );
    }
    let server = if many { "<th>Server</th>" } else { "" };
    format!(
        "<p class=\"muted\">{} tools. Category and risk are the classifier's reading of each \
         definition; the recommended policy is on each tool's page.</p>\
         <div class=\"scroll\"><table class=\"tools\"><thead><tr>{server}<th>Tool</th><th>Category</th>\
         <th>Risk</th><th>Confidence</th><th>Evidence</th><th>Rules in force</th><th>Standing</th>\
         <th>Calls (1 h)</th><th>Refused (1 h)</th></tr></thead><tbody>{rows}</tbody></table></div>",
        tools.len()
    )
}

/// A tool's page; `None` when no server listed such a tool.
pub async fn render_tool(
    console: &Console,
    server: &str,
    tool: &str,
    now_ms: u64,
) -> Option<String> {
    let entry = console.data.catalogue.get(server, tool)?;
    let def = &entry.definition;
    let c = &entry.classification;
    let mut out = String::new();
    if console.directory.is_many() {
        let _ = write!(out, "<p>Server <strong>{}</strong></p>", esc(server));
    }
    out.push_str(&describe(def));
    let _ = write!(
        out,
        "<section><h2>Category and risk</h2><p><span class=\"tag {cat}\">{cat}</span> \
         <span class=\"tag risk-{risk}\">{risk} risk</span> confidence {:.0}%</p><ul class=\"evidence\">",
        c.confidence * 100.0,
        cat = c.category.as_str(),
        risk = c.risk.as_str(),
    );
    for reason in &c.evidence {
        let _ = write!(out, "<li>{}</li>", esc(reason));
    }
    out.push_str("</ul></section>");
    out.push_str(&recommended(&entry, server));
    let gateway = console.directory.gateway_of(server);
    if let Some(gateway) = &gateway {
        let policy = gateway.policy();
        let rules = rules_for(&policy, tool, Some(c.category.as_str()));
        let _ = write!(
            out,
            "<section><h2>Rules that apply now</h2><p>{} · policy <code>{}</code></p>{}</section>",
            standing(&policy, tool),
            esc(&policy.revision),
            rules_table(&rules),
        );
    }
    let recent = console
        .data
        .feed
        .recent(RECENT_ON_PAGE, |d| d.server == server && d.tool == tool);
    let _ = write!(
        out,
        "<section><h2>Recent decisions</h2><table>{}<tbody>{}</tbody></table></section>",
        decision_head(false),
        decision_rows(&recent, false),
    );
    let counters = super::counters::rows_for(console, Some((server, tool)), now_ms).await;
    let _ = write!(
        out,
        "<section><h2>Counters</h2>{}</section>",
        super::counters::table(&counters, false)
    );
    Some(out)
}

/// What the tool says it does: title, description, input schema, annotations.
fn describe(def: &ToolDef) -> String {
    let mut out = String::from("<section><h2>What it does</h2>");
    if let Some(title) = &def.title {
        let _ = write!(out, "<p><strong>{}</strong></p>", esc(title));
    }
    match &def.description {
        Some(d) => {
            let _ = write!(out, "<p class=\"description\">{}</p>", esc(d));
        }
        None => out.push_str("<p class=\"muted\">The server gives no description.</p>"),
    }
    for (heading, value) in [
        ("Input schema", &def.input_schema),
        (
            "Annotations (hints from the server, not trusted)",
            &def.annotations,
        ),
    ] {
        if let Some(value) = value {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
            let _ = write!(
                out,
                "<details open><summary>{heading}</summary><pre>{}</pre></details>",
                esc(&pretty)
            );
        }
    }
    out.push_str("</section>");
    out
}

/// The recommended policy for this tool alone, as a whole file in both forms.
fn recommended(entry: &CatalogueEntry, server: &str) -> String {
    let defs = [(*entry.definition).clone()];
    let results = [(*entry.classification).clone()];
    let server = (!server.is_empty()).then_some(server);
    let yaml = starter_policy_yaml(server, &defs, &results);
    let json = starter_policy_json(&defs, &results);
    format!(
        "<section><h2>Recommended policy</h2><p class=\"muted\">A whole policy file for this tool, \
         from its category; check edits with <code>toolgate validate -c FILE</code>.</p>\
         <div class=\"snippet\"><div class=\"snippet-head\">Intercept YAML \
         <button type=\"button\" data-copy=\"policy-yaml\">Copy YAML</button></div>\
         <pre id=\"policy-yaml\">{}</pre></div>\
         <div class=\"snippet\"><div class=\"snippet-head\">PolicyLayer JSON \
         <button type=\"button\" data-copy=\"policy-json\">Copy JSON</button></div>\
         <pre id=\"policy-json\">{}</pre></div></section>",
        esc(&yaml),
        esc(&json),
    )
}
