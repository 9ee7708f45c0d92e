//! A JSON-RPC message, read once where it enters the gateway and passed on typed.
//!
//! A transport turns the bytes it framed into a [`ClientFrame`] (from the client, read
//! strictly) or a [`ServerMessage`] (from the server, read leniently); the pipeline, the
//! routing and settlement all work on what was read there. Messages leave the pipeline as a
//! [`ToClient`] or a [`ToServer`], which carry what the transport on the other side routes
//! them by, so no layer reads the text of a message another layer already read.
//!
//! The text is kept as it came (so an unchanged message is relayed byte for byte), but on one
//! line: in JSON text a raw line break can only be whitespace (strings must escape them), so
//! each is replaced by a space, which changes no meaning and moves no byte.

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::envelope::{id_key, Envelope, EnvelopeError, Kind, Strictness};
use crate::strict_json::{parse_strict, StrictJsonError};

/// A method name: the ones the gateway acts on or routes by are variants, so reading them
/// allocates nothing; any other is kept by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    ToolsCall,
    ToolsList,
    Initialize,
    Initialized,
    Cancelled,
    Progress,
    Other(Box<str>),
}

impl Method {
    pub fn of(name: &str) -> Method {
        match name {
            "tools/call" => Method::ToolsCall,
            "tools/list" => Method::ToolsList,
            "initialize" => Method::Initialize,
            "notifications/initialized" => Method::Initialized,
            "notifications/cancelled" => Method::Cancelled,
            "notifications/progress" => Method::Progress,
            other => Method::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::ToolsCall => "tools/call",
            Method::ToolsList => "tools/list",
            Method::Initialize => "initialize",
            Method::Initialized => "notifications/initialized",
            Method::Cancelled => "notifications/cancelled",
            Method::Progress => "notifications/progress",
            Method::Other(name) => name,
        }
    }
}

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

/// A message's text and where its parts lie in it (positions, so the text can move).
#[derive(Debug)]
struct Body {
    text: String,
    id: Option<Range<usize>>,
    params: Option<Range<usize>>,
    /// The params read by the strict reader, once, by whichever layer needs them first.
    strict_params: OnceLock<Result<Value, StrictJsonError>>,
}

/// Where a part the envelope reader borrowed lies in the text it read.
fn span(text: &str, part: Option<&RawValue>) -> Option<Range<usize>> {
    let part = part?.get();
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= text.len()).then_some(start..end)
}

impl Body {
    fn new(text: String, id: Option<Range<usize>>, params: Option<Range<usize>>) -> Body {
        Body {
            text,
            id,
            params,
            strict_params: OnceLock::new(),
        }
    }

    fn params(&self) -> Option<&str> {
        self.params.clone().map(|span| &self.text[span])
    }

    fn strict_params(&self) -> Option<&Result<Value, StrictJsonError>> {
        let params = self.params()?;
        Some(self.strict_params.get_or_init(|| parse_strict(params)))
    }

    fn take_strict_params(&mut self) -> Option<Result<Value, StrictJsonError>> {
        self.strict_params()?;
        self.strict_params.take()
    }

    /// `params._meta.progressToken`, as canonical JSON. Params that cannot hold one are not
    /// read for it (routing by token is rare; most requests never need their params read).
    fn progress_token(&self) -> Option<String> {
        let params = self.params()?;
        let may_hold = params.contains("progressToken") || params.contains('\\');
        if !may_hold && self.strict_params.get().is_none() {
            return None;
        }
        let token = self
            .strict_params()?
            .as_ref()
            .ok()?
            .get("_meta")?
            .get("progressToken")?;
        Some(toolgate_policy::canonical::canonical_json(token))
    }

