//! The HTTP transports: a listener serving Streamable HTTP (`/mcp`) and legacy HTTP+SSE
//! (`/sse` + `/message`) to clients, upstream links to stdio children, Streamable HTTP and
//! legacy SSE servers, and the stdio → HTTP bridge.
//!
//! Like the stdio transport, these only move messages: every client message goes through
//! [`Gateway::from_client`](crate::Gateway::from_client) and every server message through
//! [`Gateway::from_server`](crate::Gateway::from_server), so denials, hidden tools, counters
//! and audit behave the same whichever transports are at either end. What the HTTP side adds
//! is its own: sessions, streams, Host/Origin checks, bearer-token identities and OAuth access
//! tokens.

pub mod bridge;
mod guard;
mod legacy_server;
mod listener;
mod oauth_challenge;
pub mod options;
mod reply;
mod sessions;
mod spare;
pub mod sse;
mod streamable_server;
pub(crate) mod upstream;
mod v2026_07_28;

pub use guard::{Guard, Refusal};
pub use listener::{run, HttpServer, ServerHandle};
pub use options::{
    parse_header, Endpoints, HttpUpstream, ListenerOptions, OptionsError, UpstreamProtocol,
    UpstreamTarget,
};
pub use upstream::HttpClient;
