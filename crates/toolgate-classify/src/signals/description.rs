//! Signals from the description prose.
//!
//! The first sentence says what the tool is for, so its leading verb (after
//! preambles like "Use this tool to") is read with its object, exactly like
//! a name. A list of verbs there ("Read/create/update/delete resources")
//! means the tool can do all of them, so each is recorded and the most
//! harmful wins ties. The rest of the prose only contributes explicit
//! claims ("read-only", "cannot be undone", "arbitrary code") and faint
//! mentions of risky verbs.
//!
//! A description that does not look like English is set aside entirely:
//! matching English words inside another language would mislead more than
//! it helps, and the name still speaks.

use crate::category::Category;
use crate::lexicon::{
    compound, is_conjunction, is_english_function_word, is_negation, is_preamble_word,
    prose_verb_meaning, thing_meaning_any_number, verb_meaning, Action, Thing, Verb,
};
use crate::scoreboard::{Scoreboard, Source};
use crate::tokens::{first_sentence, lowercase_prose, words, Gap, Word};

use super::phrase::interpret;
use super::{
    Domain, FOREIGN_DESCRIPTION_FACTOR, LEAD_VERB_FIRST, LEAD_VERB_LATER, NO_DESCRIPTION_FACTOR,
    PROSE_ARBITRARY_CODE, PROSE_IRREVERSIBLE, PROSE_MENTION, PROSE_READ_ONLY,
};

/// How many content words into the first sentence the lead verb may sit.
const LEAD_WINDOW: usize = 6;
/// How many words after the lead verbs are searched for their object.
const OBJECT_WINDOW: usize = 8;

/// Records what the description says.
pub(crate) fn add_signals(description: Option<&str>, board: &mut Scoreboard, domain: Domain<'_>) {
    let Some(text) = description.map(str::trim).filter(|text| !text.is_empty()) else {
        board.remark(
            "no description, so only the name, schema and annotations speak".to_string(),
            NO_DESCRIPTION_FACTOR,
        );
        return;
    };
    let lower = lowercase_prose(text);
    let all_words = words(&lower);
    if !looks_english(&all_words) {
        board.remark(
            "description does not look like English, so it was not used".to_string(),
            FOREIGN_DESCRIPTION_FACTOR,
        );
        return;
    }
    let lead = lead_verbs(first_sentence(&all_words));
    add_lead_signals(&lead, &all_words, board, domain);
    add_claim_signals(&all_words, board);
    add_mention_signals(&all_words, &lead.indices, board);
}

/// A verb found in prose; `text` may be a joined compound ("lookup").
struct ProseVerb<'a> {
    text: &'a str,
    meaning: Verb,
    inflected: bool,
    width: usize,
}

/// The verbs that open the first sentence.
#[derive(Default)]
struct Lead<'a> {
    verbs: Vec<ProseVerb<'a>>,
    /// Word indices covered by the lead verbs (excluded from mentions).
    indices: Vec<usize>,
    /// Index just past the last lead verb, where its object starts.
    end: usize,
    /// Whether the first verb opened the sentence.
    opens_sentence: bool,
}

fn prose_verb_at<'a>(words: &[Word<'a>], index: usize) -> Option<ProseVerb<'a>> {
    let word = words.get(index)?;
    if let Some(next) = words.get(index + 1).filter(|next| next.gap == Gap::Space) {
        if let Some(joined) = compound(word.text, next.text) {
            return verb_meaning(joined).map(|meaning| ProseVerb {
                text: joined,
                meaning,
                inflected: false,
                width: 2,
            });
        }
    }
    prose_verb_meaning(word.text).map(|(meaning, inflected)| ProseVerb {
        text: word.text,
        meaning,
        inflected,
        width: 1,
    })
}

/// The lead verb and any verbs listed with it: "Read/create/delete",
/// "Create, run, and see", "Creates or updates".
fn lead_verbs<'a>(sentence: &[Word<'a>]) -> Lead<'a> {
    let mut lead = Lead::default();
    let Some((first_index, first, opens_sentence)) = first_verb(sentence) else {
        return lead;
    };
    lead.opens_sentence = opens_sentence;
    let inflected = first.inflected;
    let mut next = first_index + first.width;
    lead.indices.extend(first_index..next);
    lead.verbs.push(first);
    while let Some((index, verb)) = listed_verb_at(sentence, next, inflected) {
        next = index + verb.width;
        lead.indices.extend(index..next);
        lead.verbs.push(verb);
    }
    lead.end = next;
    lead
}

