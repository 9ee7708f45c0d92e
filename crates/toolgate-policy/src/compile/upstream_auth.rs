//! `upstream_auth`: the OAuth client-credentials token toolgate fetches for itself and sends
//! to an HTTP upstream (never the client's own token). In a policy it is for `--upstream`; in
//! a gateway config, each `url` server may have its own.
//!
//! ```yaml
//! upstream_auth:
//!   token_url: "https://login.example.com/oauth/token"
//!   client_id_env: GITHUB_MCP_CLIENT_ID
//!   client_secret_env: GITHUB_MCP_CLIENT_SECRET
//!   scopes: ["repo:read"]
//!   resource: "https://mcp.example.com/mcp"    # RFC 8707, when the server asks for it
//! ```

use super::reader::{child_path, index_path, Reader};
use crate::ir::UpstreamAuth;
use crate::source::Node;

pub(crate) const UPSTREAM_AUTH_KEYS: &[&str] = &[
    "token_url",
    "client_id_env",
    "client_secret_env",
    "scopes",
    "resource",
];

pub(crate) fn compile_upstream_auth(
    reader: &mut Reader,
    node: &Node,
    path: &str,
) -> Option<UpstreamAuth> {
    let entries = reader.mapping(node, path, UPSTREAM_AUTH_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let required = |reader: &mut Reader, key: &str, hint: &str| -> Option<String> {
        let key_path = child_path(path, key);
        match get(key) {
            Some(value) => {
                let text = reader.string(value, &key_path)?;
                if text.trim().is_empty() {
                    reader.error(value.location, &key_path, "must not be empty");
                    return None;
                }
                Some(text)
            }
            None => {
                reader.error_with_hint(node.location, path, format!("missing `{key}`"), hint);
                None
            }
        }
    };
    let token_url = required(
        reader,
        "token_url",
        "the authorization server's token endpoint",
    );
    let env_hint = "name the environment variable that holds it: a secret never goes in the file";
    let client_id_env = required(reader, "client_id_env", env_hint);
    let client_secret_env = required(reader, "client_secret_env", env_hint);
    if let (Some(url), Some(node)) = (&token_url, get("token_url")) {
        if let Err(why) = super::oauth::check_url(url) {
            reader.error_with_hint(
                node.location,
                &child_path(path, "token_url"),
                why,
                "the client secret is sent there: https (plain http only to 127.0.0.1 or localhost)",
            );
        }
    }
    let mut scopes = Vec::new();
    if let Some(node) = get("scopes") {
        let scopes_path = child_path(path, "scopes");
        for (i, item) in reader
            .sequence(node, &scopes_path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(scope) = reader.string(item, &index_path(&scopes_path, i)) {
                scopes.push(scope);
            }
        }
    }
    let resource = get("resource").and_then(|n| reader.string(n, &child_path(path, "resource")));
    Some(UpstreamAuth {
        token_url: token_url?,
        client_id_env: client_id_env?,
        client_secret_env: client_secret_env?,
        scopes,
        resource,
    })
}
