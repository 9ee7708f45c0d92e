//! The console's HTML: escaping, the page frame every page shares, and the response headers
//! (a Content-Security-Policy that allows nothing but this listener's own files).
//!
//! Pages are written with `format!` and [`esc`]: every value that comes from a client, a
//! server or a policy (tool names, descriptions, identities, messages) goes through it.

use std::fmt::Write as _;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// No inline script or style, no other origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages, in the navigation's order: (path, title).
pub const PAGES: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/live", "Live"),
    ("/tools", "Tools"),
    ("/approvals", "Approvals"),
    ("/policy", "Policy"),
    ("/counters", "Counters"),
];

/// Text made safe for HTML content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text made safe as one component of a URL path or query.
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A whole page: the frame, the navigation with `active` marked, and `body`.
pub fn page(active: &str, title: &str, csrf: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, name) in PAGES {
        let current = if path == active {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{current}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"toolgate-csrf\" content=\"{csrf}\">\
         <title>{title} · toolgate</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\" defer></script></head>\
         <body><header><span class=\"brand\">toolgate</span><nav>{nav}</nav>\
         <form method=\"post\" action=\"/logout\" class=\"logout\">\
         <button type=\"submit\">Sign out</button></form></header>\
         <main><h1>{title}</h1>{body}</main></body></html>\n",
        csrf = esc(csrf),
        title = esc(title),
    )
}

/// An HTML response with the console's security headers.
pub fn respond(status: StatusCode, html: String) -> Response {
    with_type(status, html, "text/html; charset=utf-8")
}

/// A response of `content_type` with the console's security headers.
pub fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `ms` since the Unix epoch as `HH:MM:SS` UTC.
pub fn clock_time(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Microseconds, readably.
pub fn micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1_000.0),
        _ => format!("{:.2} s", us as f64 / 1_000_000.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn markup_in_values_is_text() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url_part("a b/c?d&é"), "a%20b%2Fc%3Fd%26%C3%A9");
        let html = page("/live", "<Live>", "\"csrf", "<p>x</p>");
        assert!(html.contains("<title>&lt;Live&gt; · toolgate</title>"));
        assert!(html.contains("content=\"&quot;csrf\""));
        assert!(html.contains("<a href=\"/live\" aria-current=\"page\">Live</a>"));
    }

    #[test]
    fn times_read_well() {
        assert_eq!(clock_time(3_723_000), "01:02:03");
        assert_eq!(micros(42), "42 µs");
        assert_eq!(micros(1_500), "1.5 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
    }
}
