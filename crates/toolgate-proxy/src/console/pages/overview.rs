//! Overview: the last hour's decisions as a chart, the deny rate, the rules that refused most,
//! the latency the gateway added, and the servers.

use std::fmt::Write as _;

use crate::console::feed::{HourSummary, CHARTED};
use crate::console::html::{esc, micros};
use crate::console::Console;

const CHART_WIDTH: u64 = 600;
const CHART_HEIGHT: u64 = 160;
/// The bar colours of [`CHARTED`], as SVG attributes (no inline CSS under the CSP).
const COLOURS: [&str; 4] = ["#2f9e44", "#e03131", "#868e96", "#f08c00"];

pub async fn render(console: &Console, now_ms: u64, pending_approvals: Option<usize>) -> String {
    let hour = console.data.feed.hour(now_ms);
    let mut out = String::new();
    out.push_str(&stats(&hour, pending_approvals));
    out.push_str("<section><h2>Decisions, last hour</h2>");
    out.push_str(&chart(&hour));
    out.push_str("</section>");
    out.push_str(&top_rules(&hour));
    out.push_str(&servers(console));
    out
}

fn stats(hour: &HourSummary, pending: Option<usize>) -> String {
    let rate = if hour.calls == 0 {
        "–".to_string()
    } else {
        format!("{:.1}%", hour.refused as f64 * 100.0 / hour.calls as f64)
    };
    let quantile = |q| {
        hour.gateway_us
            .quantile(q)
            .map(micros)
            .unwrap_or_else(|| "–".into())
    };
    let pending = pending.map_or("–".into(), |n| n.to_string());
    format!(
        "<section class=\"stats\">\
         <div class=\"stat\"><span class=\"value\" id=\"stat-calls\">{}</span><span>calls, last hour</span></div>\
         <div class=\"stat\"><span class=\"value\" id=\"stat-deny-rate\">{rate}</span><span>refused</span></div>\
         <div class=\"stat\"><span class=\"value\">{}</span><span>p50 added by the gateway</span></div>\
         <div class=\"stat\"><span class=\"value\">{}</span><span>p99 added by the gateway</span></div>\
         <div class=\"stat\"><span class=\"value\"><a href=\"/approvals\">{pending}</a></span><span>approvals waiting</span></div>\
         </section>",
        hour.calls,
        quantile(0.5),
        quantile(0.99),
    )
}

/// Stacked bars, one per minute, oldest on the left.
fn chart(hour: &HourSummary) -> String {
    let most = hour
        .minutes
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = CHART_WIDTH / hour.minutes.len().max(1) as u64;
    let mut bars = String::new();
    for (i, (_, counts)) in hour.minutes.iter().enumerate() {
        let mut top = CHART_HEIGHT;
        for (kind, count) in counts.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let height = (count * CHART_HEIGHT).div_ceil(most);
            top = top.saturating_sub(height);
            let _ = write!(
                bars,
                "<rect x=\"{}\" y=\"{top}\" width=\"{}\" height=\"{height}\" fill=\"{}\">\
                 <title>{count} {}</title></rect>",
                i as u64 * bar,
                bar.saturating_sub(1).max(1),
                COLOURS[kind],
                CHARTED[kind],
            );
        }
    }
    let mut legend = String::new();
    for (kind, colour) in CHARTED.iter().zip(COLOURS) {
        let _ = write!(
            legend,
            "<span><svg width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"{colour}\"/></svg> {kind}</span>"
        );
    }
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\" \
         aria-label=\"Decisions per minute over the last hour; the tallest minute had {most}\" \
         preserveAspectRatio=\"none\">{bars}</svg>\
         <div class=\"legend\">{legend}<span class=\"muted\">tallest minute: {most}</span></div>"
    )
}

fn top_rules(hour: &HourSummary) -> String {
    let mut out = String::from("<section><h2>Rules that refused most, last hour</h2>");
    if hour.deny_rules.is_empty() {
        out.push_str("<p class=\"muted\">No call was refused by a rule.</p>");
    } else {
        out.push_str("<table><thead><tr><th>Rule</th><th>Refusals</th></tr></thead><tbody>");
        for (rule, count) in &hour.deny_rules {
            let _ = write!(out, "<tr><td>{}</td><td>{count}</td></tr>", esc(rule));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

fn servers(console: &Console) -> String {
    let health = console.data.feed.health();
    let tools = console.data.catalogue.all();
    let mut rows = String::new();
    for served in console.directory.gateways() {
        let policy = served.gateway.policy();
        let listed = tools.iter().filter(|t| t.server == served.server).count();
        let state = match (served.server.is_empty(), health.get(&served.server)) {
            (_, Some(h)) if h.up => "<span class=\"tag allow\">up</span>".to_string(),
            (_, Some(h)) => format!(
                "<span class=\"tag deny\">down</span> {}",
                esc(h.reason.as_deref().unwrap_or(""))
            ),
            (true, None) => "<span class=\"muted\">–</span>".into(),
            (false, None) => "<span class=\"muted\">not started yet</span>".into(),
        };
        let name = if served.server.is_empty() && !console.directory.is_many() {
            served.gateway.server_name().to_string()
        } else {
            served.label().to_string()
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{state}</td><td>{listed}</td><td><code>{}</code></td></tr>",
            esc(&name),
            esc(&policy.revision),
        );
    }
    format!(
        "<section><h2>Servers</h2><table><thead><tr><th>Server</th><th>Health</th>\
         <th>Tools listed</th><th>Policy revision</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
}
