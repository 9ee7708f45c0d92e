//! The located document tree every policy form is read from.
//!
//! Policy files are YAML or JSON (JSON is read by the same YAML 1.2 parser). Rather than
//! deserializing straight into typed structs, which stops at the first error, the file is
//! first turned into a small tree of [`Node`]s that remember their line and column. The
//! compilers walk that tree and report *every* problem they find, each with its location.
//!
//! This module also enforces the limits that keep a hostile file from exhausting memory:
//! input size, nesting depth, node count (which bounds alias expansion, the "billion laughs"
//! attack), and duplicate keys, which are always an error: a policy whose meaning depends on
//! which of two keys "wins" is a policy nobody reviewed.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostics::{Diagnostic, Location};

/// Largest policy file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, aliases included.
pub const MAX_NODES: usize = 500_000;

/// One value of the document with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub location: Location,
    pub kind: NodeKind,
}

/// What a node holds. Scalars keep their text and whether they were quoted, so that
/// `version: 1` and `version: "1"` can both be read as the string "1" while `max: "10"`
/// can still be reported as a string where a number belongs.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    /// A plain number, kept as its source text so that decimals are never rounded.
    Number(String),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<(Key, Node)>),
}

/// A mapping key: always a string in policy files.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub location: Location,
    pub name: String,
}

impl Node {
    /// A short noun for the node's type, used in "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Number(_) => "a number",
            NodeKind::String(_) => "a string",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Mapping(entries) => {
                entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Converts the node into plain JSON, for operator values (`value: [..]`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Number(text) => json_number(text)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(text.clone())),
            NodeKind::String(s) => Value::String(s.clone()),
            NodeKind::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Reads a plain YAML number. YAML writes some numbers JSON does not (`01`, `1.`), and they
/// must still compare as the numbers they are, not as strings. `None` for a number JSON
/// cannot hold (`1e400`).
pub fn json_number(text: &str) -> Option<serde_json::Number> {
    if let Ok(n) = serde_json::from_str::<serde_json::Number>(text) {
        // Kept exactly as written, but a number no double can hold (`1e400`) is refused.
        return crate::number::as_double(&n).is_finite().then_some(n);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(u.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeKind::Null => f.write_str("null"),
            NodeKind::Bool(b) => write!(f, "{b}"),
            NodeKind::Number(n) => f.write_str(n),
            NodeKind::String(s) => write!(f, "{s:?}"),
            NodeKind::Sequence(_) => f.write_str("[…]"),
            NodeKind::Mapping(_) => f.write_str("{…}"),
        }
    }
}

/// Parses YAML or JSON text into a located tree. On failure the diagnostics say where.
pub fn parse_document(text: &str) -> Result<Node, Vec<Diagnostic>> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(vec![Diagnostic::new(
            Location::start(),
            "",
            format!(
                "policy file is {} bytes, more than the {} byte limit",
                text.len(),
                MAX_SOURCE_BYTES
            ),
        )
        .with_hint(
            "split the policy or remove generated bulk; policies are meant to be read by people",
        )]);
    }
    let mut builder = TreeBuilder {
        parser: Parser::new_from_str(text),
        anchors: Vec::new(),
        nodes: 0,
        duplicates: Vec::new(),
    };
    let root = builder.document().map_err(|mut d| {
        // The parser places errors at the end of input one line past a file that does not
        // end with a newline; point at the last character instead.
        d.location = d.location.min(end_of(text));
        vec![d]
    })?;
    if !builder.duplicates.is_empty() {
        return Err(builder.duplicates);
    }
    Ok(root)
}

/// The position just after the last character of `text`.
fn end_of(text: &str) -> Location {
    let last_line = text.rsplit('\n').next().unwrap_or_default();
    Location {
        line: 1 + text.matches('\n').count(),
        column: 1 + last_line.chars().count(),
    }
}

struct TreeBuilder<'input> {
    parser: Parser<'input, saphyr_parser::StrInput<'input>>,
    /// Anchored nodes by anchor id, for alias expansion.
    anchors: Vec<(usize, Node)>,
    nodes: usize,
    /// Duplicate keys are collected, not fatal, so that all of them are reported at once.
    duplicates: Vec<Diagnostic>,
}

