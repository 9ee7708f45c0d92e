//! The calls a benchmark makes and the answers it accepts.
//!
//! Every call's tool and arguments are a pure function of its JSON-RPC id, so the driver can
//! check any answer — in any order, with many calls in flight — without remembering what it
//! sent. An answer passes only if its id is a call's id, it is a successful result, and its one
//! text block is exactly the arguments sent (the fixture echoes them). A benchmark that does not
//! check answers would happily measure a proxy that denies, drops or mangles calls.

use std::borrow::Cow;
use std::io::Write;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Which tools are called and how large each call's string argument is.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Calls go round-robin over `tool_0 .. tool_{tools-1}`.
    tools: usize,
    /// Written before each tool's name (a gateway config's `<server>__`).
    prefix: String,
    /// The `s` argument: only `[a-z0-9 ]`, so it needs no JSON escaping and passes the policy's
    /// regex condition.
    payload: String,
}

impl Workload {
    /// A workload over `tools` tools whose string argument is `payload_bytes` long.
    pub fn new(tools: usize, payload_bytes: usize) -> Workload {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
        let payload = ALPHABET
            .iter()
            .cycle()
            .take(payload_bytes)
            .map(|&b| char::from(b))
            .collect();
        Workload {
            tools: tools.max(1),
            prefix: String::new(),
            payload,
        }
    }

    /// The same calls, to tools named `<prefix>tool_N`.
    pub fn with_prefix(mut self, prefix: &str) -> Workload {
        self.prefix = prefix.to_owned();
        self
    }

    pub fn tools(&self) -> usize {
        self.tools
    }

    /// The name the client calls tool `i` by.
    pub fn tool_name(&self, i: usize) -> String {
        format!("{}tool_{i}", self.prefix)
    }

    fn tool(&self, id: u64) -> u64 {
        // usize -> u64 never truncates on the platforms this runs on (Linux, /proc).
        id % self.tools as u64
    }

    /// `n` stays well under the policy's `lte 1000000` condition.
    fn n(id: u64) -> u64 {
        id % 1_000_000
    }

    /// Append the `tools/call` request line for `id` (newline-terminated) to `out`.
    pub fn write_request(&self, id: u64, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{prefix}tool_{tool}","arguments":{{"n":{n},"s":"{s}"}}}}}}"#,
            prefix = self.prefix,
            tool = self.tool(id),
            n = Self::n(id),
            s = self.payload,
        );
        out.push(b'\n');
    }

    /// The arguments JSON of call `id`, exactly as sent — what its echo must contain.
    pub fn arguments(&self, id: u64) -> String {
        format!(r#"{{"n":{},"s":"{}"}}"#, Self::n(id), self.payload)
    }

    /// Check one line from the server. `Ok(Some(id))` for a correct answer to call `id`;
    /// `Ok(None)` for a message that is not an answer (a notification or a server request);
    /// an error for anything else, saying what was wrong.
    pub fn verify(&self, line: &[u8]) -> anyhow::Result<Option<u64>> {
        let reply: Reply<'_> = serde_json::from_slice(line).with_context(|| {
            format!(
                "the server sent a line that is not JSON-RPC: {}",
                excerpt(line)
            )
        })?;
        if reply.method.is_some() {
            return Ok(None);
        }
        let Some(raw_id) = reply.id else {
            bail!("an answer without an id: {}", excerpt(line));
        };
        let Ok(id) = raw_id.get().parse::<u64>() else {
            bail!("an answer with an id no call had: {}", raw_id.get());
        };
        if let Some(error) = reply.error {
            bail!("call {id} failed with a JSON-RPC error: {}", error.get());
        }
        let Some(result) = reply.result else {
            bail!("call {id}: answer has neither result nor error");
        };
        let result: CallResult<'_> = serde_json::from_str(result.get())
            .with_context(|| format!("call {id}: the result is not a tools/call result"))?;
        let text = match result.content.as_slice() {
            [Content {
                kind,
                text: Some(text),
            }] if kind == "text" => text,
            _ => bail!("call {id}: expected one text block, got {}", excerpt(line)),
        };
        if result.is_error == Some(true) {
            bail!("call {id} was refused: {}", excerpt(text.as_bytes()));
        }
        let expected = self.arguments(id);
        if text.as_ref() != expected && !same_json(text, &expected) {
            bail!(
                "call {id}: the echo does not match the arguments sent\n  sent: {}\n  got:  {}",
                excerpt(expected.as_bytes()),
                excerpt(text.as_bytes())
            );
        }
        Ok(Some(id))
    }
}

/// A proxy may legitimately re-serialize arguments (key order, spacing); that is still a
/// correct echo, so fall back to comparing values when the bytes differ.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The start of a (possibly megabyte-long) line, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text}… ({} bytes)", bytes.len())
    } else {
        text.into_owned()
    }
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallResult<'a> {
    #[serde(borrow)]
    content: Vec<Content<'a>>,
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(id: &str, text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0",
            "id": serde_json::from_str::<serde_json::Value>(id).unwrap(),
            "result": {"content": [{"type": "text", "text": text}]},
        }))
        .unwrap()
    }

    #[test]
    fn request_carries_the_arguments_the_answer_must_echo() {
        let w = Workload::new(3, 5);
        let mut line = Vec::new();
        w.write_request(7, &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["params"]["name"], "tool_1");
        assert_eq!(v["params"]["arguments"]["s"], "abcde");
        assert_eq!(v["params"]["arguments"].to_string(), w.arguments(7));
    }

    #[test]
    fn accepts_exact_and_reordered_echoes() {
        let w = Workload::new(3, 4);
        assert_eq!(w.verify(&answer("9", &w.arguments(9))).unwrap(), Some(9));
        let reordered = r#"{ "s": "abcd", "n": 9 }"#;
        assert_eq!(w.verify(&answer("9", reordered)).unwrap(), Some(9));
    }

    #[test]
    fn rejects_wrong_echo_id_error_and_denial() {
        let w = Workload::new(3, 4);
        // The echo of call 8 presented as the answer to call 9.
        let err = w.verify(&answer("9", &w.arguments(8))).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = w.verify(&answer("\"9\"", &w.arguments(9))).unwrap_err();
        assert!(err.to_string().contains("id no call had"), "{err}");
        let error =
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Unknown tool: tool_0"}}"#;
        let err = w.verify(error).unwrap_err();
        assert!(err.to_string().contains("Unknown tool"), "{err}");
        let denied = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"[POLICY DENIED] no"}],"isError":true}}"#;
        let err = w.verify(denied).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(w.verify(b"not json").is_err());
    }

    #[test]
    fn skips_notifications_and_server_requests() {
        let w = Workload::new(1, 1);
        let note = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        assert_eq!(w.verify(note).unwrap(), None);
        let ping = br#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#;
        assert_eq!(w.verify(ping).unwrap(), None);
    }
}
