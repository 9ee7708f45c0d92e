//! toolgate's message core: the JSON-RPC envelope, the pipeline that decides `tools/call`
//! and filters `tools/list`, the transports that carry messages to and from it, and the
//! audit log.
//!
//! Data flows one way through it: a transport frames bytes into messages, the pipeline
//! checks and decides them on one policy snapshot, and the other transport writes them out.
//! Policy text is never interpreted here — `toolgate-policy` does that — and no transport
//! contains policy logic.

pub mod accept;
pub mod admin;
pub mod aggregate;
pub mod approvals;
pub mod audit;
pub mod authority;
pub mod console;
pub mod envelope;
pub mod framing;
pub mod gateway;
pub mod http;
pub(crate) mod idempotency;
pub mod message;
pub mod metrics;
pub mod oauth;
pub mod otel;
pub mod pinning;
pub mod pipeline;
pub mod reload;
pub mod secret_file;
pub mod session;
pub mod stdio;
pub mod strict_json;
pub mod tls;
pub mod tool_listing;
pub(crate) mod upstream_ids;
pub mod wire;

pub use gateway::{FailMode, Gateway, GatewayOptions};
pub use session::Session;
