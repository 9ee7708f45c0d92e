//! `toolgate init`: put the MCP servers a client already runs behind toolgate in one step.
//!
//! It finds the client's config (Claude Desktop, Claude Code, Cursor, VS Code), writes a
//! gateway config with every server it names, scans each server for a starter policy, and
//! rewrites the client's config to launch toolgate instead — after a timestamped backup,
//! which `--undo` restores byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use toolgate_classify::{classify_all, starter_policy_yaml};
use toolgate_policy::gateway_config::{valid_server_name, ServerTransport};

use super::run_gateway::target_of;
use super::tool_source;
use crate::cli::{ClientArg, InitArgs};

/// The clients `init` knows, and where each keeps its MCP servers.
impl ClientArg {
    fn name(self) -> &'static str {
        match self {
            ClientArg::ClaudeDesktop => "claude-desktop",
            ClientArg::ClaudeCode => "claude-code",
            ClientArg::Cursor => "cursor",
            ClientArg::Vscode => "vscode",
        }
    }

    /// The member of the config that maps server names to servers.
    fn servers_key(self) -> &'static str {
        match self {
            ClientArg::Vscode => "servers",
            _ => "mcpServers",
        }
    }

    /// Where the client's config is: user-wide ones under the home directory, project ones
    /// (Claude Code's `.mcp.json`, VS Code's `.vscode/mcp.json`) in the current directory.
    fn default_path(self, home: &Path, cwd: &Path) -> PathBuf {
        match self {
            ClientArg::ClaudeDesktop if cfg!(target_os = "macos") => {
                home.join("Library/Application Support/Claude/claude_desktop_config.json")
            }
            ClientArg::ClaudeDesktop => home.join(".config/Claude/claude_desktop_config.json"),
            ClientArg::ClaudeCode => cwd.join(".mcp.json"),
            ClientArg::Cursor => home.join(".cursor/mcp.json"),
            ClientArg::Vscode => cwd.join(".vscode/mcp.json"),
        }
    }

    const ALL: [ClientArg; 4] = [
        ClientArg::ClaudeDesktop,
        ClientArg::ClaudeCode,
        ClientArg::Cursor,
        ClientArg::Vscode,
    ];
}

/// Marks a backup `init` made of a client's config: `<config>.toolgate-backup-<UTC time>`.
const BACKUP_MARK: &str = ".toolgate-backup-";

