//! Names in the aggregated view (`<server>__<tool>`) and the cursors the aggregator mints
//! for merged listings.

use base64::Engine;
use toolgate_policy::gateway_config::NAME_SEPARATOR;

/// The aggregated name of a server's tool or prompt.
pub fn prefixed(server: &str, name: &str) -> String {
    format!("{server}{NAME_SEPARATOR}{name}")
}

/// The server and the server's own name of an aggregated name. Server names never contain
/// the separator, so the first one splits; the rest (which may hold `__`) is the tool's.
pub fn split(aggregated: &str) -> Option<(&str, &str)> {
    aggregated
        .split_once(NAME_SEPARATOR)
        .filter(|(server, name)| !server.is_empty() && !name.is_empty())
}

/// Where a merged listing goes on: for each server with more to list, the cursor it gave.
/// `None` is a server not listed yet.
pub type Resume = Vec<(String, Option<String>)>;

/// Longest cursor a client may hand back: a server's cursor is opaque but small in practice,
/// and the aggregator decodes only what it minted.
const MAX_CURSOR_BYTES: usize = 64 * 1024;

pub fn encode_cursor(resume: &Resume) -> String {
    let json = serde_json::to_vec(resume).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// Reads a cursor the aggregator minted; `None` for anything else.
pub fn decode_cursor(cursor: &str) -> Option<Resume> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let resume: Resume = serde_json::from_slice(&json).ok()?;
    (!resume.is_empty()).then_some(resume)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_split_at_the_first_separator() {
        assert_eq!(split("files__read_file"), Some(("files", "read_file")));
        assert_eq!(split("a__b__c"), Some(("a", "b__c")));
        assert_eq!(split("plain"), None);
        assert_eq!(split("__x"), None);
        assert_eq!(split("x__"), None);
        assert_eq!(split(&prefixed("mem", "get__it")), Some(("mem", "get__it")));
    }

    #[test]
    fn cursors_round_trip_and_refuse_foreign_text() {
        let resume = vec![
            ("a".to_string(), Some("c=1".to_string())),
            ("b".into(), None),
        ];
        assert_eq!(decode_cursor(&encode_cursor(&resume)), Some(resume));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&encode_cursor(&Vec::new())), None);
        assert_eq!(decode_cursor(&"A".repeat(MAX_CURSOR_BYTES + 1)), None);
    }
}
