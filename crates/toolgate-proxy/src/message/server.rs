//! Server messages, read leniently where they enter: they are only routed.

use std::ops::Range;

use super::{span, trimmed_line, Body, Method};
use crate::envelope::{id_key, Envelope, Kind, Strictness};

/// A message from the server, read leniently: it is only routed, never decided on.
#[derive(Debug)]
pub struct ServerMessage {
    kind: Option<Kind>,
    pub(super) method: Option<Method>,
    /// The id as a map key, for a response (what it is routed by).
    answer_key: Option<String>,
    result: Option<Range<usize>>,
    error: Option<Range<usize>>,
    body: Body,
}

impl ServerMessage {
    /// Reads one message; `None` when the text is not a JSON-RPC object at all.
    pub fn read(text: String) -> Option<ServerMessage> {
        let text = trimmed_line(text);
        let envelope = Envelope::parse(&text, Strictness::Lenient).ok()?;
        let kind = envelope.kind();
        let method = envelope.method.as_deref().map(Method::of);
        let answer_key = envelope
            .id
            .filter(|_| kind == Some(Kind::Response))
            .map(|id| id_key(id.get()));
        let (result, error) = (span(&text, envelope.result), span(&text, envelope.error));
        let (id_at, params) = (span(&text, envelope.id), span(&text, envelope.params));
        drop(envelope);
        let body = Body::new(text, id_at, params);
        Some(ServerMessage {
            kind,
            method,
            answer_key,
            result,
            error,
            body,
        })
    }

    pub fn text(&self) -> &str {
        &self.body.text
    }

    pub fn into_text(self) -> String {
        self.body.text
    }

    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// The id's JSON text.
    pub fn id(&self) -> Option<&str> {
        self.body.id.clone().map(|span| &self.body.text[span])
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_ref().map(Method::as_str)
    }

    pub fn params(&self) -> Option<&str> {
        self.body.params()
    }

    pub fn result(&self) -> Option<&str> {
        self.result.clone().map(|span| &self.body.text[span])
    }

    /// The `error` member's JSON text.
    pub fn error(&self) -> Option<&str> {
        self.error.clone().map(|span| &self.body.text[span])
    }

    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// `error.code`, when the message is an error with a readable code.
    pub fn error_code(&self) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct Error {
            code: i64,
        }
        let error = &self.body.text[self.error.clone()?];
        serde_json::from_str::<Error>(error).ok().map(|e| e.code)
    }

    /// A response's id as a map key (`envelope::id_key`), computed once when it was read.
    pub fn answer_key(&self) -> Option<&str> {
        self.answer_key.as_deref()
    }

    /// Whether this is the answer to the request with id key `key` (an error with id
    /// `null` answers nothing: it is a transport refusing a message).
    pub fn answers(&self, key: &str) -> bool {
        self.answer_key.as_deref() == Some(key)
    }

    /// The text with the id replaced by `new` (JSON text), in place.
    pub fn with_id(&self, new: &str) -> String {
        self.body.with_id(new)
    }
}
