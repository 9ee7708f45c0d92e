//! The cursors the aggregator mints for merged listings, and where a request names its tool
//! or prompt. (Aggregated names are
//! `toolgate_policy::gateway_config::{aggregated_name, split_aggregated_name}`.)

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

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

/// Reads a cursor the aggregator minted; `None` for anything else. A server named more than
/// once counts once (its first cursor): a forged cursor must not turn one request into
/// thousands.
pub fn decode_cursor(cursor: &str) -> Option<Resume> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let mut resume: Resume = serde_json::from_slice(&json).ok()?;
    let mut seen = std::collections::HashSet::new();
    resume.retain(|(server, _)| seen.insert(server.clone()));
    (!resume.is_empty()).then_some(resume)
}

/// Where a request names its tool or prompt: `params.name`, or a prompt completion's
/// `params.ref.name` (a resource's completion names a URI, which is never renamed).
pub(crate) fn named_in<'a>(params: &'a str, method: &str) -> Option<&'a RawValue> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Reference<'a> {
        #[serde(rename = "type")]
        kind: String,
        #[serde(borrow)]
        name: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Completion<'a> {
        #[serde(borrow, rename = "ref")]
        reference: Reference<'a>,
    }
    match method {
        "tools/call" | "prompts/get" => Some(serde_json::from_str::<Named>(params).ok()?.name),
        "completion/complete" => {
            let reference = serde_json::from_str::<Completion>(params).ok()?.reference;
            (reference.kind == "ref/prompt").then_some(reference.name)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let repeated: Resume = (0..1000)
            .map(|i| ("a".to_string(), Some(i.to_string())))
            .collect();
        assert_eq!(
            decode_cursor(&encode_cursor(&repeated)),
            Some(vec![("a".to_string(), Some("0".to_string()))])
        );
    }
}
