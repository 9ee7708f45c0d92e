//! Signals from MCP tool annotations (`readOnlyHint`, `destructiveHint`,
//! `idempotentHint`, `openWorldHint`).
//!
//! The MCP specification calls these hints and says clients must not trust
//! them from untrusted servers. A malicious server would mark `delete_all`
//! read-only, so hints only shift scores (never decide alone), and when a
//! hint contradicts the verdict the contradiction is reported and lowers
//! confidence instead of being silently obeyed or ignored.

use serde_json::Value;

use crate::category::Category;
use crate::scoreboard::{Scoreboard, Source};

use super::{
    HINT, HINT_CLOSED_WORLD, HINT_CONFLICT_FACTOR, HINT_IDEMPOTENT, HINT_NOT_DESTRUCTIVE,
    HINT_NOT_READ_ONLY,
};

/// The boolean hints a tool declares; absent or non-boolean values are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    read_only: Option<bool>,
    destructive: Option<bool>,
    idempotent: Option<bool>,
    open_world: Option<bool>,
}

impl Hints {
    pub(crate) fn from_annotations(annotations: Option<&Value>) -> Hints {
        let flag = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .and_then(Value::as_bool)
        };
        Hints {
            read_only: flag("readOnlyHint"),
            destructive: flag("destructiveHint"),
            idempotent: flag("idempotentHint"),
            open_world: flag("openWorldHint"),
        }
    }
}

fn hint_text(name: &str, value: bool) -> String {
    format!("annotation {name}={value} (untrusted hint)")
}

/// Records what the hints claim.
pub(crate) fn add_signals(hints: Hints, board: &mut Scoreboard) {
    match hints.read_only {
        Some(true) => board.support(
            Source::Annotations,
            Category::Read,
            HINT,
            hint_text("readOnlyHint", true),
        ),
        Some(false) => board.oppose(
            Category::Read,
            HINT_NOT_READ_ONLY,
            format!("{} weighs against Read", hint_text("readOnlyHint", false)),
        ),
        None => {}
    }
    match hints.destructive {
        Some(true) => board.support(
            Source::Annotations,
            Category::Destructive,
            HINT,
            hint_text("destructiveHint", true),
        ),
        Some(false) => board.oppose(
            Category::Destructive,
            HINT_NOT_DESTRUCTIVE,
            format!(
                "{} weighs against Destructive",
                hint_text("destructiveHint", false)
            ),
        ),
        None => {}
    }
    if hints.idempotent == Some(true) {
        let text = hint_text("idempotentHint", true);
        board.oppose(
            Category::Execute,
            HINT_IDEMPOTENT,
            format!("{text}: repeating the call is claimed to be harmless"),
        );
        board.oppose(
            Category::Financial,
            HINT_IDEMPOTENT,
            format!("{text} weighs against Financial"),
        );
    }
    if hints.open_world == Some(false) {
        board.oppose(
            Category::Financial,
            HINT_CLOSED_WORLD,
            format!(
                "{}: a tool that reaches no outside system is unlikely to move money",
                hint_text("openWorldHint", false)
            ),
        );
    }
}

/// Reports hints that contradict the verdict, lowering confidence.
pub(crate) fn add_conflicts(hints: Hints, verdict: Category, board: &mut Scoreboard) {
    let read_like = matches!(verdict, Category::Read | Category::Other);
    let conflicts = [
        (
            "readOnlyHint",
            true,
            hints.read_only == Some(true) && !read_like,
        ),
        (
            "readOnlyHint",
            false,
            hints.read_only == Some(false) && verdict == Category::Read,
        ),
        (
            "destructiveHint",
            true,
            hints.destructive == Some(true) && read_like,
        ),
        (
            "destructiveHint",
            false,
            hints.destructive == Some(false) && verdict == Category::Destructive,
        ),
    ];
    for (name, value, conflicting) in conflicts {
        if conflicting {
            board.remark(
                format!(
                    "conflict: {} disagrees with the other signals, which say {verdict}",
                    hint_text(name, value)
                ),
                HINT_CONFLICT_FACTOR,
            );
        }
    }
}
