//! Turning text into words: tool names (`snake_case`, `camelCase`,
//! `kebab-case`, `dotted.names`, acronyms) and description prose.
//!
//! This module knows nothing about what words mean; it only decides where
//! one word ends and the next begins, and remembers which separator stood
//! between them, because "Read/create/delete" lists three actions while
//! "Get comments" is a verb and its object.

/// Descriptions longer than this are only read up to here: the first
/// sentences carry the meaning, and a bound keeps throughput predictable.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Splits a tool name into lowercase words.
///
/// Any non-alphanumeric character separates words; so does a lowercase or
/// digit followed by an uppercase letter (`getJiraIssue`), and the last
/// capital of an acronym followed by lowercase (`runSEOAudit` → run, seo, audit).
pub(crate) fn split_identifier(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (index, &ch) in chars.iter().enumerate() {
        if !ch.is_alphanumeric() {
            flush(&mut current, &mut words);
            continue;
        }
        if ch.is_uppercase() && !current.is_empty() {
            let previous = chars[index - 1];
            let next_is_lower = chars.get(index + 1).is_some_and(|next| next.is_lowercase());
            let starts_new_word = previous.is_lowercase()
                || previous.is_numeric()
                || (previous.is_uppercase() && next_is_lower);
            if starts_new_word {
                flush(&mut current, &mut words);
            }
        }
        current.extend(ch.to_lowercase());
    }
    flush(&mut current, &mut words);
    words
}

fn flush(current: &mut String, words: &mut Vec<String>) {
    if !current.is_empty() {
        words.push(std::mem::take(current));
    }
}

/// What separated a word from the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// The first word of the text.
    Start,
    /// Whitespace or a hyphen: the words belong to one phrase.
    Space,
    /// A comma, slash or ampersand: the words are items of a list.
    ListSeparator,
    /// Other punctuation (colon, brackets, quotes): a new clause.
    Punctuation,
    /// A full stop, question or exclamation mark, or a line break.
    SentenceEnd,
}

/// One lowercase word of prose and the separator before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word<'a> {
    pub text: &'a str,
    pub gap: Gap,
}

/// Lowercases `text` (bounded by [`MAX_DESCRIPTION_BYTES`]) for [`words`].
pub(crate) fn lowercase_prose(text: &str) -> String {
    let mut end = text.len().min(MAX_DESCRIPTION_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_lowercase()
}

/// Splits already-lowercased prose into words, recording the strongest
/// separator seen between each word and the previous one.
pub(crate) fn words(lower: &str) -> Vec<Word<'_>> {
    let mut result = Vec::new();
    let mut gap = Gap::Start;
    let mut word_start: Option<usize> = None;
    let mut chars = lower.char_indices().peekable();
    while let Some((offset, ch)) = chars.next() {
        if ch.is_alphanumeric() {
            word_start.get_or_insert(offset);
            continue;
        }
        if let Some(start) = word_start.take() {
            result.push(Word {
                text: &lower[start..offset],
                gap,
            });
            gap = Gap::Space;
        }
        let next_is_space = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        let separator = match ch {
            '\n' => Gap::SentenceEnd,
            '.' | '!' | '?' if next_is_space => Gap::SentenceEnd,
            ',' | '/' | '&' => Gap::ListSeparator,
            _ if ch.is_whitespace() || ch == '-' || ch == '_' || ch == '\'' => Gap::Space,
            _ => Gap::Punctuation,
        };
        if !result.is_empty() {
            gap = strongest(gap, separator);
        }
    }
    if let Some(start) = word_start {
        result.push(Word {
            text: &lower[start..],
            gap,
        });
    }
    result
}

fn strongest(a: Gap, b: Gap) -> Gap {
    fn rank(gap: Gap) -> u8 {
        match gap {
            Gap::Start => 0,
            Gap::Space => 1,
            Gap::ListSeparator => 2,
            Gap::Punctuation => 3,
            Gap::SentenceEnd => 4,
        }
    }
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The words of the first sentence: they say what the tool is for.
pub(crate) fn first_sentence<'w, 'a>(words: &'w [Word<'a>]) -> &'w [Word<'a>] {
    let end = words
        .iter()
        .position(|word| word.gap == Gap::SentenceEnd)
        .unwrap_or(words.len());
    &words[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str) -> Vec<String> {
        split_identifier(name)
    }

    #[test]
    fn splits_every_naming_style() {
        assert_eq!(split("delete_repository"), ["delete", "repository"]);
        assert_eq!(split("getJiraIssue"), ["get", "jira", "issue"]);
        assert_eq!(split("notion-create-page"), ["notion", "create", "page"]);
        assert_eq!(split("fs.read_file"), ["fs", "read", "file"]);
        assert_eq!(split("Get-Event-Details"), ["get", "event", "details"]);
        assert_eq!(split("runSEOAudit"), ["run", "seo", "audit"]);
        assert_eq!(split("HTTPRequest"), ["http", "request"]);
        assert_eq!(split("d1_database_create"), ["d1", "database", "create"]);
        assert_eq!(split("getV2Users"), ["get", "v2", "users"]);
        assert_eq!(split("__"), Vec::<String>::new());
        assert_eq!(split("ÜberGet"), ["über", "get"]);
    }

    #[test]
    fn prose_words_remember_their_separators() {
        let lower = lowercase_prose("Read/create, update and delete. Next sentence");
        let found = words(&lower);
        let gaps: Vec<(&str, Gap)> = found.iter().map(|word| (word.text, word.gap)).collect();
        assert_eq!(
            gaps,
            [
                ("read", Gap::Start),
                ("create", Gap::ListSeparator),
                ("update", Gap::ListSeparator),
                ("and", Gap::Space),
                ("delete", Gap::Space),
                ("next", Gap::SentenceEnd),
                ("sentence", Gap::Space),
            ]
        );
        assert_eq!(first_sentence(&found).len(), 5);
    }

    #[test]
    fn dotted_words_do_not_end_sentences() {
        let lower = lowercase_prose("Search shopify.dev docs");
        assert_eq!(first_sentence(&words(&lower)).len(), 4);
    }

    #[test]
    fn long_prose_is_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_DESCRIPTION_BYTES);
        assert!(lowercase_prose(&text).len() <= MAX_DESCRIPTION_BYTES);
    }
}
