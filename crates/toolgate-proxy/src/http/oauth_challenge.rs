//! The listener's side of OAuth (docs/AUTH.md): the protected-resource metadata (RFC 9728)
//! clients discover the authorization server from, the `WWW-Authenticate` challenges of a
//! refused request, and the verifier for the policy's `oauth` in force.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::json;
use toolgate_policy::ir::OAuthSettings;

use super::listener::App;
use super::reply::{json_response, HttpError};
use crate::oauth::{OAuthVerifier, TokenRefusal};

/// The verifier of the policy's `oauth`, made again when a reload changes it.
#[derive(Default)]
pub(crate) struct Verifiers {
    current: Mutex<Option<Arc<OAuthVerifier>>>,
}

impl Verifiers {
    pub fn verifier(&self, settings: &OAuthSettings) -> Result<Arc<OAuthVerifier>, String> {
        let mut current = self.current.lock();
        if let Some(verifier) = current.as_ref().filter(|v| v.settings() == settings) {
            return Ok(Arc::clone(verifier));
        }
        let verifier = Arc::new(OAuthVerifier::new(settings.clone(), &|name| {
            std::env::var(name).ok()
        })?);
        *current = Some(Arc::clone(&verifier));
        Ok(verifier)
    }
}

/// Where this resource's metadata is (RFC 9728 §3.1): the well-known path goes between the
/// resource's host and its path.
pub(crate) fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let (host, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    format!("{scheme}://{host}/.well-known/oauth-protected-resource{path}")
}

fn quoted(text: &str) -> String {
    text.replace(['"', '\\'], "")
}

fn challenge(oauth: &OAuthSettings, error: Option<&str>, scopes: &[String]) -> String {
    let mut parts = Vec::new();
    if let Some(error) = error {
        parts.push(format!("error=\"{error}\""));
    }
    parts.push(format!(
        "resource_metadata=\"{}\"",
        quoted(&metadata_url(&oauth.resource))
    ));
    if !scopes.is_empty() {
        parts.push(format!("scope=\"{}\"", quoted(&scopes.join(" "))));
    }
    format!("Bearer {}", parts.join(", "))
}

/// A request without a token (or with a malformed header): `401` naming the metadata, so a
/// client can find the authorization server.
pub(crate) fn missing_token(oauth: &OAuthSettings, message: &str) -> HttpError {
    HttpError::Challenge {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_string(),
        challenge: challenge(oauth, None, &oauth.required_scopes),
    }
}

/// A token the verifier refused: `401 invalid_token`, `403 insufficient_scope` (the
/// client may ask for more scopes: step-up), or `503` when the issuer is unreachable.
pub(crate) fn refused(oauth: &OAuthSettings, refusal: &TokenRefusal) -> HttpError {
    match refusal {
        TokenRefusal::Invalid(why) => HttpError::Challenge {
            status: StatusCode::UNAUTHORIZED,
            message: format!("Unauthorized: {why}"),
            challenge: challenge(oauth, Some("invalid_token"), &oauth.required_scopes),
        },
        TokenRefusal::InsufficientScope(missing) => HttpError::Challenge {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "Forbidden: the token lacks the scope(s) {}",
                missing.join(" ")
            ),
            challenge: challenge(oauth, Some("insufficient_scope"), &oauth.required_scopes),
        },
        TokenRefusal::Unavailable(_) => {
            HttpError::Busy("The authorization server cannot be reached to check the token")
        }
    }
}

/// `GET /.well-known/oauth-protected-resource[/…]`: the metadata, when the policy has
/// `oauth` (public, as RFC 9728 wants, but only to an allowed Host).
pub(crate) async fn metadata(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = app.guard.check_host_only(&headers) {
        return HttpError::Refused(refusal).into_response();
    }
    let policy = app.gateway.policy();
    let Some(oauth) = &policy.oauth else {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "this gateway is not an OAuth protected resource"}).to_string(),
        );
    };
    let mut body = json!({
        "resource": oauth.resource,
        "authorization_servers": [oauth.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "toolgate",
    });
    if !oauth.scopes_supported.is_empty() {
        body["scopes_supported"] = json!(oauth.scopes_supported);
    }
    json_response(StatusCode::OK, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_sits_between_host_and_path() {
        assert_eq!(
            metadata_url("https://tools.example.com/mcp"),
            "https://tools.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
    }
}