/// The first verb within [`LEAD_WINDOW`] content words, preambles skipped,
/// with its index and whether it opens the sentence (no content word before).
fn first_verb<'a>(sentence: &[Word<'a>]) -> Option<(usize, ProseVerb<'a>, bool)> {
    let mut content_words = 0;
    for (index, word) in sentence.iter().enumerate() {
        if content_words >= LEAD_WINDOW {
            break;
        }
        if is_preamble_word(word.text) {
            continue;
        }
        // Third-person verbs ("Deletes") open a description; later in the
        // sentence an -s word is far more often a plural noun ("types").
        let found =
            prose_verb_at(sentence, index).filter(|verb| content_words == 0 || !verb.inflected);
        if let Some(found) = found {
            return Some((index, found, content_words == 0));
        }
        content_words += 1;
    }
    None
}

/// A verb continuing the list at `index`: it must follow a comma, slash or
/// conjunction and be inflected like the lead verb, so "Get comments" stays
/// one verb and its object.
fn listed_verb_at<'a>(
    sentence: &[Word<'a>],
    index: usize,
    inflected: bool,
) -> Option<(usize, ProseVerb<'a>)> {
    let mut candidate = index;
    let mut linked = sentence
        .get(candidate)
        .is_some_and(|word| word.gap == Gap::ListSeparator);
    if sentence
        .get(candidate)
        .is_some_and(|word| is_conjunction(word.text))
    {
        linked = true;
        candidate += 1;
    }
    let word = sentence.get(candidate)?;
    if !linked || !matches!(word.gap, Gap::Space | Gap::ListSeparator) {
        return None;
    }
    let verb = prose_verb_at(sentence, candidate)?;
    (verb.inflected == inflected).then_some((candidate, verb))
}

