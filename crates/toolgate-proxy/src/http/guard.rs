//! Who may talk to the listener: the Host and Origin allow-lists (DNS-rebinding protection)
//! and bearer-token identities.
//!
//! Checks run before a request is read, in this order: Host (a rebound DNS name reaches a
//! loopback listener with the attacker's host name), Origin (a browser page on another site),
//! then the token. Each refusal is its own variant, mapped to a status in one place.

use crate::authority::host_of;
use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use toolgate_policy::Policy;

/// Why a request was refused before it reached a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The Host header is missing or not allowed.
    Host(String),
    /// The Origin header names a site that is not allowed.
    Origin(String),
    /// Identities are configured and no valid bearer token was given.
    Unauthenticated(&'static str),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Host(_) | Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Host(host) => format!("Forbidden: Host {host:?} is not allowed"),
            Refusal::Origin(origin) => format!("Forbidden: Origin {origin:?} is not allowed"),
            Refusal::Unauthenticated(why) => format!("Unauthorized: {why}"),
        }
    }
}

/// The allow-lists, resolved once from the options and the bind address.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
    /// With no explicit origins, any origin whose host is a localhost name passes.
    localhost_origins: bool,
    /// Identity for every request when the policy configures no identities.
    default_identity: Option<String>,
}

const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "[::1]", "::1"];

impl Guard {
    pub fn new(
        bind: SocketAddr,
        allowed_hosts: &[String],
        allowed_origins: &[String],
        default_identity: Option<String>,
    ) -> Guard {
        let mut hosts: Vec<String> = allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if hosts.is_empty() {
            hosts.extend(LOCAL_NAMES.iter().map(|s| s.to_string()));
            let ip = bind.ip();
            if !ip.is_loopback() && !ip.is_unspecified() {
                hosts.push(match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                });
            }
        }
        Guard {
            hosts,
            origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            localhost_origins: allowed_origins.is_empty(),
            default_identity,
        }
    }

    /// Checks a request's headers; on success, the identity it acts as, or the OAuth token
    /// still to verify.
    pub fn check<'h>(
        &self,
        headers: &'h HeaderMap,
        policy: &Policy,
    ) -> Result<Credential<'h>, Refusal> {
        self.check_host(headers)?;
        self.check_origin(headers)?;
        self.identity(headers, policy)
    }

    /// Only the Host check (for the OAuth metadata, which is public but must not be served
    /// to a rebound DNS name).
    pub fn check_host_only(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(headers)
    }

    fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(header::HOST).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Refusal::Host("(missing or repeated)".into()));
        };
        let host = value.to_str().unwrap_or("").to_ascii_lowercase();
        let name = host_of(&host);
        if self
            .hosts
            .iter()
            .any(|h| h == &host || Some(h) == name.as_ref())
        {
            Ok(())
        } else {
            Err(Refusal::Host(host))
        }
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        let origin = value.to_str().unwrap_or("").to_ascii_lowercase();
        if values.next().is_some() {
            return Err(Refusal::Origin(origin));
        }
        if self.origins.iter().any(|o| o == &origin) {
            return Ok(());
        }
        if self.localhost_origins {
            if let Some((scheme, rest)) = origin.split_once("://") {
                let host = host_of(rest);
                let local = host.is_some_and(|h| LOCAL_NAMES.contains(&h.as_str()));
                if matches!(scheme, "http" | "https") && local {
                    return Ok(());
                }
            }
        }
        Err(Refusal::Origin(origin))
    }

    fn identity<'h>(
        &self,
        headers: &'h HeaderMap,
        policy: &Policy,
    ) -> Result<Credential<'h>, Refusal> {
        if policy.identities.is_empty() && policy.oauth.is_none() {
            return Ok(Credential::Identity(self.default_identity.clone()));
        }
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(Refusal::Unauthenticated("a bearer token is required"));
        };
        if values.next().is_some() {
            return Err(Refusal::Unauthenticated(
                "more than one Authorization header",
            ));
        }
        let text = value.to_str().unwrap_or("");
        let token = match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(Refusal::Unauthenticated("a bearer token is required")),
        };
        // A static identity's token first, then the authorization server's.
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        match (policy.identities.find(&hash), &policy.oauth) {
            (Some(name), _) => Ok(Credential::Identity(Some(name.to_string()))),
            (None, Some(_)) if !token.is_empty() => Ok(Credential::OAuthToken(token)),
            (None, Some(_)) => Err(Refusal::Unauthenticated("a bearer token is required")),
            (None, None) => Err(Refusal::Unauthenticated("the token is not valid")),
        }
    }
}

