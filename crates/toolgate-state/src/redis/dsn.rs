//! Redis DSNs: `redis://`, `rediss://` (TLS) and `redis+cluster://` / `rediss+cluster://`
//! (Redis Cluster, several seed nodes separated by commas).
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?timeout_ms=N]
//! redis+cluster://[user[:password]@]host[:port],host[:port],…[?timeout_ms=N]
//! ```
//!
//! Parsed by hand rather than as a URL because a cluster names several hosts, and so that the
//! password never reaches a place that could print it: it is kept in a [`Secret`] whose
//! `Debug` is `***`, [`RedisDsn`]'s `Display` shows `user:***@`, and no parse error repeats
//! any part of the DSN (a password with an unencoded `/` or `@` would otherwise end up in a
//! "bad host" message).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::time::Duration;

/// How long one Redis operation may take (connecting included) before it counts as
/// unavailable, unless the DSN says `?timeout_ms=`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
const MAX_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_PORT: u16 = 6379;

/// A credential that prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed Redis DSN. Neither `Debug` nor `Display` shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisDsn {
    pub(crate) cluster: bool,
    pub(crate) tls: bool,
    pub(crate) nodes: Vec<(String, u16)>,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) timeout: Duration,
}

impl RedisDsn {
    /// `scheme` is one of `redis`, `rediss`, `redis+cluster`, `rediss+cluster` (or the
    /// `valkey` spellings), lower-cased; `rest` is what follows the `:`.
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<RedisDsn, String> {
        let (tls, cluster) = match scheme {
            "redis" | "valkey" => (false, false),
            "rediss" | "valkeys" => (true, false),
            "redis+cluster" | "valkey+cluster" => (false, true),
            "rediss+cluster" | "valkeys+cluster" => (true, true),
            _ => return Err("not a Redis DSN".into()),
        };
        let rest = rest
            .strip_prefix("//")
            .ok_or("a Redis DSN starts with redis:// (or rediss://, redis+cluster://)")?;
        // The credentials end at the last `@`: no host, path or query contains one, while an
        // unencoded password might.
        let (userinfo, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (info, None),
                };
                let user = percent_decode(user)
                    .ok_or("the user name in the Redis DSN is not valid percent-encoded UTF-8")?;
                let pass = pass
                    .map(|p| {
                        percent_decode(p).ok_or(
                            "the password in the Redis DSN is not valid percent-encoded UTF-8",
                        )
                    })
                    .transpose()?;
                (
                    Some(user).filter(|u| !u.is_empty()),
                    pass.filter(|p| !p.is_empty()).map(Secret),
                )
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.split_once('/') {
            Some((hosts, path)) => (hosts, path),
            None => (rest, ""),
        };
        let nodes = hosts
            .split(',')
            .map(parse_node)
            .collect::<Result<Vec<_>, _>>()?;
        if !cluster && nodes.len() > 1 {
            return Err(
                "several hosts are a Redis Cluster: use redis+cluster://host:port,host:port".into(),
            );
        }
        let db = match path {
            "" => 0,
            db => db
                .parse::<i64>()
                .ok()
                .filter(|db| (0..=1_000_000).contains(db))
                .ok_or("the database in a Redis DSN is a number: redis://host:6379/0")?,
        };
        if cluster && db != 0 {
            return Err("Redis Cluster has only database 0".into());
        }
        let mut timeout = DEFAULT_TIMEOUT;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("timeout_ms", value)) => {
                    let ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
                        .ok_or(
                            "timeout_ms in a Redis DSN is a number of milliseconds from 1 to 60000",
                        )?;
                    timeout = Duration::from_millis(ms);
                }
                Some((name, _)) if is_plain_word(name) => {
                    return Err(format!(
                        "unknown Redis DSN parameter {name:?} (accepted: timeout_ms)"
                    ))
                }
                _ => return Err("unknown Redis DSN parameter (accepted: timeout_ms)".into()),
            }
        }
        Ok(RedisDsn {
            cluster,
            tls,
            nodes,
            db,
            username,
            password,
            timeout,
        })
    }

    /// Whether this names a Redis Cluster (`redis+cluster://`).
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    /// The node (or, for a cluster, the seed nodes) as (host, port).
    pub fn nodes(&self) -> &[(String, u16)] {
        &self.nodes
    }

    pub fn db(&self) -> i64 {
        self.db
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The bound on each operation, connecting included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for RedisDsn {
    /// The DSN with the password replaced by `***`: safe for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.tls, self.cluster) {
            (false, false) => "redis",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (true, true) => "rediss+cluster",
        };
        write!(f, "{scheme}://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{}:***@", percent_encode(user))?,
            (Some(user), None) => write!(f, "{}@", percent_encode(user))?,
            (None, Some(_)) => f.write_str(":***@")?,
            (None, None) => {}
        }
        for (i, (host, port)) in self.nodes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]:{port}")?;
            } else {
                write!(f, "{host}:{port}")?;
            }
        }
        if !self.cluster {
            write!(f, "/{}", self.db)?;
        }
        if self.timeout != DEFAULT_TIMEOUT {
            write!(f, "?timeout_ms={}", self.timeout.as_millis())?;
        }
        Ok(())
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. Hosts are checked against the characters a
/// host name or address can have, so a mangled credential is refused, never echoed.
fn parse_node(text: &str) -> Result<(String, u16), String> {
    let bad_host = || {
        "a host in the Redis DSN is not a host name or address \
         (percent-encode special characters in the user name and password)"
            .to_string()
    };
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad_host)?;
        if !host
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return Err(bad_host());
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (host, port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(bad_host());
        }
        (host, port)
    };
    if host.is_empty() || host.len() > 253 {
        return Err("the Redis DSN needs a host: redis://host:6379".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("a port in the Redis DSN is not a number from 1 to 65535")?,
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Characters a user name or password keeps as they are when shown (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_decode(text: &str) -> Option<String> {
    // The decoder passes a malformed escape through as it is; a DSN with one is refused
    // instead (it is a typo, and guessing would try a different password).
    let bytes = text.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(dsn: &str) -> Result<RedisDsn, String> {
        let (scheme, rest) = dsn.split_once(':').unwrap();
        RedisDsn::parse(scheme, rest)
    }

    #[test]
    fn single_node_forms() {
        let dsn = parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(dsn.nodes(), &[("127.0.0.1".to_string(), 6380)]);
        assert_eq!(
            (dsn.db(), dsn.uses_tls(), dsn.is_cluster()),
            (2, false, false)
        );
        assert_eq!(dsn.to_string(), "redis://127.0.0.1:6380/2");
        let dsn = parse("rediss://cache.internal").unwrap();
        assert_eq!(dsn.nodes(), &[("cache.internal".to_string(), 6379)]);
        assert!(dsn.uses_tls());
        assert_eq!(dsn.to_string(), "rediss://cache.internal:6379/0");
        let dsn = parse("redis://[::1]:7000/").unwrap();
        assert_eq!(dsn.nodes(), &[("::1".to_string(), 7000)]);
        assert_eq!(dsn.to_string(), "redis://[::1]:7000/0");
        let dsn = parse("redis://h?timeout_ms=250").unwrap();
        assert_eq!(dsn.timeout(), Duration::from_millis(250));
        assert_eq!(dsn.to_string(), "redis://h:6379/0?timeout_ms=250");
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let dsn = parse("redis://app:s%40cr%2Ft@h:1/0").unwrap();
        assert_eq!(dsn.username(), Some("app"));
        assert_eq!(dsn.password, Some(Secret("s@cr/t".into())));
        assert_eq!(dsn.to_string(), "redis://app:***@h:1/0");
        assert!(!format!("{dsn:?}").contains("s@cr/t"));
        // Unencoded `@` and `/` in a password still parse: credentials end at the last `@`.
        let dsn = parse("redis://:p@ss/w0rd@h:1").unwrap();
        assert_eq!(dsn.password, Some(Secret("p@ss/w0rd".into())));
        assert_eq!(dsn.username(), None);
        assert_eq!(dsn.to_string(), "redis://:***@h:1/0");
    }

    #[test]
    fn cluster_forms() {
        let dsn = parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]").unwrap();
        assert!(dsn.is_cluster());
        assert_eq!(dsn.nodes().len(), 3);
        assert_eq!(dsn.nodes()[2], ("::1".to_string(), 6379));
        assert_eq!(
            dsn.to_string(),
            "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7001,[::1]:6379"
        );
        assert!(parse("rediss+cluster://a:1,b:2").unwrap().uses_tls());
        assert!(parse("redis+cluster://a:1/3")
            .unwrap_err()
            .contains("only database 0"));
        assert!(parse("redis://a:1,b:2")
            .unwrap_err()
            .contains("redis+cluster://"));
    }

    #[test]
    fn errors_never_repeat_the_dsn() {
        for (dsn, expected) in [
            ("redis://:hunter2@", "needs a host"),
            ("redis://:hunt/er2", "needs a host"),
            ("redis://hu~nter2:1", "not a host name"),
            ("redis://h:hunter2", "port"),
            ("redis://h/hunter2", "database"),
            (
                "redis://h?hunter2=1",
                "unknown Redis DSN parameter \"hunter2\"",
            ),
            (
                "redis://h?hunt%er2=1",
                "unknown Redis DSN parameter (accepted",
            ),
            ("redis://h?timeout_ms=0", "timeout_ms"),
            ("redis:hunter2", "starts with redis://"),
            ("redis://:%ZZhunter2@h", "percent-encoded"),
        ] {
            let message = parse(dsn).unwrap_err();
            assert!(message.contains(expected), "{dsn}: {message}");
            if !expected.contains("hunter2") {
                assert!(!message.contains("hunter2"), "{dsn}: {message}");
            }
        }
    }
}