    fn with_id(&self, new: &str) -> String {
        let Some(span) = self.id.clone() else {
            return self.text.clone();
        };
        let mut out = String::with_capacity(self.text.len() + new.len());
        out.push_str(&self.text[..span.start]);
        out.push_str(new);
        out.push_str(&self.text[span.end..]);
        out
    }
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
                key: id_key(&id),
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

/// A message from the server, read leniently: it is only routed, never decided on.
#[derive(Debug)]
pub struct ServerMessage {
    kind: Option<Kind>,
    method: Option<Method>,
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
        let (result, error) = (span(&text, envelope.result), span(&text, envelope.error));
        let (id_at, params) = (span(&text, envelope.id), span(&text, envelope.params));
        drop(envelope);
        let body = Body::new(text, id_at, params);
        Some(ServerMessage {
            kind,
            method,
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

    /// Whether this is the answer to the request with id key `key` (an error with id
    /// `null` answers nothing: it is a transport refusing a message).
    pub fn answers(&self, key: &str) -> bool {
        self.kind == Some(Kind::Response) && self.id().is_some_and(|id| id_key_of(id) == key)
    }

    /// The text with the id replaced by `new` (JSON text), in place.
    pub fn with_id(&self, new: &str) -> String {
        self.body.with_id(new)
    }
}

/// The id key of an id's JSON text.
pub fn id_key_of(id: &str) -> String {
    // The ids the gateway mints, and most others, are plain integers: already their key.
    if let Ok(n) = id.parse::<i64>() {
        return n.to_string();
    }
    match serde_json::from_str::<&RawValue>(id) {
        Ok(raw) => id_key(raw),
        Err(_) => id.to_string(),
    }
}

/// The text on one line and without surrounding whitespace: raw line breaks (whitespace,
/// in JSON) become spaces; a pretty-printed body is rare, so this rarely copies.
fn trimmed_line(text: String) -> String {
    let text = if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        text.replace(['\n', '\r'], " ")
    } else {
        text
    };
    let trimmed = text.trim();
    if trimmed.len() == text.len() {
        text
    } else {
        trimmed.to_string()
    }
}

/// A message on its way to the client, with what its transport routes it by.
#[derive(Debug, Clone)]
pub struct ToClient {
    pub text: String,
    pub route: Route,
}

/// Where a client-bound message belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The answer to the client's request with this id key (`"null"`: the answer to a
    /// message whose id could not be read).
    Answer {
        id_key: String,
        /// `error.code`, when the answer is a JSON-RPC error (`Some(None)`: an error
        /// without a readable code).
        error: Option<Option<i64>>,
    },
    /// A progress notification for the request that sent this token (canonical JSON).
    Progress(String),
    /// Anything else: server requests and notifications, toolgate's own notices.
    Other,
}

impl ToClient {
    /// An answer toolgate (or the server) gives to the request with id `id`.
    pub fn answer(text: String, id: Option<&RawValue>, error: Option<Option<i64>>) -> ToClient {
        ToClient {
            route: Route::Answer {
                id_key: id.map_or_else(|| "null".to_string(), id_key),
                error,
            },
            text,
        }
    }

    /// A JSON-RPC error toolgate answers with.
    pub fn error(text: String, id: Option<&RawValue>, code: crate::wire::ErrorCode) -> ToClient {
        ToClient::answer(text, id, Some(Some(code as i64)))
    }

    /// A notice of toolgate's own (not an answer).
    pub fn notice(text: String) -> ToClient {
        ToClient {
            text,
            route: Route::Other,
        }
    }

    /// A server request or notification, relayed as it came.
    pub fn relay(message: ServerMessage) -> ToClient {
        let route = match message.method {
            Some(Method::Progress) => progress_token_of(message.params())
                .map(Route::Progress)
                .unwrap_or(Route::Other),
            _ => Route::Other,
        };
        ToClient {
            text: message.into_text(),
            route,
        }
    }

    pub fn is_answer(&self) -> bool {
        matches!(self.route, Route::Answer { .. })
    }
}

/// `params.progressToken` of a progress notification, canonical.
fn progress_token_of(params: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "progressToken")]
        progress_token: serde_json::Value,
    }
    let params: Params = serde_json::from_str(params?).ok()?;
    Some(toolgate_policy::canonical::canonical_json(
        &params.progress_token,
    ))
}

