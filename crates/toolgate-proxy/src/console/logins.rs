//! Who is signed in to the console: a random session cookie given for the admin token.
//!
//! The cookie is `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's page
//! sends it). Requests that change something (approve, deny, sign out) must also carry the
//! login's CSRF token in `X-Toolgate-Csrf`, which only the console's own pages have: a
//! custom header cannot be sent across origins without a preflight this listener never
//! grants. Logins are kept by the SHA-256 of the cookie, in memory: a restart signs everyone
//! out, and nothing on disk can be replayed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "toolgate_console";
/// The header that must carry the login's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-toolgate-csrf";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Logins kept at once; signing in past this ends the oldest.
const MAX_LOGINS: usize = 256;

struct Login {
    expires: Instant,
    csrf: String,
}

#[derive(Default)]
pub struct Logins {
    by_digest: Mutex<HashMap<[u8; 32], Login>>,
}

/// A new login: the cookie to set and the CSRF token its pages carry.
pub struct NewLogin {
    pub cookie: String,
    pub set_cookie: String,
}

impl Logins {
    /// Signs someone in (the caller has checked the admin token); `None` when the system
    /// has no randomness to give.
    pub fn start(&self) -> Option<NewLogin> {
        let cookie = crate::secret_file::random_hex_secret().ok()?;
        let csrf = crate::secret_file::random_hex_secret().ok()?;
        let now = Instant::now();
        let mut logins = self.by_digest.lock();
        logins.retain(|_, l| l.expires > now);
        if logins.len() >= MAX_LOGINS {
            let oldest = logins
                .iter()
                .min_by_key(|(_, l)| l.expires)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                logins.remove(&oldest);
            }
        }
        let login = Login {
            expires: now + LIFETIME,
            csrf,
        };
        logins.insert(digest(&cookie), login);
        let set_cookie = format!(
            "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            LIFETIME.as_secs()
        );
        Some(NewLogin { cookie, set_cookie })
    }

    /// The CSRF token of the login the request's cookie names, if it names a live one.
    pub fn check(&self, headers: &HeaderMap) -> Option<String> {
        let cookie = cookie_value(headers)?;
        let logins = self.by_digest.lock();
        let login = logins.get(&digest(cookie))?;
        (login.expires > Instant::now()).then(|| login.csrf.clone())
    }

    /// Whether the request is of a live login and carries its CSRF token.
    pub fn check_with_csrf(&self, headers: &HeaderMap) -> bool {
        let Some(csrf) = self.check(headers) else {
            return false;
        };
        let mut sent = headers.get_all(CSRF_HEADER).iter();
        match (sent.next(), sent.next()) {
            (Some(value), None) => {
                let sent: [u8; 32] = Sha256::digest(value.as_bytes()).into();
                let want: [u8; 32] = Sha256::digest(csrf.as_bytes()).into();
                toolgate_policy::identities::digests_equal(&sent, &want)
            }
            _ => false,
        }
    }

    /// Ends the login the request's cookie names.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(cookie) = cookie_value(headers) {
            self.by_digest.lock().remove(&digest(cookie));
        }
    }
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(cookie: &str, csrf: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("other=1; {COOKIE}={cookie}");
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        if let Some(csrf) = csrf {
            headers.insert(CSRF_HEADER, HeaderValue::from_str(csrf).unwrap());
        }
        headers
    }

    #[test]
    fn a_login_is_its_cookie_and_changes_need_its_csrf_token() {
        let logins = Logins::default();
        let login = logins.start().unwrap();
        assert!(login.set_cookie.contains("HttpOnly; SameSite=Strict"));
        let csrf = logins.check(&with_cookie(&login.cookie, None)).unwrap();
        assert!(logins.check_with_csrf(&with_cookie(&login.cookie, Some(&csrf))));
        assert!(!logins.check_with_csrf(&with_cookie(&login.cookie, None)));
        assert!(!logins.check_with_csrf(&with_cookie(&login.cookie, Some("nope"))));
        assert!(logins.check(&with_cookie("forged", None)).is_none());
        logins.end(&with_cookie(&login.cookie, None));
        assert!(logins.check(&with_cookie(&login.cookie, None)).is_none());
    }

    #[test]
    fn logins_are_bounded() {
        let logins = Logins::default();
        let first = logins.start().unwrap();
        for _ in 0..MAX_LOGINS {
            logins.start();
        }
        assert_eq!(logins.by_digest.lock().len(), MAX_LOGINS);
        assert!(logins.check(&with_cookie(&first.cookie, None)).is_none());
    }
}
