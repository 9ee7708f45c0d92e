//! Settings of the HTTP transports: where the upstream is, and the listener's limits and
//! safety defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// How toolgate reaches the MCP server.
#[derive(Debug, Clone)]
pub enum UpstreamTarget {
    /// A stdio server: one child process per client session.
    Command(Arc<crate::stdio::ServerCommand>),
    /// A server reached over HTTP.
    Http(Arc<HttpUpstream>),
    /// Many servers behind one gateway config: each client session gets an aggregator of
    /// its own, with its own connection to every server (`aggregate/`).
    Aggregate(Arc<crate::aggregate::Servers>),
}

/// Which HTTP protocol an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// Streamable HTTP, falling back to legacy HTTP+SSE when the handshake is refused.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// The 2024-11-05 HTTP+SSE transport (Intercept's `--transport sse`).
    LegacySse,
}

/// An upstream MCP server over HTTP.
#[derive(Clone)]
pub struct HttpUpstream {
    pub url: reqwest::Url,
    pub protocol: UpstreamProtocol,
    /// `--header` values, sent on every upstream request. Nothing the client sent is.
    pub headers: HeaderMap,
    /// How long to wait for an upstream's response headers.
    pub connect_timeout: Duration,
    /// A client-credentials token toolgate fetches for this upstream (`upstream_auth`),
    /// sent as `Authorization: Bearer` on every request.
    pub token: Option<std::sync::Arc<crate::oauth::ClientCredentials>>,
}

/// The URL may carry a credential (userinfo, a token in the query): Debug shows only what
/// [`display_url`] shows, and the headers' values never.
impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("url", &display_url(&self.url))
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A URL as it may appear in logs and messages: scheme, host, port and path; a user, a
/// password, the query and the fragment (where tokens travel) are left out.
pub fn display_url(url: &reqwest::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    shown
}

impl HttpUpstream {
    pub fn new(url: &str, protocol: UpstreamProtocol) -> Result<HttpUpstream, OptionsError> {
        // The text is not echoed back: a URL that does not parse may still hold a token.
        let url = reqwest::Url::parse(url)
            .map_err(|e| OptionsError::Url(format!("the upstream URL does not parse: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OptionsError::Url(format!(
                "{}: only http and https upstreams are supported",
                display_url(&url)
            )));
        }
        Ok(HttpUpstream {
            url,
            protocol,
            headers: HeaderMap::new(),
            connect_timeout: Duration::from_secs(30),
            token: None,
        })
    }

    /// Adds one `--header "Name: value"`.
    pub fn add_header(&mut self, spec: &str) -> Result<(), OptionsError> {
        let (name, value) = parse_header(spec)?;
        self.headers.append(name, value);
        Ok(())
    }
}

/// Reads a `Name: value` header argument.
pub fn parse_header(spec: &str) -> Result<(HeaderName, HeaderValue), OptionsError> {
    let (name, value) = spec
        .split_once(':')
        .ok_or_else(|| OptionsError::Header(format!("{spec:?} is not \"Name: value\"")))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| OptionsError::Header(format!("{:?} is not a header name", name.trim())))?;
    let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
        OptionsError::Header(format!(
            "the value of {name} has characters a header cannot hold"
        ))
    })?;
    if name == reqwest::header::AUTHORIZATION || name.as_str().contains("key") {
        value.set_sensitive(true);
    }
    Ok((name, value))
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("invalid --upstream URL {0}")]
    Url(String),
    #[error("invalid --header: {0}")]
    Header(String),
}

/// Which MCP HTTP transports the listener serves to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Streamable HTTP at `/mcp`.
    pub streamable: bool,
    /// Legacy HTTP+SSE at `/sse` and `/message`.
    pub legacy_sse: bool,
}

/// The listener's settings. The defaults are the safe ones: loopback only, localhost
/// Host/Origin only, bounded sizes, sessions and time.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub bind: SocketAddr,
    pub endpoints: Endpoints,
    /// Host header values accepted (host names, with or without port). Empty: derived from
    /// the bind address (localhost names when bound to loopback).
    pub allowed_hosts: Vec<String>,
    /// Origins accepted on browser requests (`scheme://host[:port]`); requests without an
    /// Origin header are not browsers and pass. Empty: localhost origins only.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    pub max_sessions: usize,
    /// Sessions one identity may hold (when the policy has `identities`).
    pub max_sessions_per_identity: usize,
    /// Live child processes (stdio upstreams), including ones being stopped.
    pub max_children: usize,
    /// A session with no request and no open stream for this long is ended.
    pub session_idle_timeout: Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a POST answers with plain JSON before it switches to an SSE stream (which
    /// then carries keep-alive comments), when the client accepts both.
    pub json_window: Duration,
    pub keepalive_interval: Duration,
    pub shutdown_grace: Duration,
    pub max_line_bytes: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            endpoints: Endpoints {
                streamable: true,
                legacy_sse: true,
            },
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: 8 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_sessions: 256,
            max_sessions_per_identity: 64,
            max_children: 256,
            session_idle_timeout: Duration::from_secs(30 * 60),
            header_timeout: Duration::from_secs(10),
            json_window: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(5),
            max_line_bytes: crate::framing::DEFAULT_MAX_LINE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        let url =
            reqwest::Url::parse("https://bot:s3cret@mcp.example.com:8443/mcp?token=abc#x").unwrap();
        assert_eq!(display_url(&url), "https://mcp.example.com:8443/mcp?…");
        let upstream = HttpUpstream::new(url.as_str(), UpstreamProtocol::Auto).unwrap();
        let debug = format!("{upstream:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("abc"),
            "{debug}"
        );
        let error = HttpUpstream::new("https://bot:s3cret@[bad/mcp", UpstreamProtocol::Auto)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
        let error = HttpUpstream::new("ftp://u:s3cret@host/x", UpstreamProtocol::Auto)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }
}
