//! The one reader of `host[:port]`: a `Host` header, the authority of an `Origin`.

use axum::http::uri::Authority;

/// The host of `host[:port]`, lower-cased (an IPv6 address keeps its brackets). `None` when
/// the text is not an authority, or carries user information (never in these headers).
pub fn host_of(text: &str) -> Option<String> {
    let authority: Authority = text.trim().parse().ok()?;
    // `host:` followed by anything that is not a port number is not an authority.
    let has_port = authority.as_str().len() > authority.host().len();
    let bad_port = has_port && authority.port_u16().is_none();
    if authority.as_str().contains('@') || bad_port {
        return None;
    }
    Some(authority.host().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_with_or_without_ports() {
        assert_eq!(host_of("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(host_of("localhost").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:3000").as_deref(), Some("[::1]"));
        assert_eq!(host_of("127.0.0.1:99999"), None);
        assert_eq!(host_of("user@evil.example"), None);
        assert_eq!(host_of("a b"), None);
        assert_eq!(host_of(""), None);
    }
}
