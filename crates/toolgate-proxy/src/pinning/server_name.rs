//! The name a server's pins, counters and audit lines go under when toolgate runs one
//! server: `--server-name`, or one derived from the command or URL — the package or program
//! that *is* the server, not the launcher in front of it:
//!
//! | command or URL | name |
//! |---|---|
//! | `npx -y @modelcontextprotocol/server-filesystem /srv` | `server-filesystem` |
//! | `uvx mcp-server-git --repository .` | `mcp-server-git` |
//! | `python3 -m my_server` | `my_server` |
//! | `node build/index.js` | `index` |
//! | `/usr/local/bin/github-mcp stdio` | `github-mcp` |
//! | `https://mcp.example.com/v1/mcp` | `mcp-example-com` |

use std::ffi::OsString;

/// The longest server name.
pub const MAX_LEN: usize = 64;

/// Whether `name` is a valid server name: `[a-z0-9_-]+`, at most [`MAX_LEN`] bytes.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The name given (`--server-name`), or the one derived from the URL or else the command.
pub fn given_or_derived(given: Option<&str>, url: Option<&str>, command: &[OsString]) -> String {
    match (given, url) {
        (Some(name), _) => name.to_string(),
        (None, Some(url)) => from_url(url),
        (None, None) => from_command(command),
    }
}

/// Programs that start the server rather than being it: the name comes from what follows.
const LAUNCHERS: &[&str] = &[
    "npx", "pnpx", "bunx", "uvx", "pipx", "node", "deno", "bun", "python", "python3", "uv",
    "docker", "podman", "npm", "pnpm", "yarn", "env", "sh", "bash", "run", "exec", "x", "dlx",
];

/// The name derived from a server command (program and arguments).
pub fn from_command(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let mut module_next = false;
    for word in &words {
        if module_next {
            return sanitize(word);
        }
        if word == "-m" {
            module_next = true;
            continue;
        }
        if word.starts_with('-') || word.contains('=') {
            continue;
        }
        let program = base_name(word);
        // `python3.12`, `node22`: a launcher with its version in its name.
        let unversioned = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        if LAUNCHERS.contains(&program.as_str()) || LAUNCHERS.contains(&unversioned) {
            continue;
        }
        return sanitize(&program);
    }
    words
        .first()
        .map_or_else(|| "server".into(), |w| sanitize(&base_name(w)))
}

/// The name derived from a server URL: its host, and its port when one is given.
pub fn from_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    sanitize(host)
}

/// A package spec or path's last part, without scope, version or extension:
/// `@scope/pkg@1.2` → `pkg`, `build/index.js` → `index`.
fn base_name(word: &str) -> String {
    let last = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let unversioned = match last.split_once('@') {
        Some((name, _)) if !name.is_empty() => name,
        _ => last,
    };
    let stem = match unversioned.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty() && matches!(ext, "js" | "mjs" | "cjs" | "ts" | "py" | "exe") =>
        {
            stem
        }
        _ => unversioned,
    };
    stem.to_string()
}

/// Lower case; every run of other characters becomes one `-`; cut to [`MAX_LEN`].
fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(MAX_LEN).collect();
    if out.is_empty() {
        "server".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> String {
        from_command(&text.split(' ').map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn names_the_server_not_its_launcher() {
        assert_eq!(
            command("npx -y @modelcontextprotocol/server-filesystem /srv"),
            "server-filesystem"
        );
        assert_eq!(
            command("npx @modelcontextprotocol/server-memory@2025.8.4"),
            "server-memory"
        );
        assert_eq!(
            command("uvx mcp-server-git --repository ."),
            "mcp-server-git"
        );
        assert_eq!(command("python3 -m my_server"), "my_server");
        assert_eq!(
            command("/venv/bin/python3.11 servers/shifting_server.py"),
            "shifting_server"
        );
        assert_eq!(command("node build/index.js"), "index");
        assert_eq!(command("/usr/local/bin/github-mcp stdio"), "github-mcp");
        assert_eq!(command("env FOO=1 My.Server"), "my-server");
        assert_eq!(command("npx"), "npx");
    }

    #[test]
    fn names_a_url_by_its_host() {
        assert_eq!(
            from_url("https://mcp.example.com/v1/mcp"),
            "mcp-example-com"
        );
        assert_eq!(
            from_url("http://user:pw@127.0.0.1:8080/mcp"),
            "127-0-0-1-8080"
        );
    }

    #[test]
    fn validity() {
        assert!(is_valid("files") && is_valid("a_b-9"));
        assert!(
            !is_valid("Files") && !is_valid("a/b") && !is_valid("") && !is_valid(&"a".repeat(65))
        );
        for derived in [command("npx ÅÄÖ"), from_url("http://[::1]:80/")] {
            assert!(is_valid(&derived), "{derived}");
        }
    }
}
