//! The JSON-RPC envelope, read without copying what policy does not need.
//!
//! Only `jsonrpc`, `id`, `method` and the position of `params` / `result` / `error` are read;
//! the members stay borrowed `RawValue`s so an unchanged message is forwarded byte for byte.
//! Messages from the client are read strictly — unknown members, duplicate or
//! case-colliding members, a wrong `jsonrpc` are refused — because they are what policy is
//! decided on. Messages from the server are read leniently: they are only routed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use toolgate_policy::fold::fold;

/// How a message is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Client messages: anything ambiguous is an error.
    Strict,
    /// Server messages: route what can be routed.
    Lenient,
}

/// The members of one JSON-RPC message.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub id: Option<&'a RawValue>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
    pub result: Option<&'a RawValue>,
    pub error: Option<&'a RawValue>,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON at all (`-32700`).
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not an acceptable JSON-RPC message (`-32600`).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of one message (an object; arrays are batches, handled by the caller).
    pub fn parse(text: &'a str, strictness: Strictness) -> Result<Envelope<'a>, EnvelopeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let envelope = EnvelopeSeed { strictness }
            .deserialize(&mut deserializer)
            .map_err(|e| {
                let message = e.to_string();
                match message.strip_prefix(INVALID_MARKER) {
                    Some(rest) => EnvelopeError::Invalid(
                        rest.rsplit_once(" at line ")
                            .map_or(rest, |(m, _)| m)
                            .to_string(),
                    ),
                    None if e.is_data() => EnvelopeError::Invalid(message),
                    None => EnvelopeError::Parse(message),
                }
            })?;
        deserializer
            .end()
            .map_err(|e| EnvelopeError::Parse(e.to_string()))?;
        if strictness == Strictness::Strict {
            envelope.check()?;
        }
        Ok(envelope)
    }

    /// The message's kind, when its members make one.
    pub fn kind(&self) -> Option<Kind> {
        match (&self.method, self.id) {
            (Some(_), Some(_)) => Some(Kind::Request),
            (Some(_), None) => Some(Kind::Notification),
            (None, Some(_)) if self.result.is_some() || self.error.is_some() => {
                Some(Kind::Response)
            }
            _ => None,
        }
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        let invalid = |m: &str| Err(EnvelopeError::Invalid(m.to_string()));
        if self.method.is_some() && (self.result.is_some() || self.error.is_some()) {
            return invalid("a message cannot have both \"method\" and \"result\"/\"error\"");
        }
        if self.result.is_some() && self.error.is_some() {
            return invalid("a response cannot have both \"result\" and \"error\"");
        }
        if let Some(id) = self.id {
            let first = id.get().as_bytes().first().copied();
            let is_null = id.get() == "null";
            let request = self.method.is_some();
            if !(matches!(first, Some(b'"' | b'-' | b'0'..=b'9')) || (is_null && !request)) {
                return invalid("\"id\" must be a string or a number");
            }
        }
        if self.kind().is_none() {
            return invalid("not a request, notification or response");
        }
        if let Some(params) = self.params {
            if !matches!(params.get().as_bytes().first(), Some(b'{' | b'[')) {
                return invalid("\"params\" must be an object or an array");
            }
        }
        Ok(())
    }
}

const INVALID_MARKER: &str = "\u{1}invalid:";

fn invalid<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format!("{INVALID_MARKER}{message}"))
}

struct EnvelopeSeed {
    strictness: Strictness,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Envelope<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope<'de>, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor {
            strictness: self.strictness,
        })
    }
}

struct EnvelopeVisitor {
    strictness: Strictness,
}

