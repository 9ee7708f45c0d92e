//! What leaves the pipeline, with what the transport on the other side routes it by.

use serde_json::value::RawValue;

use super::{Method, ServerMessage};
use crate::envelope::id_key;

/// A message on its way to the client, with what its transport routes it by.
#[derive(Debug, Clone)]
pub struct ToClient {
    pub text: String,
    pub route: Route,
    /// An answer toolgate gave a call itself (a denial, a refusal): the server never saw
    /// it. A gateway in front of this one (a gateway config's) gives back what it reserved
    /// for the call.
    pub unrun: bool,
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
                id_key: id.map_or_else(|| "null".to_string(), |id| id_key(id.get())),
                error,
            },
            text,
            unrun: false,
        }
    }

    /// The same answer, marked as given without the server.
    pub fn unrun(mut self) -> ToClient {
        self.unrun = true;
        self
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
            unrun: false,
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
            unrun: false,
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