pub fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let home = super::run::expand_home("~")?;
    let cwd = std::env::current_dir()?;
    let configs = client_configs(args, &home, &cwd)?;
    if configs.is_empty() {
        bail!(
            "no MCP client config found (looked for {}); name one with --client NAME \
             --client-config PATH",
            ClientArg::ALL
                .iter()
                .map(|c| c.default_path(&home, &cwd).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (client, path) in configs {
        if args.undo {
            undo(&path)?;
        } else {
            adopt(args, client, &path, &home)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configs to work on: the one named, or every known client's that exists.
fn client_configs(
    args: &InitArgs,
    home: &Path,
    cwd: &Path,
) -> anyhow::Result<Vec<(ClientArg, PathBuf)>> {
    match (&args.client, &args.client_config) {
        (Some(client), Some(path)) => Ok(vec![(*client, path.clone())]),
        (Some(client), None) => Ok(vec![(*client, client.default_path(home, cwd))]),
        (None, Some(_)) => bail!("--client-config needs --client NAME (which client wrote it)"),
        (None, None) => Ok(ClientArg::ALL
            .iter()
            .map(|c| (*c, c.default_path(home, cwd)))
            .filter(|(_, p)| p.is_file())
            .collect()),
    }
}

/// One server of a client's config, as the gateway config will hold it.
struct Adopted {
    name: String,
    transport: ServerTransport,
    /// Why its tools could not be listed, when they could not.
    problem: Option<String>,
}

fn adopt(args: &InitArgs, client: ClientArg, path: &Path, home: &Path) -> anyhow::Result<()> {
    let original =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut config: Value = serde_json::from_str(&original)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let servers = config
        .get(client.servers_key())
        .and_then(Value::as_object)
        .with_context(|| format!("{} has no `{}`", path.display(), client.servers_key()))?;
    let mut adopted = Vec::new();
    for (name, server) in servers {
        if is_toolgate(server) {
            eprintln!("{}: {name} already runs toolgate; left out", path.display());
            continue;
        }
        let transport =
            transport_of(server).with_context(|| format!("{}: server {name:?}", path.display()))?;
        adopted.push(Adopted {
            name: unique_name(name, &adopted),
            transport,
            problem: None,
        });
    }
    if adopted.is_empty() {
        eprintln!("{}: no server to put behind toolgate", path.display());
        return Ok(());
    }
    let dir = match &args.dir {
        Some(dir) => dir.join(client.name()),
        None => home.join(".toolgate/gateways").join(client.name()),
    };
    let gateway_path = dir.join("gateway.yaml");
    let mut policies = BTreeMap::new();
    for server in &mut adopted {
        eprintln!("scanning {} …", server.name);
        match starter_policy(server, &dir, Duration::from_secs(args.timeout)) {
            Ok(text) => {
                policies.insert(server.name.clone(), text);
            }
            Err(e) => server.problem = Some(format!("{e:#}")),
        }
    }
    let gateway_text = gateway_yaml(&adopted, &policies, false);
    let servers_key = client.servers_key();
    let launch = launch_entry(client, &gateway_path)?;
    let before = config.clone();
    config[servers_key] = json!({ "toolgate": launch });
    let mut rewritten = serde_json::to_string_pretty(&config)?;
    rewritten.push('\n');

    if args.dry_run {
        // What is printed holds no `env` or `headers` value: they are often credentials.
        let shown = gateway_yaml(&adopted, &policies, true);
        println!("would write {}:\n{shown}", gateway_path.display());
        for name in policies.keys() {
            println!("would write {}", policy_path(&dir, name).display());
        }
        let old = serde_json::to_string_pretty(&redacted(before, servers_key))?;
        println!(
            "would change {}:\n{}",
            path.display(),
            line_diff(&old, &rewritten)
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir.join("policies"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // The servers' environment can hold credentials, as the client's config did.
    write_private(&gateway_path, &gateway_text)?;
    for (name, text) in &policies {
        write_private(&policy_path(&dir, name), text)?;
    }
    let backup = backup_path(path);
    std::fs::copy(path, &backup).with_context(|| format!("cannot back {} up", path.display()))?;
    replace(path, &rewritten)?;
    println!(
        "{} now launches toolgate -c {} ({} servers, {} with a starter policy). Backup: {}. \
         Undo with `toolgate init --undo{}`.",
        path.display(),
        gateway_path.display(),
        adopted.len(),
        policies.len(),
        backup.display(),
        match (&args.client, &args.client_config) {
            (Some(c), Some(p)) => format!(" --client {} --client-config {}", c.name(), p.display()),
            (Some(c), None) => format!(" --client {}", c.name()),
            _ => String::new(),
        }
    );
    for server in adopted.iter().filter(|s| s.problem.is_some()) {
        println!(
            "  {}: could not list its tools ({}); kept with no policy of its own",
            server.name,
            server.problem.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Restores the newest backup `init` made of the config at `path`.
fn undo(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map(|n| format!("{}{BACKUP_MARK}", n.to_string_lossy()))
        .unwrap_or_default();
    let newest = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&stem))
        })
        .max();
    let Some(backup) = newest else {
        bail!("no backup of {} made by toolgate init", path.display());
    };
    let bytes =
        std::fs::read(&backup).with_context(|| format!("cannot read {}", backup.display()))?;
    replace_bytes(path, &bytes)?;
    std::fs::remove_file(&backup).with_context(|| format!("cannot remove {}", backup.display()))?;
    println!("{} restored from {}", path.display(), backup.display());
    Ok(())
}

/// Whether a client's server entry already launches toolgate.
fn is_toolgate(server: &Value) -> bool {
    server
        .get("command")
        .and_then(Value::as_str)
        .and_then(|c| Path::new(c).file_name())
        .is_some_and(|n| n == "toolgate")
}

/// A client's server entry as a gateway config server: `command` + `args` (+ `env`,
/// `cwd`), or `url` (+ `headers`).
fn transport_of(server: &Value) -> anyhow::Result<ServerTransport> {
    let strings = |key: &str| -> anyhow::Result<BTreeMap<String, String>> {
        match server.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Ok((k.clone(), other.to_string())),
                })
                .collect(),
            Some(_) => bail!("`{key}` is not an object"),
        }
    };
    if let Some(url) = server.get("url").and_then(Value::as_str) {
        return Ok(ServerTransport::Url {
            url: url.to_string(),
            headers: strings("headers")?,
            upstream_auth: None,
        });
    }
    let command = server
        .get("command")
        .and_then(Value::as_str)
        .context("has neither a `command` nor a `url`")?;
    let mut argv = vec![command.to_string()];
    if let Some(args) = server.get("args") {
        let args = args.as_array().context("`args` is not a list")?;
        for arg in args {
            argv.push(
                arg.as_str()
                    .context("an item of `args` is not a string")?
                    .to_string(),
            );
        }
    }
    Ok(ServerTransport::Command {
        argv,
        env: strings("env")?,
        cwd: server
            .get("cwd")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// A gateway server name for a client's: lowercased, other characters as `-`, no `__`, and
/// not one already taken.
fn unique_name(client_name: &str, taken: &[Adopted]) -> String {
    let mut name: String = client_name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let name = name.trim_matches('_').chars().take(56).collect::<String>();
    let base = if valid_server_name(&name) {
        name
    } else {
        "server".to_string()
    };
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.iter().any(|a| a.name == candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    candidate
}

fn policy_path(dir: &Path, server: &str) -> PathBuf {
    dir.join("policies").join(format!("{server}.yaml"))
}

/// Lists the server's tools and writes what `toolgate scan` would: a starter policy by risk.
fn starter_policy(server: &Adopted, dir: &Path, timeout: Duration) -> anyhow::Result<String> {
    let target = target_of(&server.transport, dir)?;
    let set = tool_source::tool_set(tool_source::listing_of(target, timeout)?)?;
    let results = classify_all(&set.tools, set.server_name.as_deref());
    let text = starter_policy_yaml(set.server_name.as_deref(), &set.tools, &results);
    toolgate_policy::compile(&text).map_err(|errors| {
        let first = errors
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_default();
        anyhow::anyhow!("the starter policy does not validate ({first})")
    })?;
    Ok(text)
}

/// A client's config with its servers' `env` and `headers` values hidden, for showing.
fn redacted(mut config: Value, servers_key: &str) -> Value {
    if let Some(servers) = config.get_mut(servers_key).and_then(Value::as_object_mut) {
        for server in servers.values_mut() {
            for key in ["env", "headers"] {
                if let Some(map) = server.get_mut(key).and_then(Value::as_object_mut) {
                    map.values_mut().for_each(|v| *v = json!(REDACTED));
                }
            }
        }
    }
    config
}

const REDACTED: &str = "<redacted>";

/// The gateway config: every server, with its policy when it has one, and a comment saying
/// why when it has none. `redact` hides `env` and `headers` values (for showing it).
fn gateway_yaml(servers: &[Adopted], policies: &BTreeMap<String, String>, redact: bool) -> String {
    // JSON strings are YAML double-quoted scalars, so every value is written escaped; and
    // `${` would read as a reference to an environment variable, so it is written as the
    // literal it was (`$${`).
    let quoted = |s: &str| serde_json::to_string(&s.replace("${", "$${")).unwrap_or_default();
    let mut out = String::from(
        "# Written by `toolgate init`. Reference: docs/GATEWAY.md in the toolgate repository.\n\
         version: \"1\"\nservers:\n",
    );
    for server in servers {
        if let Some(problem) = &server.problem {
            let problem = problem.replace('\n', " ");
            out.push_str(&format!(
                "  # toolgate init could not list this server's tools: {problem}\n  \
                 # It runs with no policy of its own; write one with `toolgate scan`.\n"
            ));
        }
        out.push_str(&format!("  {}:\n", server.name));
        match &server.transport {
            ServerTransport::Command { argv, env, cwd } => {
                let argv: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
                out.push_str(&format!("    command: [{}]\n", argv.join(", ")));
                write_map(&mut out, "env", env, &quoted, redact);
                if let Some(cwd) = cwd {
                    out.push_str(&format!("    cwd: {}\n", quoted(cwd)));
                }
            }
            ServerTransport::Url { url, headers, .. } => {
                out.push_str(&format!("    url: {}\n", quoted(url)));
                write_map(&mut out, "headers", headers, &quoted, redact);
            }
        }
        if policies.contains_key(&server.name) {
            out.push_str(&format!(
                "    policy: {}\n",
                quoted(&format!("policies/{}.yaml", server.name))
            ));
        }
    }
    out
}

fn write_map(
    out: &mut String,
    key: &str,
    map: &BTreeMap<String, String>,
    quoted: &dyn Fn(&str) -> String,
    redact: bool,
) {
    if map.is_empty() {
        return;
    }
    out.push_str(&format!("    {key}:\n"));
    for (k, v) in map {
        let v = if redact { REDACTED } else { v.as_str() };
        // A key is a name, never expanded: escaped as JSON only.
        let k = serde_json::to_string(k).unwrap_or_default();
        out.push_str(&format!("      {k}: {}\n", quoted(v)));
    }
}

/// The client's one server entry from now on: toolgate with the gateway config.
fn launch_entry(client: ClientArg, gateway: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find toolgate's own path")?;
    let gateway = super::run::absolute(gateway)?;
    let mut entry = json!({
        "command": exe.to_string_lossy(),
        "args": ["-c", gateway.to_string_lossy()],
    });
    if client == ClientArg::Vscode {
        entry["type"] = json!("stdio");
    }
    Ok(entry)
}

fn backup_path(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let stamp = toolgate_proxy::audit::format_rfc3339_ms(secs).replace([':', '.'], "");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}{BACKUP_MARK}{stamp}"))
}

/// Writes `text` readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn replace(path: &Path, text: &str) -> anyhow::Result<()> {
    replace_bytes(path, text.as_bytes())
}

/// Replaces a file whole (a temporary file renamed over it), so a client reading it never
/// sees half of one, and keeps its permissions.
fn replace_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_file_name(format!(
        ".{}.toolgate-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&temporary, meta.permissions());
    }
    std::fs::rename(&temporary, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// The lines removed (`-`) and added (`+`) between two texts, in order (a longest common
/// subsequence of lines; client configs are small).
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_become_server_names() {
        let taken = vec![Adopted {
            name: "github".into(),
            transport: ServerTransport::Url {
                url: "http://x.invalid".into(),
                headers: BTreeMap::new(),
                upstream_auth: None,
            },
            problem: None,
        }];
        assert_eq!(unique_name("GitHub", &taken), "github-2");
        assert_eq!(unique_name("My Server", &[]), "my-server");
        assert_eq!(unique_name("a__b", &[]), "a_b");
        assert_eq!(unique_name("_", &[]), "server");
        assert!(valid_server_name(&unique_name("Ünïcode.名前", &[])));
    }

    #[test]
    fn entries_read_as_commands_or_urls() {
        let stdio = json!({"command": "npx", "args": ["-y", "pkg"], "env": {"K": "v", "N": 1}});
        match transport_of(&stdio).unwrap() {
            ServerTransport::Command { argv, env, .. } => {
                assert_eq!(argv, ["npx", "-y", "pkg"]);
                assert_eq!(env["N"], "1");
            }
            other => panic!("{other:?}"),
        }
        let http = json!({"type": "http", "url": "https://x.invalid/mcp", "headers": {"A": "b"}});
        assert!(matches!(
            transport_of(&http).unwrap(),
            ServerTransport::Url { .. }
        ));
        assert!(transport_of(&json!({"args": []})).is_err());
        assert!(is_toolgate(&json!({"command": "/usr/local/bin/toolgate"})));
    }

    #[test]
    fn the_diff_shows_what_changes() {
        let diff = line_diff("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(diff, "  a\n+ x\n- b\n  c\n");
    }

    proptest::proptest! {
        /// Whatever a client's config holds — quotes, `$`, `${`, line breaks, any script —
        /// the gateway config `init` writes reads back as the same command and environment.
        #[test]
        fn written_configs_read_back_exactly(
            argv in proptest::collection::vec(".{0,24}", 1..5),
            env in proptest::collection::btree_map("[^=\u{0}]{0,3}\\$\\{?[^=\u{0}]{0,3}", ".{0,24}", 0..4),
            url_path in "[a-z0-9/${}]{0,16}",
            headers in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9-]{0,8}", ".{0,24}", 0..3),
        ) {
            let servers = vec![
                Adopted {
                    name: "one".into(),
                    transport: ServerTransport::Command { argv, env, cwd: None },
                    problem: None,
                },
                Adopted {
                    name: "two".into(),
                    transport: ServerTransport::Url {
                        url: format!("https://example.invalid/{url_path}"),
                        headers,
                        upstream_auth: None,
                    },
                    problem: Some("it said\nno".into()),
                },
            ];
            let text = gateway_yaml(&servers, &BTreeMap::new(), false);
            let config = toolgate_policy::gateway_config::read_gateway_config(&text, &|_| None)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e:?}\n{text}")))?;
            proptest::prop_assert_eq!(&config.servers[0].transport, &servers[0].transport);
            proptest::prop_assert_eq!(&config.servers[1].transport, &servers[1].transport);
        }
    }

    #[test]
    fn the_gateway_config_reads_back_as_written() {
        let servers = vec![
            Adopted {
                name: "files".into(),
                transport: ServerTransport::Command {
                    argv: vec!["npx".into(), "-y".into(), "fs \"quoted\"".into()],
                    env: BTreeMap::from([("TOKEN".into(), "a${b}".into())]),
                    cwd: None,
                },
                problem: None,
            },
            Adopted {
                name: "broken".into(),
                transport: ServerTransport::Command {
                    argv: vec!["nope".into()],
                    env: BTreeMap::new(),
                    cwd: None,
                },
                problem: Some("cannot start\nit".into()),
            },
        ];
        let policies = BTreeMap::from([("files".to_string(), String::new())]);
        let text = gateway_yaml(&servers, &policies, false);
        assert!(gateway_yaml(&servers, &policies, true).contains("\"TOKEN\": \"<redacted>\""));
        let config =
            toolgate_policy::gateway_config::read_gateway_config(&text, &|_| None).unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.servers[0].transport, servers[0].transport);
        assert!(config.servers[1].policy.is_none());
        assert!(
            text.contains("# toolgate init could not list this server's tools: cannot start it")
        );
    }
}
