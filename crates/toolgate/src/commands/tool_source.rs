//! Where `classify` and `scan` get tool definitions: a saved `tools/list` result, or a live
//! server (a command, or a URL) asked the way an MCP client asks.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toolgate_proxy::stdio::ServerCommand;

use anyhow::Context;
use toolgate_classify::{parse_tools_document, ToolDef};
use toolgate_proxy::http::{HttpUpstream, UpstreamProtocol, UpstreamTarget};
use toolgate_proxy::tool_listing::ListedTools;

/// Tools and the name the server gave itself.
pub struct ToolSet {
    pub server_name: Option<String>,
    pub tools: Vec<ToolDef>,
    /// The listing as the server gave it, when it came from a live server.
    pub listing: Option<ListedTools>,
}

/// Which live server to ask.
pub struct ServerSpec<'a> {
    pub command: &'a [OsString],
    pub upstream: Option<&'a str>,
    pub headers: &'a [String],
    pub timeout: Duration,
}

pub fn from_file(path: &Path) -> anyhow::Result<ToolSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let tools = parse_tools_document(&text)
        .with_context(|| format!("{} is not a tools/list result", path.display()))?;
    Ok(ToolSet {
        server_name: None,
        tools,
        listing: None,
    })
}

pub fn from_server(spec: &ServerSpec<'_>) -> anyhow::Result<ToolSet> {
    tool_set(listing(spec)?)
}

/// The tools of a server's listing, read as definitions.
pub fn tool_set(listed: ListedTools) -> anyhow::Result<ToolSet> {
    let tools = listed
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            ToolDef::from_json(t).with_context(|| format!("tool {i} in the server's tools/list"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ToolSet {
        server_name: listed.server_name.clone(),
        tools,
        listing: Some(listed),
    })
}

/// Connects to the server and lists its tools, as an MCP client does.
pub fn listing(spec: &ServerSpec<'_>) -> anyhow::Result<ListedTools> {
    let target = match spec.upstream {
        Some(url) => {
            let mut upstream = HttpUpstream::new(url, UpstreamProtocol::Auto)?;
            for header in spec.headers {
                upstream.add_header(header)?;
            }
            UpstreamTarget::Http(Arc::new(upstream))
        }
        None => UpstreamTarget::Command(Arc::new(ServerCommand::new(spec.command.to_vec()))),
    };
    listing_of(target, spec.timeout)
}

/// Connects to `target` and lists its tools.
pub fn listing_of(target: UpstreamTarget, timeout: Duration) -> anyhow::Result<ListedTools> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime
        .block_on(toolgate_proxy::tool_listing::list_tools(target, timeout))
        .context("cannot list the server's tools")
}