fn location_of(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

impl<'input> TreeBuilder<'input> {
    fn next(&mut self) -> Result<(Event<'input>, Span), Diagnostic> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(Diagnostic::new(
                Location {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                "",
                format!("not valid YAML or JSON: {}", e.info()),
            )
            .with_hint("check the indentation and quoting around this position")),
            None => Err(Diagnostic::new(
                Location::start(),
                "",
                "unexpected end of the policy file",
            )),
        }
    }

    /// Reads the stream: exactly one document holding a mapping.
    fn document(&mut self) -> Result<Node, Diagnostic> {
        let mut root: Option<Node> = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(Diagnostic::new(
                            location_of(&span),
                            "",
                            "the file holds more than one YAML document",
                        )
                        .with_hint("keep one policy per file; remove the extra `---` section"));
                    }
                    let (event, span) = self.next()?;
                    root = Some(self.node(event, span, 0)?);
                }
                Event::StreamEnd => break,
                _ => {
                    return Err(Diagnostic::new(
                        location_of(&span),
                        "",
                        "unexpected content",
                    ));
                }
            }
        }
        root.ok_or_else(|| {
            Diagnostic::new(Location::start(), "", "the policy file is empty")
                .with_hint("start with `version: \"1\"` and a `tools:` mapping")
        })
    }

    fn count_node(&mut self, location: Location) -> Result<(), Diagnostic> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::new(
                location,
                "",
                format!("the document expands to more than {MAX_NODES} values"),
            )
            .with_hint("aliases that refer to aliases multiply quickly; write the values out"));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'input>, span: Span, depth: usize) -> Result<Node, Diagnostic> {
        let location = location_of(&span);
        if depth > MAX_DEPTH {
            return Err(Diagnostic::new(
                location,
                "",
                format!("values are nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.count_node(location)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                reject_tag(tag.as_deref(), location)?;
                (
                    Node {
                        location,
                        kind: scalar_kind(text, style),
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag.as_deref(), location)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        location,
                        kind: NodeKind::Sequence(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag.as_deref(), location)?;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key_node = self.node(event, span, depth + 1)?;
                    let key = match key_node.kind {
                        NodeKind::String(name) | NodeKind::Number(name) => Key {
                            location: key_node.location,
                            name,
                        },
                        NodeKind::Bool(b) => Key {
                            location: key_node.location,
                            name: b.to_string(),
                        },
                        _ => {
                            return Err(Diagnostic::new(
                                key_node.location,
                                "",
                                format!(
                                    "a mapping key must be a string, found {}",
                                    key_node.type_name()
                                ),
                            ))
                        }
                    };
                    let (event, span) = self.next()?;
                    let value = self.node(event, span, depth + 1)?;
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        self.duplicates.push(
                            Diagnostic::new(
                                key.location,
                                "",
                                format!(
                                    "duplicate key {:?} (first written at line {}, column {})",
                                    key.name, first.location.line, first.location.column
                                ),
                            )
                            .with_hint(
                                "remove one of the two; toolgate never guesses which one you meant",
                            ),
                        );
                        continue;
                    }
                    entries.push((key, value));
                }
                (
                    Node {
                        location,
                        kind: NodeKind::Mapping(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some((_, target)) = self.anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(Diagnostic::new(
                        location,
                        "",
                        "alias refers to an unknown anchor",
                    ));
                };
                // An alias copies its target here, so the copy must fit both limits where
                // it lands; otherwise chains of anchors could nest without bound.
                let target = target.clone();
                let (size, height) = measure(&target);
                if depth + height > MAX_DEPTH + 1 {
                    return Err(Diagnostic::new(
                        location,
                        "",
                        format!("values are nested more than {MAX_DEPTH} levels deep"),
                    )
                    .with_hint("this alias copies a deeply nested value; write the value out"));
                }
                self.nodes += size;
                self.count_node(location)?;
                return Ok(target);
            }
            _ => return Err(Diagnostic::new(location, "", "unexpected content")),
        };
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        Ok(node)
    }
}

fn reject_tag(tag: Option<&saphyr_parser::Tag>, location: Location) -> Result<(), Diagnostic> {
    let Some(tag) = tag else {
        return Ok(());
    };
    // The parser resolves `!!` to the standard prefix; show the tag as the user wrote it.
    let handle = match tag.handle.as_str() {
        "tag:yaml.org,2002:" => "!!",
        other => other,
    };
    Err(Diagnostic::new(
        location,
        "",
        format!(
            "YAML tags are not supported (found `{handle}{}`)",
            tag.suffix
        ),
    )
    .with_hint("remove the tag; write the value plainly"))
}

/// How many nodes a value holds (keys included) and how many levels it spans (1 for a scalar).
fn measure(node: &Node) -> (usize, usize) {
    let children: Box<dyn Iterator<Item = (usize, &Node)>> = match &node.kind {
        NodeKind::Sequence(items) => Box::new(items.iter().map(|n| (0, n))),
        NodeKind::Mapping(entries) => Box::new(entries.iter().map(|(_, n)| (1, n))),
        _ => Box::new(std::iter::empty()),
    };
    children.fold((1, 1), |(size, height), (keys, child)| {
        let (child_size, child_height) = measure(child);
        (size + keys + child_size, height.max(child_height + 1))
    })
}

/// Resolves a scalar with the YAML 1.2 core schema: only plain scalars can be
/// null, booleans or numbers; anything quoted is a string.
fn scalar_kind(text: Cow<'_, str>, style: ScalarStyle) -> NodeKind {
    if style != ScalarStyle::Plain {
        return NodeKind::String(text.into_owned());
    }
    match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
        "true" | "True" | "TRUE" => NodeKind::Bool(true),
        "false" | "False" | "FALSE" => NodeKind::Bool(false),
        t if looks_numeric(t) => NodeKind::Number(t.trim_start_matches('+').to_string()),
        _ => NodeKind::String(text.into_owned()),
    }
}