/// A member name, borrowed when it has no escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Envelope<'de>, A::Error> {
        let strict = self.strictness == Strictness::Strict;
        let mut envelope = Envelope::default();
        // Only the six members JSON-RPC defines are remembered, so the work is linear in
        // the message however many members it has.
        let mut seen = [false; MEMBERS.len()];
        let mut version_ok = false;
        while let Some(MemberName(name)) = access.next_key::<MemberName<'de>>()? {
            let slot = match MEMBERS.iter().position(|m| *m == name) {
                Some(slot) if !seen[slot] => slot,
                Some(_) => {
                    if strict {
                        return Err(invalid(format_args!("duplicate member {name:?}")));
                    }
                    access.next_value::<de::IgnoredAny>()?;
                    continue;
                }
                None => {
                    if strict {
                        let folded = fold(&name);
                        return Err(match MEMBERS.iter().find(|m| **m == folded) {
                            Some(member) => invalid(format_args!(
                                "member {name:?} differs from {member:?} only in case"
                            )),
                            None => invalid(format_args!("unknown member {name:?}")),
                        });
                    }
                    access.next_value::<de::IgnoredAny>()?;
                    continue;
                }
            };
            seen[slot] = true;
            let raw: &'de RawValue = access.next_value()?;
            match MEMBERS[slot] {
                "jsonrpc" => version_ok = raw.get() == "\"2.0\"",
                "id" => envelope.id = Some(raw),
                "method" => {
                    let text = raw.get();
                    if !text.starts_with('"') {
                        if strict {
                            return Err(invalid("\"method\" must be a string"));
                        }
                        continue;
                    }
                    let inner = &text[1..text.len() - 1];
                    envelope.method = Some(if inner.contains('\\') {
                        Cow::Owned(serde_json::from_str::<String>(text).map_err(invalid)?)
                    } else {
                        Cow::Borrowed(inner)
                    });
                }
                "params" => envelope.params = Some(raw),
                "result" => envelope.result = Some(raw),
                _ => envelope.error = Some(raw),
            }
        }
        if strict && !version_ok {
            return Err(invalid("\"jsonrpc\" must be \"2.0\""));
        }
        Ok(envelope)
    }
}

/// The members of a JSON-RPC 2.0 message (all lower case, so each is its own folding).
const MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// An id (its JSON text, as the envelope reader found it) as a map key: its canonical JSON
/// text (`canonical.rs`), so `1` and `1.0`, or one string escaped two ways, are one id — and
/// `9000000000000001` and `9000000000000000` are two. Text that does not read as a plain
/// value (a lone surrogate) is its own key.
pub fn id_key(text: &str) -> String {
    // The common ids are already canonical: a plain integer, or a string without escapes
    // (JSON strings hold no raw control characters, so there is nothing to re-escape).
    if let Ok(i) = text.parse::<i64>() {
        return i.to_string();
    }
    if text.len() >= 2 && text.starts_with('"') && !text.contains('\\') {
        return text.to_string();
    }
    match crate::strict_json::parse_strict(text) {
        Ok(value) => toolgate_policy::canonical::canonical_json(&value),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn strict(text: &str) -> Result<Envelope<'_>, EnvelopeError> {
        Envelope::parse(text, Strictness::Strict)
    }

    #[test]
    fn reads_requests_notifications_responses() {
        let e = strict(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}"#)
            .unwrap();
        assert_eq!(e.kind(), Some(Kind::Request));
        assert_eq!(e.method.as_deref(), Some("tools/call"));
        assert_eq!(e.params.unwrap().get(), r#"{"name":"x"}"#);
        let e = strict(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(e.kind(), Some(Kind::Notification));
        let e = strict(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(e.kind(), Some(Kind::Response));
    }

    #[test]
    fn escaped_method_names_are_unescaped() {
        let e = strict(r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call"}"#).unwrap();
        assert_eq!(e.method.as_deref(), Some("tools/call"));
    }

    #[test]
    fn refuses_ambiguity() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","param\u017f":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"Params":{},"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0"}"#,
            r#"[1]"#,
        ];
        for case in cases {
            assert!(
                matches!(strict(case), Err(EnvelopeError::Invalid(_))),
                "{case}"
            );
        }
    }

    #[test]
    fn parse_errors_are_distinct() {
        assert!(matches!(strict("{bad"), Err(EnvelopeError::Parse(_))));
        assert!(matches!(
            strict(r#"{"jsonrpc":"2.0","id":1,"method":"x"} x"#),
            Err(EnvelopeError::Parse(_))
        ));
    }

    #[test]
    fn lenient_mode_routes_server_messages() {
        let e = Envelope::parse(
            r#"{"jsonrpc":"2.0","id":1,"result":{},"x-debug":1,"id":9}"#,
            Strictness::Lenient,
        )
        .unwrap();
        assert_eq!(e.id.unwrap().get(), "1");
    }

    #[test]
    fn id_keys_are_canonical() {
        let a: &RawValue = serde_json::from_str("1.0").unwrap();
        let b: &RawValue = serde_json::from_str("1").unwrap();
        assert_eq!(id_key(a.get()), id_key(b.get()));
        let s: &RawValue = serde_json::from_str(r#""\u0061""#).unwrap();
        assert_eq!(id_key(s.get()), "\"a\"");
        let big: &RawValue = serde_json::from_str("9000000000000001").unwrap();
        let near: &RawValue = serde_json::from_str("9000000000000000").unwrap();
        assert_ne!(id_key(big.get()), id_key(near.get()));
    }
}
