//! The HTTP modes of the proxy: the listener (`--transport http`) and the stdio → HTTP bridge
//! (`--upstream URL`), wired from the flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toolgate_proxy::stdio::ServerCommand;

use anyhow::Context;
use toolgate_proxy::http::{
    bridge, HttpUpstream, ListenerOptions, UpstreamProtocol, UpstreamTarget,
};
use toolgate_proxy::Gateway;

use crate::cli::{RunArgs, TransportArg, UpstreamProtocolArg};

pub async fn run(gateway: Arc<Gateway>, args: &RunArgs, policy: PathBuf) -> anyhow::Result<i32> {
    let upstream = match &args.upstream {
        Some(url) => {
            if !args.command.is_empty() {
                anyhow::bail!("give either --upstream URL or a server command after --, not both");
            }
            let protocol = match (args.transport, args.upstream_protocol) {
                (Some(TransportArg::Sse), _) | (_, UpstreamProtocolArg::Sse) => {
                    UpstreamProtocol::LegacySse
                }
                (_, UpstreamProtocolArg::Streamable) => UpstreamProtocol::Streamable,
                (_, UpstreamProtocolArg::Auto) => UpstreamProtocol::Auto,
            };
            let mut target = HttpUpstream::new(url, protocol)?;
            for header in &args.headers {
                target.add_header(header)?;
            }
            target.token = upstream_token(gateway.policy().upstream_auth.as_ref())?;
            Some(Arc::new(target))
        }
        None => {
            if !args.headers.is_empty() {
                anyhow::bail!("--header applies to an --upstream URL; none was given");
            }
            if args.transport == Some(TransportArg::Sse) {
                anyhow::bail!("--transport sse needs --upstream URL (the legacy SSE server)");
            }
            None
        }
    };
    let grace = Duration::from_secs(args.shutdown_grace);
    if args.transport != Some(TransportArg::Http) {
        let Some(upstream) = upstream else {
            anyhow::bail!("the bridge needs --upstream URL");
        };
        let options = bridge::BridgeOptions {
            max_line_bytes: toolgate_proxy::framing::DEFAULT_MAX_LINE_BYTES,
            shutdown_grace: grace,
            identity: args.identity.clone(),
            policy_path: Some(policy),
        };
        return bridge::run(gateway, upstream, options)
            .await
            .map_err(anyhow::Error::from);
    }
    let target = match upstream {
        Some(u) => UpstreamTarget::Http(u),
        None => UpstreamTarget::Command(Arc::new(ServerCommand::new(args.command.clone()))),
    };
    listen(gateway, target, args, Some(policy)).await
}

/// The client-credentials token source an `upstream_auth` block describes (its variables
/// read now, so an unset one stops toolgate at start).
pub(super) fn upstream_token(
    auth: Option<&toolgate_policy::ir::UpstreamAuth>,
) -> anyhow::Result<Option<Arc<toolgate_proxy::oauth::ClientCredentials>>> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let source = toolgate_proxy::oauth::ClientCredentials::new(auth.clone(), &|name| {
        std::env::var(name).ok()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(Arc::new(source)))
}

/// Serves `target` behind `gateway` on the listener the flags describe, until a signal.
pub async fn listen(
    gateway: Arc<Gateway>,
    target: UpstreamTarget,
    args: &RunArgs,
    policy: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let grace = Duration::from_secs(args.shutdown_grace);
    let ip: IpAddr = args
        .bind
        .parse()
        .with_context(|| format!("--bind {:?} is not an IP address", args.bind))?;
    let policy_now = gateway.policy();
    let authenticates = !policy_now.identities.is_empty() || policy_now.oauth.is_some();
    if !ip.is_loopback() && !args.allow_unauthenticated && !authenticates {
        anyhow::bail!(
            "refusing to listen on {ip} without authentication: the policy has no `identities`, \
             so anyone who can reach the port could call tools. Add `identities` or `oauth` to \
             the policy (see docs/HTTP.md and docs/AUTH.md), bind to 127.0.0.1, or pass \
             --allow-unauthenticated"
        );
    }
    if let Some(oauth) = &policy_now.oauth {
        // An unset introspection variable stops toolgate now, not at the first token.
        toolgate_proxy::oauth::OAuthVerifier::new(oauth.clone(), &|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    drop(policy_now);
    let options = ListenerOptions {
        bind: SocketAddr::new(ip, args.port),
        allowed_hosts: args.allow_hosts.clone(),
        allowed_origins: args.allow_origins.clone(),
        max_body_bytes: args.max_body_bytes,
        max_sessions: args.max_sessions.max(1),
        max_sessions_per_identity: args.max_sessions_per_identity.max(1),
        max_connections: args.max_connections.max(1),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        max_children: args.max_children.max(1),
        session_idle_timeout: Duration::from_secs(args.session_idle_timeout.max(1)),
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        shutdown_grace: grace,
        ..ListenerOptions::default()
    };
    toolgate_proxy::http::run(gateway, target, options, args.identity.clone(), policy)
        .await
        .context("the HTTP listener failed")
}
