//! Policy: for each gateway, the file its policy is read from, the revision in force, the
//! last reload (with its errors, which name file, line and column) and the file as it is on
//! disk now, with line numbers.

use std::fmt::Write as _;

use crate::console::html::{clock_time, esc};
use crate::console::Console;

/// Longest file shown; a bigger one is cut, and says so.
const MAX_SHOWN_BYTES: u64 = 512 * 1024;

pub async fn render(console: &Console) -> String {
    let reloads = console.data.feed.reloads();
    let mut out = String::new();
    for served in console.directory.gateways() {
        let policy = served.gateway.policy();
        let file = served.gateway.policy_file();
        let _ = write!(
            out,
            "<section class=\"policy\"><h2>{}</h2><dl><dt>File</dt><dd><code>{}</code></dd>\
             <dt>Revision in force</dt><dd><code>{}</code></dd><dt>Mode</dt><dd>{}</dd>",
            esc(served.label()),
            esc(&file
                .as_ref()
                .map_or("(none: every call is allowed)".into(), |p| p
                    .display()
                    .to_string())),
            esc(&policy.revision),
            if matches!(policy.mode, toolgate_policy::PolicyMode::Shadow) {
                "shadow (nothing is refused)"
            } else {
                "enforce"
            },
        );
        match reloads.get(&served.server) {
            None => {
                out.push_str("<dt>Last reload</dt><dd class=\"muted\">none since start</dd></dl>")
            }
            Some(reload) if reload.ok => {
                let _ = write!(
                    out,
                    "<dt>Last reload</dt><dd><span class=\"tag allow\">ok</span> at {} UTC</dd></dl>",
                    clock_time(reload.at_ms)
                );
            }
            Some(reload) => {
                let _ = write!(
                    out,
                    "<dt>Last reload</dt><dd><span class=\"tag deny\">failed</span> at {} UTC; \
                     the revision above stays in force</dd></dl><pre class=\"errors\">",
                    clock_time(reload.at_ms)
                );
                for error in &reload.errors {
                    let _ = writeln!(out, "{}", esc(error));
                }
                out.push_str("</pre>");
            }
        }
        if let Some(path) = file {
            out.push_str(&file_listing(&path).await);
        }
        out.push_str("</section>");
    }
    out
}

/// The file with line numbers, or why it cannot be shown.
async fn file_listing(path: &std::path::Path) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = Vec::new();
    let read = match tokio::fs::File::open(path).await {
        Ok(file) => file
            .take(MAX_SHOWN_BYTES + 1)
            .read_to_end(&mut text)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = read {
        return format!(
            "<p class=\"error\">The file cannot be read now: {}</p>",
            esc(&e.to_string())
        );
    }
    let cut = text.len() as u64 > MAX_SHOWN_BYTES;
    text.truncate(MAX_SHOWN_BYTES as usize);
    let text = String::from_utf8_lossy(&text);
    let mut out = String::from("<details><summary>The file now</summary><pre class=\"source\">");
    for (i, line) in text.lines().enumerate() {
        let _ = writeln!(
            out,
            "<span class=\"line\" data-line=\"{}\">{}</span>",
            i + 1,
            esc(line)
        );
    }
    out.push_str("</pre>");
    if cut {
        let _ = write!(
            out,
            "<p class=\"muted\">Only the first {} KiB are shown.</p>",
            MAX_SHOWN_BYTES / 1024
        );
    }
    out.push_str("</details>");
    out
}
