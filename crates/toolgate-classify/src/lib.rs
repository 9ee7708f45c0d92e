//! Classifies Model Context Protocol tools by what they do, so a gateway can
//! start from a sensible policy before anyone writes one by hand.
//!
//! Given a tool definition (name, title, description, `inputSchema`,
//! `annotations`) and optionally its server's name and sibling tools,
//! [`classify`] returns a [`Category`] (Read, Write, Execute, Destructive,
//! Financial, Other), the implied [`Risk`], a confidence and the evidence in
//! plain English. The classifier is a fixed set of word tables and weights:
//! deterministic, explainable, allocation-light, with no I/O, no network and
//! no model.
//!
//! ```
//! use toolgate_classify::{classify_all, parse_tools_document, render_table, Category};
//!
//! let tools = parse_tools_document(r#"{"tools": [
//!     {"name": "list_charges", "description": "List charges"},
//!     {"name": "create_refund", "description": "Refund a charge"}
//! ]}"#)?;
//! let results = classify_all(&tools, Some("payments"));
//! assert_eq!(results[0].category, Category::Read);
//! assert_eq!(results[1].category, Category::Financial);
//! println!("{}", render_table(&tools, &results));
//! # Ok::<(), toolgate_classify::ClassifyError>(())
//! ```
//!
//! MCP annotations are treated as untrusted hints: they shift scores and
//! are reported when they contradict the verdict, but never decide alone.

#![warn(missing_docs)]

mod category;
mod classify;
mod document;
mod error;
mod lexicon;
pub mod poisoning;
mod report;
mod rule;
mod scoreboard;
mod signals;
mod starter_policy;
mod tokens;
mod tool;

pub use category::{Category, Risk};
pub use classify::{classify, classify_all, Classification};
pub use document::parse_tools_document;
pub use error::ClassifyError;
pub use report::{render_json, render_table};
pub use rule::{recommended_rule, RecommendedRule, SpendCap, Window};
pub use starter_policy::{starter_policy_json, starter_policy_yaml};
pub use tool::{Context, ToolDef};
