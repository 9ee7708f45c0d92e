//! Who may use the admin API: a loopback address, a loopback `Host` (a DNS-rebinding page
//! reaches a loopback listener under its own host name), no foreign browser `Origin`, and the
//! admin bearer token.
//!
//! The token is compared as SHA-256 digests in constant time, so neither its length nor a
//! matching prefix shows in the timing. The token itself is never logged. A wrong token is
//! answered only after [`WRONG_TOKEN_DELAY`]: with the listener's connection limit, a
//! program on this machine guessing tokens gets a little over a hundred tries a second.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

/// How long the answer to a wrong admin token waits.
pub const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(500);

/// Why a request was refused, each with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRefusal {
    Host,
    Origin,
    Unauthenticated(&'static str),
    /// A token was given, and it is not the admin token.
    WrongToken,
}

impl AdminRefusal {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminRefusal::Host | AdminRefusal::Origin => StatusCode::FORBIDDEN,
            AdminRefusal::Unauthenticated(_) | AdminRefusal::WrongToken => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            AdminRefusal::Host => "Forbidden: the Host header must name this machine's loopback",
            AdminRefusal::Origin => "Forbidden: browser requests from other origins are refused",
            AdminRefusal::Unauthenticated(why) => why,
            AdminRefusal::WrongToken => "Unauthorized: the admin token is not valid",
        }
    }
}

/// The admin token, kept as its digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

/// Shortest token accepted: a guessable admin token is no token.
pub const MIN_TOKEN_LEN: usize = 16;

impl AdminToken {
    pub fn new(token: &str) -> Result<AdminToken, String> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the admin token must be at least {MIN_TOKEN_LEN} characters"
            ));
        }
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        toolgate_policy::identities::digests_equal(&self.digest, &digest)
    }
}

/// Checks that a request names this machine's loopback and, from a browser, comes from a
/// page of it (the defence against DNS rebinding and other sites' pages).
pub fn admit_origin(headers: &HeaderMap) -> Result<(), AdminRefusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(AdminRefusal::Host);
    };
    if !is_loopback_authority(host.to_str().unwrap_or("")) {
        return Err(AdminRefusal::Host);
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let local = origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https") && is_loopback_authority(rest)
        });
        if !local {
            return Err(AdminRefusal::Origin);
        }
    }
    Ok(())
}

/// Checks the `Authorization: Bearer <admin token>` header.
pub fn admit_bearer(headers: &HeaderMap, token: &AdminToken) -> Result<(), AdminRefusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(AdminRefusal::Unauthenticated(
            "Unauthorized: the admin API needs the admin bearer token",
        ));
    };
    let presented = match value.to_str().unwrap_or("").split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => {
            return Err(AdminRefusal::Unauthenticated(
                "Unauthorized: use Authorization: Bearer <admin token>",
            ))
        }
    };
    if token.matches(presented) {
        Ok(())
    } else {
        Err(AdminRefusal::WrongToken)
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with an optional port.
fn is_loopback_authority(authority: &str) -> bool {
    let Some(host) = crate::authority::host_of(authority) else {
        return false;
    };
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads `--admin-listen`: `PORT`, `IP:PORT` or `localhost:PORT`. Only loopback addresses
/// are accepted: the API can approve tool calls.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let addr = parse_addr(text)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{:?} is not a loopback address: the admin API only listens on this machine (127.0.0.1, [::1])",
            text.trim()
        ));
    }
    Ok(addr)
}

/// Reads a listen address: PORT (on 127.0.0.1), localhost:PORT, or IP:PORT.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{text:?}: the port is not a number"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not PORT, IP:PORT or localhost:PORT"))
}

/// Reads the token from `path`, or makes a random one there (mode 0600) when the file does
/// not exist.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    crate::secret_file::load_or_create_hex_secret(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    /// Both checks, as a request with a bearer token goes through them.
    fn admit(headers: &HeaderMap, token: &AdminToken) -> Result<(), AdminRefusal> {
        admit_origin(headers)?;
        admit_bearer(headers, token)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn loopback_host_and_the_token_are_both_required() {
        let token = AdminToken::new("0123456789abcdef-secret").unwrap();
        let ok = |host: &str| {
            headers(&[
                ("host", host),
                ("authorization", "Bearer 0123456789abcdef-secret"),
            ])
        };
        for host in ["127.0.0.1:9", "localhost", "[::1]:80", "LOCALHOST:1"] {
            assert_eq!(admit(&ok(host), &token), Ok(()), "{host}");
        }
        for host in ["evil.example", "127.0.0.1.evil.example", "10.0.0.1:8"] {
            assert_eq!(admit(&ok(host), &token), Err(AdminRefusal::Host), "{host}");
        }
        let wrong = headers(&[("host", "localhost"), ("authorization", "Bearer nope")]);
        assert_eq!(
            admit(&wrong, &token).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        let missing = headers(&[("host", "localhost")]);
        assert_eq!(
            admit(&missing, &token).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        let mut foreign = ok("localhost");
        foreign.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert_eq!(admit(&foreign, &token), Err(AdminRefusal::Origin));
        assert!(AdminToken::new("short").is_err());
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn only_loopback_addresses_are_listened_on() {
        assert_eq!(parse_listen("8081").unwrap().to_string(), "127.0.0.1:8081");
        assert_eq!(parse_listen("localhost:0").unwrap().port(), 0);
        assert!(parse_listen("[::1]:9").unwrap().ip().is_loopback());
        assert!(parse_listen("0.0.0.0:8081").is_err());
        assert!(parse_listen("192.168.1.2:8081").is_err());
        assert!(parse_listen("example.com:80").is_err());
    }

    #[test]
    fn a_made_token_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let a = load_or_create_token(&path).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(load_or_create_token(&path).unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
