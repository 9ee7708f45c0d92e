//! Signals from `inputSchema.properties`: what the tool asks for tells what
//! it does. An `amount` with a `currency` moves money; a string `command`
//! or `sql` is run; a boolean `force`, `recursive` or `overwrite` on a tool
//! that changes data makes the change harder to undo.
//!
//! Parameter names alone are weak (`query` is in every search tool), so
//! most of these only count alongside a matching verb elsewhere.

use serde_json::{Map, Value};

use crate::category::Category;
use crate::scoreboard::{Scoreboard, Source};
use crate::tokens::split_identifier;

use super::{PARAM_CODE, PARAM_CODE_WITH_RUN_VERB, PARAM_MONEY, PARAM_PATH, PARAM_SAFETY_SWITCH};

/// Records what the parameters say, given the scores gathered so far.
pub(crate) fn add_signals(schema: Option<&Value>, board: &mut Scoreboard) {
    let Some(properties) = properties(schema) else {
        return;
    };
    add_money_signal(properties, board);
    add_code_signal(properties, board);
    add_safety_switch_signals(properties, board);
}

fn properties(schema: Option<&Value>) -> Option<&Map<String, Value>> {
    schema?.get("properties")?.as_object()
}

/// The parameters that say the tool takes money: an amount together with a
/// currency or a recipient. Returns (amount, partner) parameter names.
fn money_parameters(properties: &Map<String, Value>) -> Option<(&str, &str)> {
    let find = |wanted: fn(&str) -> bool| {
        properties
            .keys()
            .find(|key| split_identifier(key).iter().any(|word| wanted(word)))
            .map(String::as_str)
    };
    let amount = find(|word| word == "amount")?;
    let partner = find(|word| word == "currency")
        .or_else(|| find(|word| matches!(word, "recipient" | "payee" | "beneficiary" | "iban")))?;
    Some((amount, partner))
}

/// The amount parameter of a tool that takes money, if any; it serves as
/// the object of the name's and description's verbs.
pub(crate) fn money_parameter(schema: Option<&Value>) -> Option<&str> {
    money_parameters(properties(schema)?).map(|(amount, _)| amount)
}

fn add_money_signal(properties: &Map<String, Value>, board: &mut Scoreboard) {
    if let Some((amount, partner)) = money_parameters(properties) {
        board.support(
            Source::Parameters,
            Category::Financial,
            PARAM_MONEY,
            format!("parameters {amount} and {partner} suggest money movement"),
        );
    }
}

/// Words that, making up a whole parameter name, say it holds program text.
fn is_code_word(word: &str) -> bool {
    matches!(
        word,
        "command"
            | "commands"
            | "cmd"
            | "script"
            | "code"
            | "sql"
            | "shell"
            | "expression"
            | "statement"
            | "query"
            | "raw"
            | "source"
            | "python"
            | "javascript"
            | "js"
            | "bash"
            | "cypher"
            | "snippet"
    )
}

fn add_code_signal(properties: &Map<String, Value>, board: &mut Scoreboard) {
    let runs_already = board.score(Category::Execute) > 0.0;
    let carries_code = |(key, schema): &(&String, &Value)| {
        let words = split_identifier(key);
        // "query" alone is the search box of every search tool; it only
        // counts as code next to a verb that runs things.
        let only_query = words.iter().all(|word| word == "query");
        !words.is_empty()
            && words.iter().all(|word| is_code_word(word))
            && (runs_already || !only_query)
            && accepts_text(schema)
    };
    if let Some((key, _)) = properties.iter().find(carries_code) {
        let weight = if runs_already {
            PARAM_CODE_WITH_RUN_VERB
        } else {
            PARAM_CODE
        };
        board.support(
            Source::Parameters,
            Category::Execute,
            weight,
            format!("parameter \"{key}\" carries code or commands, suggesting Execute"),
        );
    }
}

fn add_safety_switch_signals(properties: &Map<String, Value>, board: &mut Scoreboard) {
    let changes_data =
        board.score(Category::Write) > 0.0 || board.score(Category::Destructive) > 0.0;
    if !changes_data {
        return;
    }
    let switch = properties.iter().find(|(key, schema)| {
        matches!(
            key.as_str(),
            "force" | "recursive" | "overwrite" | "recursively"
        ) && accepts_boolean(schema)
    });
    if let Some((key, _)) = switch {
        board.support(
            Source::Parameters,
            Category::Destructive,
            PARAM_SAFETY_SWITCH,
            format!("boolean parameter \"{key}\" makes the change harder to undo"),
        );
    } else if board.score(Category::Destructive) > 0.0 {
        let path = properties.keys().find(|key| {
            split_identifier(key)
                .iter()
                .any(|word| matches!(word.as_str(), "path" | "paths" | "directory" | "dir"))
        });
        if let Some(key) = path {
            board.support(
                Source::Parameters,
                Category::Destructive,
                PARAM_PATH,
                format!("parameter \"{key}\" points the deletion at filesystem paths"),
            );
        }
    }
}

/// The schema's declared `type`, as a list (JSON Schema allows one or many).
fn declared_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// True when the parameter may hold text (or a list of text, as command
/// arguments often are). An undeclared type is given the benefit of the doubt.
fn accepts_text(schema: &Value) -> bool {
    let kinds = declared_types(schema);
    kinds.is_empty() || kinds.iter().any(|kind| matches!(*kind, "string" | "array"))
}

fn accepts_boolean(schema: &Value) -> bool {
    let kinds = declared_types(schema);
    kinds.is_empty() || kinds.contains(&"boolean")
}