/// True for decimal integers and floats as JSON writes them (with an optional `+`).
fn looks_numeric(text: &str) -> bool {
    let t = text.strip_prefix(['+', '-']).unwrap_or(text);
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let mut seen_dot = false;
    let mut seen_exp = false;
    let mut prev = ' ';
    for c in t.chars() {
        match c {
            '0'..='9' => {}
            '.' if !seen_dot && !seen_exp => seen_dot = true,
            'e' | 'E' if !seen_exp => seen_exp = true,
            '+' | '-' if prev == 'e' || prev == 'E' => {}
            _ => return false,
        }
        prev = c;
    }
    prev.is_ascii_digit() || (prev == '.' && !seen_exp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scalars_follow_the_core_schema() {
        let doc =
            parse_document("a: 1\nb: \"1\"\nc: true\nd: ~\ne: 1.50\nf: 1e3\ng: 0x1F\n").unwrap();
        assert_eq!(doc.get("a").unwrap().kind, NodeKind::Number("1".into()));
        assert_eq!(doc.get("b").unwrap().kind, NodeKind::String("1".into()));
        assert_eq!(doc.get("c").unwrap().kind, NodeKind::Bool(true));
        assert_eq!(doc.get("d").unwrap().kind, NodeKind::Null);
        assert_eq!(doc.get("e").unwrap().kind, NodeKind::Number("1.50".into()));
        assert_eq!(doc.get("f").unwrap().kind, NodeKind::Number("1e3".into()));
        assert_eq!(doc.get("g").unwrap().kind, NodeKind::String("0x1F".into()));
    }

    #[test]
    fn yaml_only_number_spellings_are_numbers() {
        let doc = parse_document("a: 01\nb: 1.\nc: -007.50\n").unwrap();
        assert_eq!(doc.get("a").unwrap().to_json(), serde_json::json!(1));
        assert_eq!(doc.get("b").unwrap().to_json(), serde_json::json!(1.0));
        assert_eq!(doc.get("c").unwrap().to_json(), serde_json::json!(-7.5));
    }

    #[test]
    fn locations_are_one_based() {
        let doc = parse_document("version: \"1\"\ntools:\n  x:\n    rules: []\n").unwrap();
        let tools = doc.get("tools").unwrap();
        assert_eq!(tools.location, Location { line: 3, column: 3 });
    }

    #[test]
    fn every_duplicate_key_is_reported() {
        let errors = parse_document("a: 1\na: 2\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].location, Location { line: 2, column: 1 });
        assert!(errors[0].message.contains("duplicate key \"a\""));
        assert_eq!(errors[1].location, Location { line: 5, column: 3 });
    }

    #[test]
    fn json_reads_with_duplicates_rejected() {
        let doc = parse_document("{\"version\": \"1\", \"tools\": {}}").unwrap();
        assert_eq!(
            doc.get("version").unwrap().kind,
            NodeKind::String("1".into())
        );
        assert!(parse_document("{\"a\": 1, \"a\": 1}").is_err());
    }

    #[test]
    fn json_with_tab_indentation_reads() {
        let doc = parse_document("{\n\t\"version\": \"1\",\n\t\"tools\": {}\n}\n").unwrap();
        assert!(doc.get("tools").is_some());
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let errors = parse_document(&text).unwrap_err();
        assert!(errors[0].message.contains("expands to more than"));
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        let mut text = String::from("a0: &a0 [x]\n");
        for i in 1..80 {
            text.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
        }
        let errors = parse_document(&text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("nested more than 64 levels"));
        // The first alias whose copy would land 65 levels down.
        assert_eq!(
            errors[0].location,
            Location {
                line: 64,
                column: 12
            }
        );
    }

    #[test]
    fn deep_nesting_is_stopped() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let errors = parse_document(&text).unwrap_err();
        assert!(errors[0].message.contains("nested more than"));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let errors = parse_document("tools:\n  a: [1, 2\n").unwrap_err();
        assert!(errors[0].message.starts_with("not valid YAML or JSON"));
        assert!(errors[0].location.line >= 2);
    }
}