/// Who a request that passed the checks is.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'h> {
    /// A static identity (or the listener's default, without identities or `oauth`).
    Identity(Option<String>),
    /// A bearer token for the policy's authorization server, still to verify.
    OAuthToken(&'h str),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn policy(text: &str) -> Policy {
        toolgate_policy::compile(text).unwrap()
    }

    #[test]
    fn localhost_by_default() {
        let guard = Guard::new("127.0.0.1:0".parse().unwrap(), &[], &[], None);
        let p = policy("version: \"1\"\n");
        assert!(guard
            .check(&headers(&[("host", "127.0.0.1:8080")]), &p)
            .is_ok());
        assert!(guard.check(&headers(&[("host", "localhost")]), &p).is_ok());
        assert!(guard.check(&headers(&[("host", "[::1]:9")]), &p).is_ok());
        assert!(matches!(
            guard.check(&headers(&[("host", "evil.example:8080")]), &p),
            Err(Refusal::Host(_))
        ));
        assert!(matches!(
            guard.check(&headers(&[]), &p),
            Err(Refusal::Host(_))
        ));
        let ok = headers(&[("host", "localhost:1"), ("origin", "http://localhost:3000")]);
        assert!(guard.check(&ok, &p).is_ok());
        for bad in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
        ] {
            let h = headers(&[("host", "localhost:1"), ("origin", bad)]);
            assert!(
                matches!(guard.check(&h, &p), Err(Refusal::Origin(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bearer_tokens_map_to_identities() {
        let hash = |t: &str| {
            Sha256::digest(t.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let p = policy(&format!(
            "version: \"1\"\nidentities:\n  alice:\n    token_sha256: {}\n  bob: [{}]\n",
            hash("a-token"),
            hash("b-token")
        ));
        let guard = Guard::new("127.0.0.1:0".parse().unwrap(), &[], &[], None);
        let with = |auth: &str| headers(&[("host", "localhost"), ("authorization", auth)]);
        let alice = with("Bearer a-token");
        assert_eq!(
            guard.check(&alice, &p).unwrap(),
            Credential::Identity(Some("alice".into()))
        );
        let bob = with("bearer b-token");
        assert_eq!(
            guard.check(&bob, &p).unwrap(),
            Credential::Identity(Some("bob".into()))
        );
        for bad in ["Bearer nope", "Basic a-token", "a-token"] {
            assert_eq!(
                guard.check(&with(bad), &p).unwrap_err().status(),
                StatusCode::UNAUTHORIZED
            );
        }
        let none = headers(&[("host", "localhost")]);
        assert_eq!(
            guard.check(&none, &p).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );

        // With `oauth` too, a token no static identity has is the authorization server's
        // to judge; a static one still names its identity.
        let both = policy(&format!(
            "version: \"1\"\nidentities:\n  alice:\n    token_sha256: {}\noauth:\n  issuer: https://login.example.com\n  resource: https://tools.example.com/mcp\n",
            hash("a-token")
        ));
        assert_eq!(
            guard.check(&alice, &both).unwrap(),
            Credential::Identity(Some("alice".into()))
        );
        let jwt = with("Bearer eyJ.x.y");
        assert_eq!(
            guard.check(&jwt, &both).unwrap(),
            Credential::OAuthToken("eyJ.x.y")
        );
        assert_eq!(
            guard.check(&none, &both).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