/// A message on its way to the server, with what an HTTP link needs to carry it.
#[derive(Debug, Clone)]
pub struct ToServer {
    pub text: String,
    /// The id the gateway minted for it, when it is a request (`upstream_ids.rs`).
    pub request: Option<u64>,
    pub method: Option<Method>,
}

impl ToServer {
    /// A request under the id `upstream` the gateway minted.
    pub fn request(text: String, upstream: u64, method: Method) -> ToServer {
        ToServer {
            text,
            request: Some(upstream),
            method: Some(method),
        }
    }

    /// A notification.
    pub fn notification(text: String, method: Method) -> ToServer {
        ToServer {
            text,
            request: None,
            method: Some(method),
        }
    }

    /// A client's answer to a server request.
    pub fn response(text: String) -> ToServer {
        ToServer {
            text,
            request: None,
            method: None,
        }
    }

    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_client_message_is_read_once_and_its_id_replaced_in_place() {
        let m = ClientMessage::read(
            "{\"jsonrpc\":\"2.0\",\n\"id\": \"a\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\n"
                .to_string(),
        )
        .unwrap();
        assert_eq!(m.kind(), Kind::Request);
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(m.params(), Some("{\"name\":\"x\"}"));
        assert!(!m.text().contains('\n'));
        let m = m.into_request().unwrap();
        assert_eq!(m.key, "\"a\"");
        assert_eq!(
            m.with_id("7"),
            "{\"jsonrpc\":\"2.0\", \"id\": 7,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}"
        );
    }

    #[test]
    fn refused_messages_keep_their_id_for_the_answer() {
        let e =
            ClientMessage::read(r#"{"jsonrpc":"2.0","id":4,"method":"ping","Method":"x"}"#.into())
                .unwrap_err();
        assert!(matches!(e.error, EnvelopeError::Invalid(_)));
        assert_eq!(e.id.unwrap().get(), "4");
        let e =
            ClientMessage::read(r#"{"jsonrpc":"2.0","method":"ping","x":1}"#.into()).unwrap_err();
        assert_eq!(e.kind, Some(Kind::Notification));
        assert!(ClientMessage::read("{bad".into()).unwrap_err().id.is_none());
    }

    #[test]
    fn frames_are_single_messages_or_batches() {
        assert!(matches!(
            ClientFrame::read(" \n".into()),
            ClientFrame::Empty
        ));
        let ClientFrame::Batch(Ok(items)) = ClientFrame::read(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x","y":1}]"#
                .into(),
        ) else {
            panic!("not a batch")
        };
        assert!(items[0].is_ok() && items[1].is_err());
        assert!(matches!(
            ClientFrame::read("[1,".into()),
            ClientFrame::Batch(Err(_))
        ));
    }

    #[test]
    fn progress_tokens_are_canonical_and_read_only_when_present() {
        let m = |params: &str| {
            ClientMessage::read(format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#
            ))
            .unwrap()
        };
        assert_eq!(m(r#"{"name":"x"}"#).progress_token(), None);
        assert_eq!(
            m(r#"{"name":"x","_meta":{"progressToken":1.0}}"#).progress_token(),
            Some("1".into())
        );
        assert_eq!(
            m(r#"{"name":"x","_meta":{"progress\u0054oken":"t"}}"#).progress_token(),
            Some("\"t\"".into())
        );
    }

    #[test]
    fn server_messages_are_read_leniently_and_routed() {
        let m = ServerMessage::read(
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"},"x":1}"#.into(),
        )
        .unwrap();
        assert_eq!(m.kind(), Some(Kind::Response));
        assert!(m.answers("3") && !m.answers("4"));
        assert_eq!(m.error_code(), Some(-32601));
        assert_eq!(
            m.with_id("\"c\""),
            r#"{"jsonrpc":"2.0","id":"c","error":{"code":-32601,"message":"no"},"x":1}"#
        );
        let note = ServerMessage::read(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#.into(),
        )
        .unwrap();
        assert_eq!(ToClient::relay(note).route, Route::Progress("\"t\"".into()));
        assert!(ServerMessage::read("starting up...".into()).is_none());
    }
}
