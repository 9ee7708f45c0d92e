//! Spans of the client requests other than `tools/call` (a call's span, with its decision,
//! is made where the call ends: `call_end.rs`): `initialize`, `tools/list`, `prompts/get`,
//! `resources/read` and the rest. Each starts when the request is forwarded (continuing the
//! `_meta.traceparent` the client sent) and ends when the server's answer arrives; a request
//! that ends without one (cancelled, or the server went away) is not traced.

use serde::Deserialize;

use crate::gateway::Gateway;
use crate::message::{ClientRequest, Method, ServerMessage};
use crate::otel::{AttributeValue::Str, CallSpan, FinishedSpan};
use crate::session::Session;

/// Longest prompt name put in a span's name; longer ones are cut (span names should name a
/// kind of operation, and a client chooses the name).
const MAX_TARGET_CHARS: usize = 64;

/// A forwarded request's span, kept with its upstream id until the answer.
pub(crate) struct RequestSpan {
    span: CallSpan,
    method: String,
    /// `prompts/get`: the prompt's name; `resources/read`: the resource's URI.
    target: Option<String>,
}

/// What a span reads from a request's params, leniently: only tracing depends on it.
#[derive(Deserialize, Default)]
struct Params {
    #[serde(rename = "_meta", default)]
    meta: Meta,
    name: Option<String>,
    uri: Option<String>,
}

#[derive(Deserialize, Default)]
struct Meta {
    traceparent: Option<String>,
}

impl Gateway {
    /// A span for a request being forwarded, when tracing is on and samples it.
    pub(crate) fn start_request_span(&self, request: &ClientRequest) -> Option<Box<RequestSpan>> {
        let tracer = self.options.tracer.as_ref()?;
        if request.method == Method::ToolsCall {
            return None;
        }
        let params: Params = request
            .params()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let span = tracer.start_call(params.meta.traceparent.as_deref(), request.id.get())?;
        let target = match &request.method {
            Method::PromptsGet => params.name,
            Method::ResourcesRead => params.uri,
            _ => None,
        };
        Some(Box::new(RequestSpan {
            span,
            method: request.method.as_str().to_string(),
            target,
        }))
    }

    /// Ends a request's span with the server's answer.
    pub(crate) fn finish_request_span(
        &self,
        session: &Session,
        span: RequestSpan,
        answer: &ServerMessage,
    ) {
        let Some(tracer) = &self.options.tracer else {
            return;
        };
        let RequestSpan {
            span,
            method,
            target,
        } = span;
        let error = answer.is_error().then(|| {
            answer
                .error_code()
                .map_or("error".to_string(), |c| c.to_string())
        });
        let mut name = method.clone();
        let mut attributes = vec![
            ("mcp.method.name", Str(method.clone())),
            ("mcp.session.id", Str(session.id.clone())),
            ("jsonrpc.request.id", Str(span.request_id)),
        ];
        match (method.as_str(), target) {
            ("prompts/get", Some(prompt)) => {
                name = format!(
                    "{method} {}",
                    prompt.chars().take(MAX_TARGET_CHARS).collect::<String>()
                );
                attributes.push(("gen_ai.prompt.name", Str(prompt)));
            }
            ("resources/read", Some(uri)) => attributes.push(("mcp.resource.uri", Str(uri))),
            _ => {}
        }
        if let Some(version) = session.protocol_version() {
            attributes.push(("mcp.protocol.version", Str(version)));
        }
        if let Some(error) = &error {
            attributes.push(("error.type", Str(error.clone())));
        }
        if let Some(server) = self.audit.server() {
            attributes.push(("toolgate.server", Str(server.into())));
        }
        tracer.finish(FinishedSpan {
            context: span.context,
            parent: span.parent,
            name,
            start_unix_nanos: span.start_unix_nanos,
            end_unix_nanos: crate::otel::unix_nanos(),
            attributes,
            error,
        });
    }
}