fn add_lead_signals(
    lead: &Lead<'_>,
    all_words: &[Word<'_>],
    board: &mut Scoreboard,
    domain: Domain<'_>,
) {
    let sentence = first_sentence(all_words);
    let things: Vec<(&str, Thing)> = sentence
        .iter()
        .skip(lead.end)
        .take(OBJECT_WINDOW)
        .filter_map(|word| thing_meaning_any_number(word.text).map(|thing| (word.text, thing)))
        .collect();
    let weight = if lead.opens_sentence {
        LEAD_VERB_FIRST
    } else {
        LEAD_VERB_LATER
    };
    for verb in &lead.verbs {
        if let Some(reading) = interpret(Some((verb.text, verb.meaning)), &things, domain) {
            board.support(
                Source::DescriptionLead,
                reading.category,
                weight,
                reading.describe("description"),
            );
        }
    }
}

/// Explicit claims anywhere in the prose.
fn add_claim_signals(words: &[Word<'_>], board: &mut Scoreboard) {
    let text = |index: usize| words.get(index).map_or("", |word| word.text);
    let negated_before = |index: usize, span: usize| {
        (index.saturating_sub(span)..index).any(|before| is_negation(text(before)))
    };
    let mut read_only = None;
    let mut irreversible = None;
    let mut arbitrary_code = None;
    for index in 0..words.len() {
        let (word, next) = (text(index), text(index + 1));
        let claims_read_only = match (word, next) {
            ("read", "only") | ("readonly", _) | ("non", "destructive") => {
                !negated_before(index, 1)
            }
            ("without", "modifying" | "changing" | "altering" | "writing")
            | ("not", "modify" | "change" | "alter" | "write" | "mutate")
            | ("no", "side") => true,
            _ => false,
        };
        if claims_read_only {
            read_only.get_or_insert(index);
        }
        let claims_irreversible = match word {
            "permanently" | "permanent" | "irreversible" | "irreversibly" | "unrecoverable" => {
                !negated_before(index, 2)
            }
            "undone" | "recovered" | "reversed" => negated_before(index, 3),
            _ => false,
        };
        if claims_irreversible {
            irreversible.get_or_insert(index);
        }
        let names_code_after = |span: usize| {
            (index + 1..=index + span).any(|after| {
                matches!(
                    thing_meaning_any_number(text(after)),
                    Some(Thing::Runnable | Thing::CodeText)
                )
            })
        };
        if (word == "arbitrary" && names_code_after(3)) || (word == "shell" && names_code_after(1))
        {
            arbitrary_code.get_or_insert(index);
        }
    }
    if let Some(index) = read_only {
        let phrase = format!("{} {}", text(index), text(index + 1));
        board.support(
            Source::DescriptionBody,
            Category::Read,
            PROSE_READ_ONLY,
            format!("description claims \"{}\", suggesting Read", phrase.trim()),
        );
    }
    if let Some(index) = irreversible {
        board.support(
            Source::DescriptionBody,
            Category::Destructive,
            PROSE_IRREVERSIBLE,
            format!(
                "description says the effect is irreversible (\"{}\"), suggesting Destructive",
                text(index)
            ),
        );
    }
    if let Some(index) = arbitrary_code {
        board.support(
            Source::DescriptionBody,
            Category::Execute,
            PROSE_ARBITRARY_CODE,
            format!(
                "description mentions \"{} {}\", suggesting Execute",
                text(index),
                text(index + 1)
            ),
        );
    }
}

/// Risky verbs outside the lead; nouns that double as verbs ("refund") are
/// skipped because in running prose they are usually nouns.
fn add_mention_signals(words: &[Word<'_>], lead_indices: &[usize], board: &mut Scoreboard) {
    let mut mentioned = [false; Category::ALL.len()];
    for (index, word) in words.iter().enumerate() {
        if lead_indices.contains(&index) || thing_meaning_any_number(word.text).is_some() {
            continue;
        }
        let Some((verb, _)) = prose_verb_meaning(word.text) else {
            continue;
        };
        let category = match verb.action {
            Action::Destroy => Category::Destructive,
            Action::Execute => Category::Execute,
            Action::Pay => Category::Financial,
            _ => continue,
        };
        let negated =
            (index.saturating_sub(2)..index).any(|before| is_negation(words[before].text));
        if negated || std::mem::replace(&mut mentioned[category.index()], true) {
            continue;
        }
        board.support(
            Source::DescriptionBody,
            category,
            PROSE_MENTION,
            format!("description also mentions \"{}\"", word.text),
        );
    }
}

/// How many opening words may hold the verb of a terse English description
/// that has no function words ("List Azure Container Registry instances").
const TERSE_VERB_WINDOW: usize = 3;

/// A cheap language guess: mostly ASCII words and, for texts of five words
/// or more, an English function word or a known verb near the start.
fn looks_english(words: &[Word<'_>]) -> bool {
    if words.is_empty() {
        return true;
    }
    let non_ascii = words.iter().filter(|word| !word.text.is_ascii()).count();
    if non_ascii * 10 > words.len() * 3 {
        return false;
    }
    words.len() < 5
        || words.iter().any(|word| is_english_function_word(word.text))
        || words
            .iter()
            .take(TERSE_VERB_WINDOW)
            .any(|word| prose_verb_meaning(word.text).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead_texts(text: &str) -> Vec<String> {
        let lower = lowercase_prose(text);
        let all = words(&lower);
        lead_verbs(first_sentence(&all))
            .verbs
            .iter()
            .map(|verb| verb.text.to_string())
            .collect()
    }

    #[test]
    fn lead_verbs_skip_preambles_and_follow_lists() {
        assert_eq!(lead_texts("Use this tool to delete a file"), ["delete"]);
        assert_eq!(
            lead_texts("Read/create/update/delete resources"),
            ["read", "create", "update", "delete"]
        );
        assert_eq!(
            lead_texts("Create, run, and see load tests"),
            ["create", "run", "see"]
        );
        assert_eq!(
            lead_texts("Creates or updates a file"),
            ["creates", "updates"]
        );
        assert_eq!(lead_texts("Get comments and stories for a task"), ["get"]);
        assert_eq!(lead_texts("Look up account IDs"), ["lookup"]);
        assert_eq!(lead_texts("Batch retrieve up to 25 tasks"), ["retrieve"]);
        assert!(lead_texts("Resources of specified types").is_empty());
        assert!(lead_texts("Interactive browser automation").is_empty());
    }

    #[test]
    fn language_guess() {
        let english = lowercase_prose("Deletes the file at the given path");
        assert!(looks_english(&words(&english)));
        let french = lowercase_prose("Supprime définitivement le fichier du dépôt");
        assert!(!looks_english(&words(&french)));
        let chinese = lowercase_prose("删除指定的文件");
        assert!(!looks_english(&words(&chinese)));
        let terse = lowercase_prose("List Azure Container Registry instances");
        assert!(looks_english(&words(&terse)));
    }
}
