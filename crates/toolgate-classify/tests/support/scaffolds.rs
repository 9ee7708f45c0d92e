//! Loads the shared Intercept scaffold corpus (one MCP tool per line, with
//! Intercept's category label) for the agreement test and the benchmark.
//! The corpus lives outside the repository, so every caller must cope with
//! it being absent.

use std::path::PathBuf;

use toolgate_classify::{Category, ToolDef};

/// One labelled tool from the corpus.
pub struct Scaffold {
    /// The Intercept policy file the tool came from; one per server.
    pub policy_file: String,
    pub tool: ToolDef,
    /// Intercept's label: a reference point, not ground truth.
    pub label: Category,
}

/// Where the corpus is expected, relative to this crate.
pub fn corpus_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/classify/intercept-scaffolds.tsv"
    ))
}

/// Reads the corpus; `Ok(None)` when the file does not exist.
pub fn load() -> Result<Option<Vec<Scaffold>>, String> {
    let path = corpus_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.split('\t').collect::<Vec<_>>()
        != ["policy_file", "server", "tool", "category", "description"]
    {
        return Err(format!("unexpected header {header:?}"));
    }
    lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|problem| format!("line {}: {problem}", index + 2))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_line(line: &str) -> Result<Scaffold, String> {
    let fields: Vec<&str> = line.splitn(5, '\t').collect();
    let [policy_file, _server, name, category, description] = fields[..] else {
        return Err(format!(
            "expected 5 tab-separated fields, found {}",
            fields.len()
        ));
    };
    let label = category
        .parse::<Category>()
        .map_err(|error| error.to_string())?;
    let mut tool = ToolDef::new(name);
    if !description.trim().is_empty() {
        tool = tool.with_description(description);
    }
    Ok(Scaffold {
        policy_file: policy_file.to_string(),
        tool,
        label,
    })
}

/// Groups scaffolds by policy file (server), in order of first appearance.
pub fn by_server(scaffolds: &[Scaffold]) -> Vec<(&str, Vec<&Scaffold>)> {
    let mut groups: Vec<(&str, Vec<&Scaffold>)> = Vec::new();
    for scaffold in scaffolds {
        match groups
            .iter_mut()
            .find(|(server, _)| *server == scaffold.policy_file)
        {
            Some((_, members)) => members.push(scaffold),
            None => groups.push((&scaffold.policy_file, vec![scaffold])),
        }
    }
    groups
}
