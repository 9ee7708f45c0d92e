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
//!
//! `client.rs` reads client messages, `server.rs` server messages; `outbound.rs` holds what
//! leaves the pipeline; this file holds what they share: the message text with the positions
//! of its parts, method names, and id keys.

mod client;
mod outbound;
mod server;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::OnceLock;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::strict_json::{parse_strict, StrictJsonError};

pub use client::{ClientFrame, ClientMessage, ClientRequest, Unreadable};
pub use outbound::{Route, ToClient, ToServer};
pub use server::ServerMessage;

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
    ResourcesRead,
    PromptsList,
    PromptsGet,
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
            "resources/read" => Method::ResourcesRead,
            "prompts/list" => Method::PromptsList,
            "prompts/get" => Method::PromptsGet,
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
            Method::ResourcesRead => "resources/read",
            Method::PromptsList => "prompts/list",
            Method::PromptsGet => "prompts/get",
            Method::Other(name) => name,
        }
    }
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
    slice_span(text, part?.get())
}

/// `text` with `part` (a slice of it, such as a member's value a reader borrowed) replaced
/// by `new`; none when `part` is not a slice of `text`.
pub(crate) fn replace_slice(text: &str, part: &str, new: &str) -> Option<String> {
    Some(splice(text, slice_span(text, part)?, new))
}

fn splice(text: &str, span: Range<usize>, new: &str) -> String {
    let mut out = String::with_capacity(text.len() + new.len());
    out.push_str(&text[..span.start]);
    out.push_str(new);
    out.push_str(&text[span.end..]);
    out
}

/// Where a slice of `text` lies in it; none when it is not a slice of it.
fn slice_span(text: &str, part: &str) -> Option<Range<usize>> {
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
        match self.id.clone() {
            Some(span) => self.spliced(span, new),
            None => self.text.clone(),
        }
    }

    fn with_replaced(&self, part: &str, new: &str) -> Option<String> {
        replace_slice(&self.text, part, new)
    }

    fn spliced(&self, span: Range<usize>, new: &str) -> String {
        splice(&self.text, span, new)
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
