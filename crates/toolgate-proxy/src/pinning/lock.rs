//! Lock files: pins committed with the policy instead of trusted on first use.
//!
//! ```json
//! {
//!   "version": 1,
//!   "server": "files",
//!   "instructions": {"sha256": "…", "definition": {"instructions": "…"}},
//!   "tools": {
//!     "read_file": {"sha256": "…", "definition": {"name": "read_file", "description": "…"}}
//!   }
//! }
//! ```
//!
//! `toolgate scan --lock FILE` writes one; a policy's `pinning.lock` makes the gateway use it;
//! `toolgate pins check --lock FILE` fails CI on drift. Each definition is kept whole so a
//! review of the lock file's diff shows what changed, and each `sha256` is checked against
//! its definition when the file is read, so a hand edit that breaks one is an error rather
//! than a pin nobody can match.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use toolgate_policy::Policy;
use toolgate_state::PinEntry;

use super::definition::{instructions_entry, seen_tool, SeenTool};

const VERSION: u64 = 1;

/// A lock file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFile {
    /// The file it was read from (none for one made from a listing).
    pub source: Option<PathBuf>,
    pub server: String,
    /// `None` when the file does not pin the instructions.
    pub instructions: Option<PinEntry>,
    pub tools: BTreeMap<String, PinEntry>,
}

impl LockFile {
    /// The lock of a listing: every tool, and the instructions.
    pub fn of_listing(server: &str, tools: &[Value], instructions: Option<&str>) -> LockFile {
        LockFile {
            source: None,
            server: server.to_string(),
            instructions: Some(instructions_entry(instructions, 0)),
            tools: tools
                .iter()
                .filter_map(|t| seen_tool(t, 0))
                .map(|SeenTool { name, entry }| (name, entry))
                .collect(),
        }
    }

    /// The file's text: pretty JSON, tools in name order, ending in a newline.
    pub fn to_text(&self) -> String {
        let entry = |e: &PinEntry| {
            let definition: Value = serde_json::from_str(&e.definition).unwrap_or(Value::Null);
            json!({"sha256": e.digest, "definition": definition})
        };
        let tools: Map<String, Value> = self
            .tools
            .iter()
            .map(|(name, e)| (name.clone(), entry(e)))
            .collect();
        let mut root = Map::new();
        root.insert("version".into(), json!(VERSION));
        root.insert("server".into(), json!(self.server));
        if let Some(instructions) = &self.instructions {
            root.insert("instructions".into(), entry(instructions));
        }
        root.insert("tools".into(), Value::Object(tools));
        let mut text = serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads and checks the lock file at `path`. Errors name the file and the place.
    pub fn read(path: &Path) -> Result<LockFile, String> {
        let file = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{file}: cannot read the lock file: {e}"))?;
        let mut lock = LockFile::parse(&text).map_err(|e| format!("{file}: {e}"))?;
        lock.source = Some(path.to_path_buf());
        Ok(lock)
    }

    /// The lock file `policy` names (`pinning.lock`, relative to the policy file's
    /// directory), read and checked; `None` when it names none.
    pub fn of_policy(policy: &Policy, policy_path: &Path) -> Result<Option<LockFile>, String> {
        let Some(name) = &policy.pinning.lock else {
            return Ok(None);
        };
        let dir = policy_path.parent().unwrap_or(Path::new(""));
        LockFile::read(&dir.join(name)).map(Some)
    }

    /// Parses lock file text.
    pub fn parse(text: &str) -> Result<LockFile, String> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| format!("{}:{}: not JSON: {e}", e.line(), e.column()))?;
        let fix = "regenerate it with `toolgate scan --lock FILE -- SERVER`";
        let Some(root) = root.as_object() else {
            return Err(format!("a lock file is a JSON object; {fix}"));
        };
        if root.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(format!(
                "version: this toolgate reads lock files of version {VERSION}; {fix}"
            ));
        }
        let server = root
            .get("server")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("server: missing or not a string; {fix}"))?
            .to_string();
        let instructions = match root.get("instructions") {
            None | Some(Value::Null) => None,
            Some(entry) => {
                let definition = checked_definition("instructions", entry, fix)?;
                let text = definition.get("instructions").and_then(Value::as_str);
                let pin = instructions_entry(text, 0);
                check_digest("instructions", entry, &pin, fix)?;
                Some(pin)
            }
        };
        let Some(listed) = root.get("tools").and_then(Value::as_object) else {
            return Err(format!("tools: missing or not an object; {fix}"));
        };
        let mut tools = BTreeMap::new();
        for (name, entry) in listed {
            let at = format!("tools.{name}");
            let definition = checked_definition(&at, entry, fix)?;
            let seen = seen_tool(definition, 0)
                .filter(|seen| &seen.name == name)
                .ok_or_else(|| format!("{at}.definition.name: must be {name:?}; {fix}"))?;
            check_digest(&at, entry, &seen.entry, fix)?;
            tools.insert(seen.name, seen.entry);
        }
        Ok(LockFile {
            source: None,
            server,
            instructions,
            tools,
        })
    }
}

/// An entry's `definition`, which must be an object.
fn checked_definition<'v>(at: &str, entry: &'v Value, fix: &str) -> Result<&'v Value, String> {
    entry
        .get("definition")
        .filter(|d| d.is_object())
        .ok_or_else(|| format!("{at}.definition: missing or not an object; {fix}"))
}

fn check_digest(at: &str, entry: &Value, pin: &PinEntry, fix: &str) -> Result<(), String> {
    match entry.get("sha256").and_then(Value::as_str) {
        Some(digest) if digest == pin.digest => Ok(()),
        Some(_) => Err(format!(
            "{at}.sha256: does not match its definition (edited by hand?); {fix}"
        )),
        None => Err(format!("{at}.sha256: missing; {fix}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn listing() -> Vec<Value> {
        vec![
            json!({"name": "read_file", "description": "Reads a file", "inputSchema": {"type": "object"}, "_meta": {"ignored": true}}),
            json!({"name": "write_file", "description": "Writes a file"}),
        ]
    }

    #[test]
    fn round_trips_through_its_text() {
        let lock = LockFile::of_listing("files", &listing(), Some("Use read_file first."));
        let text = lock.to_text();
        assert!(text.ends_with("}\n") && !text.contains("_meta"), "{text}");
        assert_eq!(LockFile::parse(&text).unwrap(), lock);
    }

    #[test]
    fn refuses_hand_edits_with_the_place_and_the_fix() {
        let text = LockFile::of_listing("files", &listing(), None).to_text();
        let edited = text.replace("Writes a file", "Writes a file, and more");
        let error = LockFile::parse(&edited).unwrap_err();
        assert!(
            error.starts_with("tools.write_file.sha256: does not match"),
            "{error}"
        );
        assert!(error.contains("toolgate scan --lock"), "{error}");
        let renamed = text.replace("\"name\": \"read_file\"", "\"name\": \"other\"");
        assert!(LockFile::parse(&renamed)
            .unwrap_err()
            .starts_with("tools.read_file.definition.name"));
        assert!(LockFile::parse("{")
            .unwrap_err()
            .starts_with("1:1: not JSON"));
        assert!(LockFile::parse(r#"{"version": 2}"#)
            .unwrap_err()
            .starts_with("version:"));
    }
}
