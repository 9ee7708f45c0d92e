//! The poisoning scanner against a corpus: malicious definitions written in the styles seen in
//! the wild (`tests/poisoning/malicious.jsonl`: tool poisoning, shadowing, rug-pull payloads,
//! concealment, invisible Unicode, terminal escapes, look-alike names, exfiltration), and
//! benign ones from real servers (the installed reference servers' tool lists, and the
//! scaffold corpus of published servers beside the repository). A definition is *flagged* when
//! a finding is medium or high; the goal is 90% recall at 2% false positives, and every miss
//! and false positive is printed (docs/INTEGRITY.md lists them).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::{json, Value};
use toolgate_classify::parse_tools_document;
use toolgate_classify::poisoning::{scan_tool, Severity};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/poisoning")
}

fn flagged(tool: &Value) -> Option<String> {
    let tools = parse_tools_document(&json!({"tools": [tool]}).to_string()).unwrap();
    scan_tool(&tools[0])
        .into_iter()
        .find(|f| f.severity >= Severity::Medium)
        .map(|f| format!("{:?} in {}: {}", f.kind, f.place, f.evidence))
}

fn malicious() -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(corpus_dir().join("malicious.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            let mut properties = serde_json::Map::new();
            if let Some(params) = e.get("parameters").and_then(Value::as_object) {
                for (name, description) in params {
                    properties.insert(
                        name.clone(),
                        json!({"type": "string", "description": description}),
                    );
                }
            }
            let label = format!(
                "#{} {} ({})",
                e["id"],
                e["name"],
                e["technique"].as_str().unwrap()
            );
            let tool = json!({
                "name": e["name"],
                "description": e["description"],
                "inputSchema": {"type": "object", "properties": properties},
            });
            (label, tool)
        })
        .collect()
}

fn benign() -> Vec<(String, Value)> {
    let servers: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(corpus_dir().join("benign-servers.json")).unwrap(),
    )
    .unwrap();
    let mut out: Vec<(String, Value)> = servers
        .into_iter()
        .map(|t| {
            let label = format!(
                "{}/{}",
                t["server"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            );
            let mut tool = json!({"name": t["name"], "description": t["description"]});
            if let Some(schema) = t.get("inputSchema") {
                tool["inputSchema"] = schema.clone();
            }
            (label, tool)
        })
        .collect();
    // The scaffold corpus: tools of published servers, one per line (server, tool, description).
    let scaffolds = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/classify/intercept-scaffolds.tsv");
    if let Ok(text) = std::fs::read_to_string(scaffolds) {
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split('\t').collect();
            if let [_, server, tool, _, description] = fields.as_slice() {
                out.push((
                    format!("{server}/{tool}"),
                    json!({"name": tool, "description": description}),
                ));
            }
        }
    }
    out
}

#[test]
fn recall_and_false_positives_meet_the_goal() {
    let malicious = malicious();
    let benign = benign();
    assert!(
        malicious.len() >= 60,
        "{} malicious definitions",
        malicious.len()
    );
    assert!(benign.len() >= 200, "{} benign definitions", benign.len());

    let misses: Vec<&String> = malicious
        .iter()
        .filter(|(_, t)| flagged(t).is_none())
        .map(|(l, _)| l)
        .collect();
    let false_positives: Vec<(String, String)> = benign
        .iter()
        .filter_map(|(l, t)| flagged(t).map(|why| (l.clone(), why)))
        .collect();
    let recall = 1.0 - misses.len() as f64 / malicious.len() as f64;
    let fp_rate = false_positives.len() as f64 / benign.len() as f64;
    println!(
        "recall {:.1}% ({} of {}), false positives {:.2}% ({} of {})",
        recall * 100.0,
        malicious.len() - misses.len(),
        malicious.len(),
        fp_rate * 100.0,
        false_positives.len(),
        benign.len()
    );
    for miss in &misses {
        println!("missed: {miss}");
    }
    for (label, why) in &false_positives {
        println!("false positive: {label}: {why}");
    }
    assert!(recall >= 0.90, "recall {recall:.3}");
    assert!(fp_rate <= 0.02, "false positive rate {fp_rate:.4}");
}
