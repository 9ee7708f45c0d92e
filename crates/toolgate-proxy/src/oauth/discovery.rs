//! The authorization server's metadata (RFC 8414, falling back to OpenID Connect discovery)
//! and its signing keys (the JWKS), fetched over HTTPS and kept.

use serde::Deserialize;

/// How long a fetch of metadata or keys may take.
pub(super) const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest metadata or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// What toolgate reads of the issuer's metadata.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct IssuerMetadata {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
}

/// The metadata URLs to try for `issuer`, in order: RFC 8414's (the well-known path goes
/// between the host and the issuer's own path), then OpenID Connect's (appended).
pub(super) fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = match trimmed.split_once("://") {
        Some((scheme, rest)) => match rest.find('/') {
            Some(at) => (format!("{scheme}://{}", &rest[..at]), &rest[at..]),
            None => (trimmed.to_string(), ""),
        },
        None => (trimmed.to_string(), ""),
    };
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

/// Fetches the issuer's metadata; its `issuer` must be the configured one (RFC 8414 §3.3:
/// otherwise anyone who can serve the document could name themselves the issuer).
pub(super) async fn fetch_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<IssuerMetadata, String> {
    let mut failures = Vec::new();
    for url in metadata_urls(issuer) {
        match fetch_json::<IssuerMetadata>(http, &url).await {
            Ok(metadata)
                if metadata.issuer.trim_end_matches('/') == issuer.trim_end_matches('/') =>
            {
                return Ok(metadata)
            }
            Ok(metadata) => failures.push(format!(
                "{url} names the issuer {:?}, not {issuer:?}",
                metadata.issuer
            )),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(format!(
        "no usable metadata for the issuer ({})",
        failures.join("; ")
    ))
}

pub(super) async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    read_json(response).await
}

/// Reads a JSON answer of bounded size.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Result<T, String> {
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not the JSON expected: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_paths_follow_both_standards() {
        assert_eq!(
            metadata_urls("https://login.example.com"),
            [
                "https://login.example.com/.well-known/oauth-authorization-server",
                "https://login.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://login.example.com/tenant/v2/"),
            [
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2",
                "https://login.example.com/tenant/v2/.well-known/openid-configuration"
            ]
        );
    }
}
