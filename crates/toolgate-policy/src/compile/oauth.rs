//! The `oauth` section: the HTTP listener as an OAuth 2.1 resource server (docs/AUTH.md).
//!
//! ```yaml
//! oauth:
//!   issuer: "https://login.example.com"
//!   resource: "https://tools.example.com/mcp"
//!   scopes_supported: ["tools:call", "payments:write"]
//!   required_scopes: ["tools:call"]
//!   identity_claim: sub
//!   introspection: {client_id_env: TOOLGATE_CLIENT_ID, client_secret_env: TOOLGATE_CLIENT_SECRET}
//! ```

use super::reader::{child_path, index_path, Reader};
use crate::ir::{OAuthIntrospection, OAuthSettings};
use crate::source::{Node, NodeKind};

pub(crate) const OAUTH_KEYS: &[&str] = &[
    "issuer",
    "resource",
    "scopes_supported",
    "required_scopes",
    "identity_claim",
    "introspection",
    "leeway_seconds",
];
pub(crate) const INTROSPECTION_KEYS: &[&str] = &["client_id_env", "client_secret_env"];

/// How far a token's `exp` and `nbf` may be off this machine's clock, by default.
const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// The most `leeway_seconds` may be: past this, expiry means little.
const MAX_LEEWAY_SECONDS: u64 = 300;

pub(super) fn compile_oauth(reader: &mut Reader, node: &Node) -> Option<OAuthSettings> {
    if matches!(node.kind, NodeKind::Null) {
        return None;
    }
    let entries = reader.mapping(node, "oauth", OAUTH_KEYS)?;
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
    };
    let mut complete = true;
    let mut url = |reader: &mut Reader, key: &str, what: &str| -> Option<String> {
        let path = child_path("oauth", key);
        let Some(value) = get(key) else {
            reader.error_with_hint(node.location, "oauth", format!("missing `{key}`"), what);
            complete = false;
            return None;
        };
        let text = reader.string(value, &path)?;
        match check_url(&text) {
            Ok(()) => Some(text),
            Err(why) => {
                reader.error_with_hint(value.location, &path, why, what);
                None
            }
        }
    };
    let issuer = url(
        reader,
        "issuer",
        "the authorization server's issuer URL, whose metadata is at /.well-known/oauth-authorization-server",
    );
    let resource = url(
        reader,
        "resource",
        "this gateway's canonical URL, e.g. https://tools.example.com/mcp: tokens must name it in `aud`",
    );
    let scopes_supported = scope_list(reader, get("scopes_supported"), "scopes_supported");
    let required_scopes = scope_list(reader, get("required_scopes"), "required_scopes");
    if let Some(node) = get("required_scopes") {
        for scope in &required_scopes {
            if !scopes_supported.is_empty() && !scopes_supported.contains(scope) {
                reader.error_with_hint(
                    node.location,
                    "oauth.required_scopes",
                    format!("required scope {scope:?} is not in scopes_supported"),
                    "a client asks for the scopes the metadata lists: add it to scopes_supported",
                );
            }
        }
    }
    let identity_claim = match get("identity_claim") {
        None => "sub".to_string(),
        Some(value) => {
            let claim = reader.string(value, "oauth.identity_claim")?;
            if claim.trim().is_empty() {
                reader.error(value.location, "oauth.identity_claim", "must not be empty");
            }
            claim
        }
    };
    let leeway_seconds = match get("leeway_seconds") {
        None => DEFAULT_LEEWAY_SECONDS,
        Some(value) => match reader
            .number_text(value, "oauth.leeway_seconds")
            .map(str::parse::<u64>)
        {
            Some(Ok(n)) if n <= MAX_LEEWAY_SECONDS => n,
            Some(_) => {
                reader.error(
                    value.location,
                    "oauth.leeway_seconds",
                    format!("must be a whole number of seconds from 0 to {MAX_LEEWAY_SECONDS}"),
                );
                DEFAULT_LEEWAY_SECONDS
            }
            None => DEFAULT_LEEWAY_SECONDS,
        },
    };
    let introspection = get("introspection").and_then(|value| compile_introspection(reader, value));
    if !complete {
        return None;
    }
    Some(OAuthSettings {
        issuer: issuer?,
        resource: resource?,
        scopes_supported,
        required_scopes,
        identity_claim,
        introspection,
        leeway_seconds,
    })
}

