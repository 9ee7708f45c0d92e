//! The gateway config: many MCP servers behind one toolgate, each with its own policy.
//!
//! A YAML or JSON file whose top level has `servers` is a gateway config; anything else is a
//! policy. It is read with the same located reader as policies, so every problem is reported
//! at once with its line and column. `${VAR}` in a command, `env`, `cwd`, `url` or `headers`
//! value is taken from the environment (through the lookup the caller hands in, which keeps
//! this crate free of I/O); an unset variable is an error, never an empty string.
//! Whether a named policy file exists is the caller's to check, at the location kept here.

use std::collections::BTreeMap;

use crate::compile::reader::{child_path, index_path, Reader};
use crate::diagnostics::{Diagnostic, Location};
use crate::source::{parse_document, Node, NodeKind};

/// Servers one gateway may front: more is almost surely a generated file gone wrong, and
/// each server is a process (or a connection) per client.
pub const MAX_SERVERS: usize = 64;

/// What separates a server's name from its tool's in the aggregated view.
pub const NAME_SEPARATOR: &str = "__";

/// The aggregated name of a server's tool or prompt: `<server>__<name>`.
pub fn aggregated_name(server: &str, name: &str) -> String {
    format!("{server}{NAME_SEPARATOR}{name}")
}

/// The server and the server's own name of an aggregated name. Server names never contain
/// the separator, so the first one splits; the rest (which may hold `__`) is the tool's.
pub fn split_aggregated_name(aggregated: &str) -> Option<(&str, &str)> {
    aggregated
        .split_once(NAME_SEPARATOR)
        .filter(|(server, name)| !server.is_empty() && !name.is_empty())
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// In the order the file lists them (the order of merged listings).
    pub servers: Vec<ServerConfig>,
    /// The gateway-wide policy, as written (relative to the config file).
    pub policy: Option<PolicyRef>,
    pub tool_names: ToolNames,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    pub location: Location,
    pub transport: ServerTransport,
    /// The server's own policy, written with its own tool names.
    pub policy: Option<PolicyRef>,
    pub restart: Restart,
}

/// A policy file named in the config, with where it was named (for "no such file" errors).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRef {
    pub path: String,
    pub location: Location,
    pub config_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerTransport {
    /// A stdio server: the program and its arguments, extra environment, working directory.
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    /// A Streamable HTTP (or legacy SSE) server, with headers sent on every request.
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        /// A client-credentials token toolgate fetches for this server.
        upstream_auth: Option<crate::ir::UpstreamAuth>,
    },
}

/// When a stdio server that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// After it exits with a failure or a signal (the default).
    #[default]
    OnFailure,
    /// Whenever it exits.
    Always,
    Never,
}

/// How tools are named in the aggregated view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolNames {
    /// `<server>__<tool>` for every tool.
    #[default]
    Prefixed,
    /// A name only one server lists is left bare; the prefixed name works as well.
    BareWhenUnique,
}

/// Whether `text` is a gateway config rather than a policy: its top level has `servers`.
/// Text that does not parse is not one (the policy reader then reports why).
pub fn is_gateway_config(text: &str) -> bool {
    parse_document(text).is_ok_and(|root| root.get("servers").is_some())
}

/// Reads a gateway config; `env` looks up `${VAR}` references.
pub fn read_gateway_config(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayConfig, Vec<Diagnostic>> {
    let root = parse_document(text)?;
    let mut reader = ConfigReader {
        reader: Reader::default(),
        env,
    };
    let config = reader.root(&root);
    let mut diagnostics = reader.reader.diagnostics;
    match config {
        Some(config) if diagnostics.is_empty() => Ok(config),
        _ => {
            if diagnostics.is_empty() {
                diagnostics.push(Diagnostic::new(
                    Location::start(),
                    "",
                    "the gateway config could not be read",
                ));
            }
            diagnostics.sort_by_key(|d| d.location);
            Err(diagnostics)
        }
    }
}

/// Whether `name` may name a server: lowercase letters, digits, `-` and `_`, without the
/// separator (`__`) that splits aggregated names, and not starting or ending with `_`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.contains(NAME_SEPARATOR)
        && !name.starts_with('_')
        && !name.ends_with('_')
}

const TOP_KEYS: &[&str] = &["version", "servers", "policy", "tool_names"];
const SERVER_KEYS: &[&str] = &[
    "command",
    "env",
    "cwd",
    "url",
    "headers",
    "upstream_auth",
    "policy",
    "restart",
];

