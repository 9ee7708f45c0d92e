//! Signals from the tool's name (and, more weakly, its title).
//!
//! Names are the strongest evidence: they are short, usually verb-object
//! (`delete_repository`) or object-verb (`d1_database_create`), and they
//! are what the model actually calls. The server's own name is stripped
//! from the front (`asana_get_task` reads as "get task") so that a server
//! called "search" or "run" does not lend every tool its verb.

use crate::category::Category;
use crate::lexicon::{
    is_conjunction, join_compounds, thing_meaning, thing_meaning_any_number, verb_meaning, Thing,
};
use crate::scoreboard::{Scoreboard, Source};
use crate::tokens::split_identifier;

use super::phrase::interpret;
use super::{Domain, NAME_THING, NAME_VERB, TITLE_SCALE};

/// Generic words in server names that say nothing about the server.
fn is_generic_server_word(word: &str) -> bool {
    matches!(word, "mcp" | "server" | "servers" | "tools" | "api")
}

/// The words of a server name worth stripping from tool names.
pub(crate) fn server_words(server_name: Option<&str>) -> Vec<String> {
    server_name
        .map(split_identifier)
        .unwrap_or_default()
        .into_iter()
        .filter(|word| !is_generic_server_word(word))
        .collect()
}

/// Splits a tool name into words, drops a leading server prefix (keeping at
/// least one word) and joins compounds such as "pull request".
pub(crate) fn name_words(name: &str, server_words: &[String]) -> Vec<String> {
    let words = split_identifier(name);
    let prefix = words
        .iter()
        .take(words.len().saturating_sub(1))
        .take_while(|word| server_words.contains(word))
        .count();
    join_compounds(words.into_iter().skip(prefix).collect())
}

/// Records what the name (or title) words say. Returns the category of the
/// main reading, if the words gave one.
pub(crate) fn add_signals(
    words: &[String],
    source: Source,
    board: &mut Scoreboard,
    domain: Domain<'_>,
) -> Option<Category> {
    let (label, scale) = match source {
        Source::Title => ("title", TITLE_SCALE),
        _ => ("name", 1.0),
    };
    let run = verb_run(words);
    let things = object_things(words, &run);
    let verbs: Vec<Option<(&str, _)>> = if run.is_empty() {
        vec![None]
    } else {
        run.iter()
            .filter_map(|&index| {
                let word = words[index].as_str();
                verb_meaning(word).map(|meaning| Some((word, meaning)))
            })
            .collect()
    };
    let mut main_category = None;
    for verb in verbs {
        if let Some(reading) = interpret(verb, &things, domain) {
            let weight = if reading.has_verb() {
                NAME_VERB
            } else {
                NAME_THING
            };
            board.support(
                source,
                reading.category,
                weight * scale,
                reading.describe(label),
            );
            main_category.get_or_insert(reading.category);
        }
    }
    main_category
}

/// The telling nouns of the verb's object: the words after the verbs
/// (`browser_select_option` selects an option, not the browser), or the
/// words before them when the verb comes last (`browser_tab_close`).
fn object_things<'w>(words: &'w [String], run: &[usize]) -> Vec<(&'w str, Thing)> {
    let after = run.iter().max().map_or(0, |last| last + 1);
    let before = run.iter().min().copied().unwrap_or(words.len());
    let object = if after < words.len() {
        &words[after..]
    } else {
        &words[..before]
    };
    object
        .iter()
        .filter_map(|word| thing_meaning_any_number(word).map(|thing| (word.as_str(), thing)))
        .collect()
}

/// Indices of the name's verbs: the main verb, plus any joined to it by
/// "and"/"or" (`create_or_update_file`). The main verb is the first word
/// that can only be a verb; words that can also be nouns (`query`,
/// `charge`, `refund`) are the verb only when nothing else is.
fn verb_run(words: &[String]) -> Vec<usize> {
    let is_verb = |index: usize| verb_meaning(&words[index]).is_some();
    let candidates = (0..words.len()).filter(|&index| is_verb(index));
    let main = candidates
        .clone()
        .find(|&index| thing_meaning(&words[index]).is_none())
        .or_else(|| candidates.clone().next());
    let Some(main) = main else {
        return Vec::new();
    };
    let mut run = vec![main];
    let mut next = main + 1;
    while next + 1 < words.len() && is_conjunction(&words[next]) && is_verb(next + 1) {
        run.push(next + 1);
        next += 2;
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(name: &str, server: Option<&str>) -> Vec<String> {
        name_words(name, &server_words(server))
    }

    fn main_verbs(name: &str) -> Vec<String> {
        let words = words(name, None);
        verb_run(&words)
            .into_iter()
            .map(|index| words[index].clone())
            .collect()
    }

    #[test]
    fn server_prefix_is_stripped_but_never_the_whole_name() {
        assert_eq!(words("asana_get_task", Some("asana")), ["get", "task"]);
        assert_eq!(
            words("notion-create-page", Some("notion")),
            ["create", "page"]
        );
        assert_eq!(words("search", Some("search")), ["search"]);
        assert_eq!(
            words("brave_web_search", Some("brave-search")),
            ["web", "search"]
        );
        assert_eq!(
            words("list_issues", Some("mcp-server-github")),
            ["list", "issues"]
        );
    }

    #[test]
    fn main_verb_prefers_unambiguous_verbs() {
        assert_eq!(main_verbs("run_query"), ["run"]);
        assert_eq!(main_verbs("query_metrics"), ["query"]);
        assert_eq!(main_verbs("list_charges"), ["list"]);
        assert_eq!(main_verbs("refund_payment"), ["refund"]);
        assert_eq!(main_verbs("d1_database_create"), ["create"]);
        assert_eq!(main_verbs("create_or_update_file"), ["create", "update"]);
        assert_eq!(main_verbs("merge_pull_request"), ["merge"]);
        assert!(main_verbs("pull_request_details").is_empty());
    }
}