fn compile_introspection(reader: &mut Reader, node: &Node) -> Option<OAuthIntrospection> {
    let entries = reader.mapping(node, "oauth.introspection", INTROSPECTION_KEYS)?;
    let mut names = Vec::new();
    for key in INTROSPECTION_KEYS {
        let path = child_path("oauth.introspection", key);
        match entries.iter().find(|(k, _)| k.name == *key) {
            Some((_, value)) => {
                let name = reader.string(value, &path)?;
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    reader.error(value.location, &path, "must name an environment variable");
                    return None;
                }
                names.push(name);
            }
            None => {
                reader.error_with_hint(
                    node.location,
                    "oauth.introspection",
                    format!("missing `{key}`"),
                    "name the environment variables holding the client id and secret toolgate introspects tokens with (the secret never goes in the file)",
                );
                return None;
            }
        }
    }
    let secret = names.pop()?;
    let id = names.pop()?;
    Some(OAuthIntrospection {
        client_id_env: id,
        client_secret_env: secret,
    })
}

fn scope_list(reader: &mut Reader, node: Option<&Node>, key: &str) -> Vec<String> {
    let path = child_path("oauth", key);
    let Some(node) = node else {
        return Vec::new();
    };
    let Some(items) = reader.sequence(node, &path) else {
        return Vec::new();
    };
    let mut scopes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = index_path(&path, i);
        let Some(scope) = reader.string(item, &item_path) else {
            continue;
        };
        // RFC 6749 scope tokens: printable ASCII without space, `"` or `\`.
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if valid {
            scopes.push(scope);
        } else {
            reader.error(
                item.location,
                &item_path,
                format!("{scope:?} is not a scope token"),
            );
        }
    }
    scopes
}

/// An absolute `https` URL, or `http` to this machine (a local authorization server in
/// development and tests); no credentials, no fragment.
pub(super) fn check_url(text: &str) -> Result<(), String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not an absolute URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{text:?} carries credentials"));
    }
    if text.contains('#') {
        return Err(format!("{text:?} has a fragment"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split(']')
            .next()
            .map(|h| format!("[{h}]"))
            .unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{text:?} has no host"));
    }
    let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "{text:?} is plain http: tokens and keys must come over https (http is accepted for 127.0.0.1 and localhost only)"
        )),
        _ => Err(format!("{text:?} is not an https URL")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    fn compile(oauth: &str) -> Result<crate::Policy, Vec<crate::Diagnostic>> {
        crate::compile(&format!("version: '1'\noauth:\n{oauth}\ntools: {{}}\n"))
    }

    #[test]
    fn reads_the_section_with_its_defaults() {
        let p = compile(
            "  issuer: https://login.example.com\n  resource: https://tools.example.com/mcp\n  scopes_supported: [tools:call, payments:write]\n  required_scopes: [tools:call]",
        )
        .unwrap();
        let oauth = p.oauth.unwrap();
        assert_eq!(oauth.issuer, "https://login.example.com");
        assert_eq!(oauth.required_scopes, ["tools:call"]);
        assert_eq!(oauth.identity_claim, "sub");
        assert_eq!(oauth.leeway_seconds, 30);
        assert!(oauth.introspection.is_none());
        let local =
            compile("  issuer: http://127.0.0.1:9000\n  resource: http://localhost:8080/mcp")
                .unwrap();
        assert!(local.oauth.is_some());
    }

    #[test]
    fn every_problem_is_reported_at_its_place() {
        let errors = compile(
            "  issuer: http://login.example.com\n  resource: tools\n  scopes_supported: [a]\n  required_scopes: [b, 'c d']\n  introspection: {client_id_env: ID}\n  leeway_seconds: 9000\n  audience: x",
        )
        .unwrap_err();
        let text: Vec<String> = errors
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(
            has("oauth.issuer: \"http://login.example.com\" is plain http"),
            "{text:?}"
        );
        assert!(
            has("oauth.resource: \"tools\" is not an absolute URL"),
            "{text:?}"
        );
        assert!(
            has("required scope \"b\" is not in scopes_supported"),
            "{text:?}"
        );
        assert!(has("\"c d\" is not a scope token"), "{text:?}");
        assert!(has("missing `client_secret_env`"), "{text:?}");
        assert!(has("oauth.leeway_seconds"), "{text:?}");
        assert!(has("audience"), "{text:?}");
        assert!(compile("  resource: https://t/mcp").is_err());
    }
}