struct ConfigReader<'e> {
    reader: Reader,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl ConfigReader<'_> {
    fn root(&mut self, root: &Node) -> Option<GatewayConfig> {
        let entries = self.reader.mapping(root, "", TOP_KEYS)?;
        match root.get("version") {
            Some(v) => {
                let text = match &v.kind {
                    NodeKind::String(s) | NodeKind::Number(s) => Some(s.as_str()),
                    _ => None,
                };
                if text != Some("1") {
                    self.reader.error(
                        v.location,
                        "version",
                        "the gateway config version must be \"1\"",
                    );
                }
            }
            None => self.reader.error_with_hint(
                root.location,
                "",
                "missing `version`",
                "add `version: \"1\"` at the top",
            ),
        }
        let tool_names = match root.get("tool_names") {
            None => ToolNames::Prefixed,
            Some(node) => match self.reader.string(node, "tool_names")?.as_str() {
                "prefixed" => ToolNames::Prefixed,
                "bare_when_unique" => ToolNames::BareWhenUnique,
                other => {
                    self.reader.error_with_hint(
                        node.location,
                        "tool_names",
                        format!("unknown tool naming {other:?}"),
                        "use `prefixed` (`<server>__<tool>`) or `bare_when_unique`",
                    );
                    return None;
                }
            },
        };
        let policy = root
            .get("policy")
            .and_then(|n| self.policy_ref(n, "policy"));
        let servers_node = entries
            .iter()
            .find(|(k, _)| k.name == "servers")
            .map(|(_, n)| n)?;
        let servers = self.servers(servers_node)?;
        Some(GatewayConfig {
            servers,
            policy,
            tool_names,
        })
    }

    fn servers(&mut self, node: &Node) -> Option<Vec<ServerConfig>> {
        let entries = self.reader.open_mapping(node, "servers")?;
        if entries.is_empty() {
            self.reader.error_with_hint(
                node.location,
                "servers",
                "no servers",
                "name at least one server with a `command` or a `url`",
            );
            return None;
        }
        if entries.len() > MAX_SERVERS {
            self.reader.error(
                node.location,
                "servers",
                format!(
                    "{} servers, more than the {MAX_SERVERS} one gateway fronts",
                    entries.len()
                ),
            );
            return None;
        }
        let mut servers = Vec::new();
        for (key, server) in entries {
            let path = child_path("servers", &key.name);
            if !valid_server_name(&key.name) {
                self.reader.error_with_hint(
                    key.location,
                    &path,
                    format!("{:?} cannot name a server", key.name),
                    "use lowercase letters, digits, `-` and `_` (not `__`, which separates \
                     a server's name from its tools' names, and not a leading or trailing `_`)",
                );
                continue;
            }
            if let Some(config) = self.server(&key.name, key.location, server, &path) {
                servers.push(config);
            }
        }
        Some(servers)
    }

    fn server(
        &mut self,
        name: &str,
        location: Location,
        node: &Node,
        path: &str,
    ) -> Option<ServerConfig> {
        self.reader.mapping(node, path, SERVER_KEYS)?;
        let transport = match (node.get("command"), node.get("url")) {
            (Some(command), None) => {
                for key in ["headers", "upstream_auth"] {
                    if let Some(n) = node.get(key) {
                        self.reader.error(
                            n.location,
                            &child_path(path, key),
                            format!("`{key}` applies to a `url` server, not to a `command`"),
                        );
                    }
                }
                self.command(node, command, path)?
            }
            (None, Some(url)) => {
                for key in ["env", "cwd"] {
                    if let Some(n) = node.get(key) {
                        self.reader.error(
                            n.location,
                            &child_path(path, key),
                            format!("`{key}` applies to a `command` server, not to a `url`"),
                        );
                    }
                }
                self.url(node, url, path)?
            }
            (Some(_), Some(url)) => {
                self.reader.error(
                    url.location,
                    path,
                    "a server has a `command` or a `url`, not both",
                );
                return None;
            }
            (None, None) => {
                self.reader.error_with_hint(
                    node.location,
                    path,
                    "a server needs a `command` (stdio) or a `url` (HTTP)",
                    "e.g. `command: [\"npx\", \"-y\", \"@modelcontextprotocol/server-memory\"]`",
                );
                return None;
            }
        };
        let policy = node
            .get("policy")
            .and_then(|n| self.policy_ref(n, &child_path(path, "policy")));
        let restart = match node.get("restart") {
            None => Restart::OnFailure,
            Some(n) => match self
                .reader
                .string(n, &child_path(path, "restart"))?
                .as_str()
            {
                "on-failure" => Restart::OnFailure,
                "always" => Restart::Always,
                "never" => Restart::Never,
                other => {
                    self.reader.error_with_hint(
                        n.location,
                        &child_path(path, "restart"),
                        format!("unknown restart policy {other:?}"),
                        "use `on-failure` (the default), `always` or `never`",
                    );
                    return None;
                }
            },
        };
        if restart != Restart::OnFailure && matches!(transport, ServerTransport::Url { .. }) {
            let n = node.get("restart")?;
            self.reader.error(
                n.location,
                &child_path(path, "restart"),
                "`restart` applies to a `command` server (an HTTP server is reconnected to)",
            );
        }
        Some(ServerConfig {
            name: name.to_string(),
            location,
            transport,
            policy,
            restart,
        })
    }

    fn command(&mut self, server: &Node, node: &Node, path: &str) -> Option<ServerTransport> {
        let command_path = child_path(path, "command");
        let items = self.reader.sequence(node, &command_path)?;
        if items.is_empty() {
            self.reader
                .error(node.location, &command_path, "the command is empty");
            return None;
        }
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = index_path(&command_path, i);
            if let Some(arg) = self.expanded(item, &item_path) {
                argv.push(arg);
            }
        }
        let env = match server.get("env") {
            Some(n) => self.string_map(n, &child_path(path, "env"), true)?,
            None => BTreeMap::new(),
        };
        let cwd = server
            .get("cwd")
            .and_then(|n| self.expanded(n, &child_path(path, "cwd")));
        (argv.len() == items.len()).then_some(ServerTransport::Command { argv, env, cwd })
    }

    fn url(&mut self, server: &Node, node: &Node, path: &str) -> Option<ServerTransport> {
        let url_path = child_path(path, "url");
        let url = self.expanded(node, &url_path)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.reader.error(
                node.location,
                &url_path,
                "the url must start with http:// or https://",
            );
            return None;
        }
        let headers = match server.get("headers") {
            Some(n) => self.string_map(n, &child_path(path, "headers"), false)?,
            None => BTreeMap::new(),
        };
        let upstream_auth = match server.get("upstream_auth") {
            Some(n) => Some(crate::compile::upstream_auth::compile_upstream_auth(
                &mut self.reader,
                n,
                &child_path(path, "upstream_auth"),
            )?),
            None => None,
        };
        Some(ServerTransport::Url {
            url,
            headers,
            upstream_auth,
        })
    }

    /// A mapping of names to strings (`env`, `headers`), values expanded.
    fn string_map(
        &mut self,
        node: &Node,
        path: &str,
        env_names: bool,
    ) -> Option<BTreeMap<String, String>> {
        let entries = self.reader.open_mapping(node, path)?;
        let mut map = BTreeMap::new();
        let mut complete = true;
        for (key, value) in entries {
            let value_path = child_path(path, &key.name);
            // An environment variable's name may be anything without `=` or NUL (a server's
            // documented names are not always shell-friendly); a header's is a token.
            let name_ok = if env_names {
                !key.name.is_empty() && !key.name.contains(['=', '\0'])
            } else {
                !key.name.is_empty()
                    && key
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            };
            if !name_ok {
                self.reader.error(
                    key.location,
                    &value_path,
                    format!("{:?} is not a valid name here", key.name),
                );
                complete = false;
                continue;
            }
            match self.expanded(value, &value_path) {
                Some(v) => {
                    map.insert(key.name.clone(), v);
                }
                None => complete = false,
            }
        }
        complete.then_some(map)
    }

    fn policy_ref(&mut self, node: &Node, path: &str) -> Option<PolicyRef> {
        let text = self.reader.name(node, path)?;
        Some(PolicyRef {
            path: text,
            location: node.location,
            config_path: path.to_string(),
        })
    }

    /// A string (numbers are taken as written: `MAX: 5` in `env`), with `${VAR}` expanded.
    fn expanded(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = match &node.kind {
            NodeKind::Number(n) => n.clone(),
            NodeKind::Bool(b) => b.to_string(),
            _ => self.reader.string(node, path)?,
        };
        match expand(&text, self.env) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.reader.error_with_hint(
                    node.location,
                    path,
                    problem,
                    "set the variable in toolgate's environment, or write `$${` for a literal `${`",
                );
                None
            }
        }
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Replaces every `${NAME}` in `text` with the variable's value; `$${` is a literal `${`.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(reference) = after.strip_prefix('{') {
            let Some(end) = reference.find('}') else {
                return Err("`${` without a closing `}`".to_string());
            };
            let name = &reference[..end];
            if !is_variable_name(name) {
                return Err(format!("{name:?} is not a variable name"));
            }
            match env(name) {
                Some(value) => out.push_str(&value),
                None => return Err(format!("the environment variable {name} is not set")),
            }
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    fn read(text: &str) -> Result<GatewayConfig, Vec<Diagnostic>> {
        read_gateway_config(text, &env)
    }

    #[test]
    fn reads_a_complete_config() {
        let config = read(
            "version: \"1\"\nservers:\n  files:\n    command: [\"npx\", \"-y\", \"fs\", \"/srv\"]\n    policy: files.yaml\n  memory:\n    command: [node, m.js]\n    env: {MEMORY_FILE_PATH: \"/tmp/m.json\", N: 5}\n    cwd: /tmp\n    restart: never\n  gh:\n    url: \"https://example.invalid/mcp\"\n    headers: {Authorization: \"Bearer ${TOKEN}\"}\npolicy: everyone.yaml\ntool_names: prefixed\n",
        )
        .unwrap();
        let names: Vec<_> = config.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["files", "memory", "gh"]);
        assert_eq!(config.policy.unwrap().path, "everyone.yaml");
        assert_eq!(config.servers[1].restart, Restart::Never);
        match &config.servers[1].transport {
            ServerTransport::Command { env, cwd, .. } => {
                assert_eq!(env["N"], "5");
                assert_eq!(cwd.as_deref(), Some("/tmp"));
            }
            other => panic!("{other:?}"),
        }
        match &config.servers[2].transport {
            ServerTransport::Url { headers, .. } => {
                assert_eq!(headers["Authorization"], "Bearer s3cret")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.servers[0].policy.as_ref().unwrap().location.line, 5);
    }

    #[test]
    fn reports_every_problem_with_its_place() {
        let errors = read(
            "version: \"1\"\nservers:\n  Files:\n    command: [a]\n  a__b:\n    command: [a]\n  ok:\n    command: [a]\n    colour: red\n  gh:\n    url: \"https://x.invalid/${MISSING}\"\n  both:\n    command: [a]\n    url: \"http://x.invalid\"\n  none: {}\n",
        )
        .unwrap_err();
        let text: Vec<String> = errors
            .iter()
            .map(|d| d.display_in("g.yaml").to_string())
            .collect();
        let joined = text.join("\n");
        assert!(joined.contains("g.yaml:3:3"), "{joined}");
        assert!(joined.contains("\"a__b\" cannot name a server"), "{joined}");
        assert!(joined.contains("unknown key \"colour\""), "{joined}");
        assert!(joined.contains("MISSING is not set"), "{joined}");
        assert!(joined.contains("not both"), "{joined}");
        assert!(joined.contains("needs a `command`"), "{joined}");
        assert_eq!(errors.len(), 6, "{joined}");
    }

    #[test]
    fn expansion_is_exact() {
        assert_eq!(expand("a${TOKEN}b", &env).unwrap(), "as3cretb");
        assert_eq!(expand("$${TOKEN} $5 $", &env).unwrap(), "${TOKEN} $5 $");
        assert!(expand("${TOKEN", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
        assert!(expand("${UNSET}", &env).is_err());
    }

    #[test]
    fn tells_configs_from_policies() {
        assert!(is_gateway_config("version: \"1\"\nservers: {}\n"));
        assert!(!is_gateway_config("version: \"1\"\ntools: {}\n"));
        assert!(!is_gateway_config("{"));
    }

    #[test]
    fn aggregated_names_split_at_the_first_separator() {
        assert_eq!(
            split_aggregated_name("files__read_file"),
            Some(("files", "read_file"))
        );
        assert_eq!(split_aggregated_name("a__b__c"), Some(("a", "b__c")));
        assert_eq!(split_aggregated_name("plain"), None);
        assert_eq!(split_aggregated_name("__x"), None);
        assert_eq!(split_aggregated_name("x__"), None);
        let name = aggregated_name("mem", "get__it");
        assert_eq!(split_aggregated_name(&name), Some(("mem", "get__it")));
    }

    #[test]
    fn server_names() {
        for ok in ["files", "gh-2", "a_b", "x"] {
            assert!(valid_server_name(ok), "{ok}");
        }
        for bad in ["", "Files", "a__b", "_a", "a_", "a.b", "a b"] {
            assert!(!valid_server_name(bad), "{bad}");
        }
    }
}
