//! Client messages, read strictly where they enter: the one read of their text.

use serde_json::value::RawValue;
use serde_json::Value;

use super::{span, trimmed_line, Body, Method};
use crate::envelope::{id_key, Envelope, EnvelopeError, Kind, Strictness};
use crate::strict_json::StrictJsonError;

/// A message from the client, read strictly: no unknown, duplicate or case-colliding
/// members, a `"jsonrpc": "2.0"`, and a kind (request, notification or response).
#[derive(Debug)]
pub struct ClientMessage {
    kind: Kind,
    id: Option<Box<RawValue>>,
    pub(crate) method: Option<Method>,
    body: Body,
}

/// A client request: a message with an id and a method.
#[derive(Debug)]
pub struct ClientRequest {
    /// The id as the client wrote it.
    pub id: Box<RawValue>,
    /// The id as a map key (`envelope::id_key`).
    pub key: String,
    pub method: Method,
    body: Body,
}

/// A client message the strict reader refused, with what could still be read of it so the
/// refusal can be answered (and, over HTTP, waited for).
#[derive(Debug)]
pub struct Unreadable {
    pub error: EnvelopeError,
    /// The id, when the message reads as an object with one (read leniently).
    pub id: Option<Box<RawValue>>,
    /// What it reads as, leniently: a notification's refusal has nobody waiting for it.
    pub kind: Option<Kind>,
    /// Whether it names a method, read leniently.
    pub has_method: bool,
}

/// What one client write carries: one message, or a batch of them.
#[derive(Debug)]
pub enum ClientFrame {
    /// Nothing but whitespace.
    Empty,
    One(Result<ClientMessage, Unreadable>),
    /// A JSON array; `Err` when it is not one that can be read at all.
    Batch(Result<Vec<Result<ClientMessage, Unreadable>>, String>),
}

impl ClientFrame {
    /// Reads what the client wrote: the one read of its text.
    pub fn read(text: String) -> ClientFrame {
        let text = trimmed_line(text);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return ClientFrame::Empty;
        }
        if !trimmed.starts_with('[') {
            return ClientFrame::One(ClientMessage::read_line(text));
        }
        let elements: Vec<&RawValue> = match serde_json::from_str(trimmed) {
            Ok(elements) => elements,
            Err(e) => return ClientFrame::Batch(Err(e.to_string())),
        };
        ClientFrame::Batch(Ok(elements
            .into_iter()
            .map(|element| ClientMessage::read(element.get().to_string()))
            .collect()))
    }
}

impl ClientMessage {
    /// Reads one message (an object) strictly.
    pub fn read(text: String) -> Result<ClientMessage, Unreadable> {
        ClientMessage::read_line(trimmed_line(text))
    }

    /// [`ClientMessage::read`] of text already on one line and trimmed.
    fn read_line(text: String) -> Result<ClientMessage, Unreadable> {
        let envelope = match Envelope::parse(&text, Strictness::Strict) {
            Ok(envelope) => envelope,
            Err(error) => return Err(Unreadable::of(&text, error)),
        };
        // The strict reader only accepts messages of a kind.
        let kind = envelope.kind().unwrap_or(Kind::Notification);
        let id = envelope.id.map(RawValue::to_owned);
        let method = envelope.method.as_deref().map(Method::of);
        let (id_at, params) = (span(&text, envelope.id), span(&text, envelope.params));
        drop(envelope);
        let body = Body::new(text, id_at, params);
        Ok(ClientMessage {
            kind,
            id,
            method,
            body,
        })
    }

    pub fn text(&self) -> &str {
        &self.body.text
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The id as the client wrote it.
    pub fn id(&self) -> Option<&RawValue> {
        self.id.as_deref()
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_ref().map(Method::as_str)
    }

    /// The params' JSON text.
    pub fn params(&self) -> Option<&str> {
        self.body.params()
    }

    pub fn into_text(self) -> String {
        self.body.text
    }

    /// The params as the strict reader reads them (read once, then kept).
    pub fn strict_params(&self) -> Option<&Result<Value, StrictJsonError>> {
        self.body.strict_params()
    }

    /// `params._meta.progressToken`, as canonical JSON.
    pub fn progress_token(&self) -> Option<String> {
        self.body.progress_token()
    }

    /// The message as a request, when it is one.
    pub fn into_request(self) -> Result<ClientRequest, Box<ClientMessage>> {
        match (self.kind, self.id, self.method) {
            (Kind::Request, Some(id), Some(method)) => Ok(ClientRequest {
                key: id_key(id.get()),
                id,
                method,
                body: self.body,
            }),
            (kind, id, method) => Err(Box::new(ClientMessage {
                kind,
                id,
                method,
                body: self.body,
            })),
        }
    }
}

impl ClientRequest {
    pub fn text(&self) -> &str {
        &self.body.text
    }

    /// The params' JSON text.
    pub fn params(&self) -> Option<&str> {
        self.body.params()
    }

    /// The text with the id replaced by `new` (JSON text), in place.
    pub fn with_id(&self, new: &str) -> String {
        self.body.with_id(new)
    }

    /// The params as the strict reader reads them (read once, then kept).
    pub fn strict_params(&self) -> Option<&Result<Value, StrictJsonError>> {
        self.body.strict_params()
    }

    /// The text with `part` (a slice of it, such as a member's value) replaced by `new`;
    /// none when `part` is not a slice of the text.
    pub fn with_part_replaced(&self, part: &str, new: &str) -> Option<String> {
        self.body.with_replaced(part, new)
    }

    /// The params as the strict reader reads them, taken out (the pipeline takes them to
    /// decide the call; a layer before it may have read them already).
    pub fn take_strict_params(&mut self) -> Option<Result<Value, StrictJsonError>> {
        self.body.take_strict_params()
    }
}

impl Unreadable {
    fn of(text: &str, error: EnvelopeError) -> Unreadable {
        // Answered with the request's id when it can be read at all.
        let lenient = Envelope::parse(text, Strictness::Lenient).ok();
        Unreadable {
            error,
            id: lenient.as_ref().and_then(|e| e.id).map(RawValue::to_owned),
            has_method: lenient.as_ref().is_some_and(|e| e.method.is_some()),
            kind: lenient.and_then(|e| e.kind()),
        }
    }
}
