//! Rendering classifications for people (an aligned table) and programs
//! (JSON). Both take the tools and their results side by side, as produced
//! by [`classify_all`](crate::classify_all); extra items in the longer
//! slice are ignored.

use std::cmp::Reverse;
use std::fmt::Write as _;

use serde::Serialize;

use crate::category::{Category, Risk};
use crate::classify::Classification;
use crate::poisoning::{flagged, scan_tool, Finding};
use crate::tool::ToolDef;

/// Total width the table aims for, to fit a standard terminal.
const TABLE_WIDTH: usize = 100;
/// Tool names wider than this are cut to leave room for the reason.
const MAX_TOOL_COLUMN: usize = 36;
/// The reason column never shrinks below this.
const MIN_WHY_COLUMN: usize = 20;
const RISK_COLUMN: usize = 8;
const CATEGORY_COLUMN: usize = 11;
const CONF_COLUMN: usize = 4;
const GAP: &str = "  ";

#[derive(Serialize)]
struct JsonRow<'a> {
    name: &'a str,
    category: Category,
    risk: Risk,
    confidence: f32,
    evidence: &'a [String],
    /// Signs of a poisoned definition (`poisoning`): empty for a clean one.
    findings: Vec<Finding>,
}

/// Pretty JSON array of `{"name","category","risk","confidence","evidence"}`
/// in input order.
pub fn render_json(tools: &[ToolDef], results: &[Classification]) -> String {
    let rows: Vec<JsonRow<'_>> = tools
        .iter()
        .zip(results)
        .map(|(tool, result)| JsonRow {
            name: &tool.name,
            category: result.category,
            risk: result.risk,
            confidence: result.confidence,
            evidence: &result.evidence,
            findings: scan_tool(tool),
        })
        .collect();
    // Serialising plain strings, enums and finite floats cannot fail.
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_string())
}

/// An aligned table sorted by risk (Critical first) then tool name, with
/// columns RISK, CATEGORY, CONF, TOOL, WHY (the first evidence item, cut to
/// fit about 100 columns), followed by a count per category.
pub fn render_table(tools: &[ToolDef], results: &[Classification]) -> String {
    let mut rows: Vec<(&ToolDef, &Classification)> = tools.iter().zip(results).collect();
    rows.sort_by_key(|(tool, result)| (Reverse(result.risk), tool.name.as_str()));

    let tool_column = rows
        .iter()
        .map(|(tool, _)| tool.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("TOOL".len(), MAX_TOOL_COLUMN);
    let fixed = RISK_COLUMN + CATEGORY_COLUMN + CONF_COLUMN + tool_column + 4 * GAP.len();
    let why_column = TABLE_WIDTH.saturating_sub(fixed).max(MIN_WHY_COLUMN);

    let mut table = String::new();
    let mut push_row = |cells: [&str; 5]| {
        let widths = [
            RISK_COLUMN,
            CATEGORY_COLUMN,
            CONF_COLUMN,
            tool_column,
            why_column,
        ];
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| pad(&fit(cell, width), width))
            .collect();
        table.push_str(line.join(GAP).trim_end());
        table.push('\n');
    };
    push_row(["RISK", "CATEGORY", "CONF", "TOOL", "WHY"]);
    for (tool, result) in &rows {
        let confidence = format!("{:.2}", result.confidence);
        let why = result.evidence.first().map_or("", String::as_str);
        push_row([
            result.risk.as_str(),
            result.category.as_str(),
            &confidence,
            &tool.name,
            why,
        ]);
    }
    table.push_str(&summary_line(
        rows.iter().map(|(_, result)| result.category),
    ));
    table.push('\n');
    let flagged: Vec<(&ToolDef, Vec<Finding>)> = tools
        .iter()
        .map(|tool| (tool, flagged(tool)))
        .filter(|(_, findings)| !findings.is_empty())
        .collect();
    if !flagged.is_empty() {
        table.push_str("\nPossibly poisoned definitions (see docs/INTEGRITY.md):\n");
        for (tool, findings) in flagged {
            for f in &findings {
                let _ = writeln!(
                    table,
                    "  {}  {:?} ({:?}) in {}: {}",
                    crate::poisoning::visible(&tool.name),
                    f.kind,
                    f.severity,
                    f.place,
                    fit(&f.evidence, 80)
                );
            }
        }
    }
    table
}

/// "N tools: a Read, b Write, ..." in category order, zero counts included
/// so that lines from different servers line up.
fn summary_line(categories: impl Iterator<Item = Category>) -> String {
    let mut counts = [0usize; Category::ALL.len()];
    for category in categories {
        counts[category.index()] += 1;
    }
    let total: usize = counts.iter().sum();
    let parts: Vec<String> = Category::ALL
        .into_iter()
        .map(|category| format!("{} {category}", counts[category.index()]))
        .collect();
    let noun = if total == 1 { "tool" } else { "tools" };
    format!("{total} {noun}: {}", parts.join(", "))
}

/// Cuts `text` to at most `width` characters, marking the cut with "…".
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn pad(text: &str, width: usize) -> String {
    let padding = width.saturating_sub(text.chars().count());
    format!("{text}{}", " ".repeat(padding))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::classify_all;

    fn sample() -> (Vec<ToolDef>, Vec<Classification>) {
        let tools = vec![
            ToolDef::new("list_issues").with_description("List issues in a repository"),
            ToolDef::new("delete_repository").with_description("Delete a repository"),
            ToolDef::new("create_issue").with_description("Create a new issue"),
            ToolDef::new("a_tool_with_a_remarkably_long_name_that_will_not_fit_at_all"),
        ];
        let results = classify_all(&tools, Some("github"));
        (tools, results)
    }

    #[test]
    fn json_keeps_input_order_and_fields() {
        let (tools, results) = sample();
        let json: serde_json::Value = serde_json::from_str(&render_json(&tools, &results)).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["name"], "list_issues");
        assert_eq!(rows[1]["category"], "Destructive");
        assert_eq!(rows[1]["risk"], "Critical");
        assert!(rows[1]["confidence"].as_f64().unwrap() > 0.5);
        assert!(rows[1]["evidence"][0].as_str().unwrap().contains("delete"));
    }

    #[test]
    fn table_is_sorted_aligned_and_summarised() {
        let (tools, results) = sample();
        let table = render_table(&tools, &results);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("RISK      CATEGORY     CONF  TOOL"));
        assert!(lines[1].starts_with("Critical  Destructive"));
        assert!(lines[1].contains("delete_repository"));
        assert!(lines[2].starts_with("Medium    Write"));
        let tool_start = lines[0].find("TOOL").unwrap();
        let why_start = lines[0].find("WHY").unwrap();
        for line in &lines[1..lines.len() - 1] {
            assert!(line.chars().count() <= TABLE_WIDTH, "{line}");
            let tool_cell: String = line
                .chars()
                .skip(tool_start)
                .take(why_start - tool_start)
                .collect();
            assert!(tool_cell.ends_with("  "), "{line}");
        }
        assert!(table.contains('…'));
        assert_eq!(
            lines.last().unwrap(),
            &"4 tools: 1 Read, 1 Write, 0 Execute, 1 Destructive, 0 Financial, 1 Other"
        );
    }
}
