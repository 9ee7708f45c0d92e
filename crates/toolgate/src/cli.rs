//! Command-line arguments. The root command runs the proxy, as Intercept's does, so an MCP
//! client config written for one works for the other.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "toolgate",
    version,
    about = "A policy gateway for MCP: decides every tools/call before it reaches the server.",
    long_about = "A policy gateway for the Model Context Protocol.\n\n\
        toolgate sits between an MCP client and an MCP server and decides every tools/call from a \
        policy file: allow, deny, rate-limit and budget, check arguments, hide tools. Denied calls \
        never reach the server; every decision is audited.\n\n\
        Run a server behind it (this is what an MCP client's config points at):\n  \
        toolgate -c policy.yaml -- npx -y @modelcontextprotocol/server-everything\n\n\
        Run many servers behind one gateway, each with its own policy (a gateway config has \
        `servers`; see docs/GATEWAY.md):\n  \
        toolgate -c gateway.yaml\n\n\
        Check a policy, and see how it decides a call:\n  \
        toolgate validate -c policy.yaml\n  \
        toolgate explain -c policy.yaml --tool create_refund --args '{\"amount\": 500}'\n\n\
        Test it, and see what a change would do before it refuses anything:\n  \
        toolgate test policy.test.yaml\n  \
        toolgate diff policy.yaml policy.next.yaml\n  \
        toolgate replay -c policy.next.yaml --since 7d\n  \
        toolgate -c policy.next.yaml --shadow -- <server>",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the same as giving its flags without a subcommand).
    Run(Box<RunArgs>),
    /// Check a policy file and report every problem with its line and column.
    Validate(ValidateArgs),
    /// Show how the policy decides one call, rule by rule, without side effects.
    Explain(ExplainArgs),
    /// Run policy test files: calls with the decision each must get.
    #[command(long_about = TEST_ABOUT)]
    Test(TestArgs),
    /// Compare two policies by what they do: tools newly hidden or refused, limits raised or
    /// lowered, rules added, removed or changed. Exits 0 when they mean the same, 1 when they
    /// differ, 2 when a file is not a valid policy.
    Diff(DiffArgs),
    /// Re-decide the calls an audit log recorded under another policy, and report which
    /// decisions would change (and which cannot be known from what the log holds).
    Replay(ReplayArgs),
    /// Print the JSON Schema of policy files (or of test files), for editors.
    Schema(SchemaArgs),
    /// Put the MCP servers a client already runs behind toolgate: writes a gateway config
    /// with a starter policy per server and rewrites the client's config to launch toolgate
    /// (after a backup; --undo restores it).
    #[command(long_about = INIT_ABOUT)]
    Init(InitArgs),
    /// Summarise the audit log: instances, decisions, deny rate, top deny rules, recent
    /// denials and failed reloads, across every instance and rotated file.
    Status(StatusArgs),
    /// Classify a server's tools by risk (Read, Write, Execute, Destructive, Financial, Other).
    Classify(ClassifyArgs),
    /// Connect to a server, classify its tools, and write a starter policy.
    Scan(ScanArgs),
    /// List, inspect, approve and deny calls waiting for a person's approval (the state the
    /// gateways share: --state-dir / --state-dsn).
    Approvals(ApprovalsArgs),
    /// Check the audit log: every line chained to the one before it.
    Audit(AuditArgs),
    /// Tool definition pins: list them, see how a tool changed, approve a change, or check a
    /// server against a lock file in CI.
    #[command(long_about = PINS_ABOUT)]
    Pins(PinsArgs),
}

const PINS_ABOUT: &str = "Tool definition pins.\n\n\
The gateway pins each tool's definition (name, title, description, input and output schema, \
annotations) and the server's instructions when it first lists them, in the state it shares \
with other gateways. When a server later lists something else under a pinned name, the \
policy's `pinning.on_change` decides (hide, deny or warn) until a person approves the change:\n\n  \
toolgate pins list                       # what is pinned, what changed, what is new\n  \
toolgate pins diff files/read_file       # how it changed\n  \
toolgate pins approve files/read_file    # the new definition becomes the pin\n\n\
Pins can also come from a committed lock file (`pinning.lock` in the policy):\n\n  \
toolgate scan --lock tools.lock -- npx -y @modelcontextprotocol/server-filesystem /srv\n  \
toolgate pins check --lock tools.lock -- npx -y @modelcontextprotocol/server-filesystem /srv\n\n\
`check` exits 1 when the server's tools drift from the lock, for CI.";

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Walk every instance's hash chain, across rotated files. Exits 0 and prints how many
    /// lines it verified, or exits 1 naming the first line that was changed, removed or moved
    /// (2 when the log cannot be read).
    Verify {
        /// Audit directory to check (default: <state-dir>/audit).
        #[arg(long, value_name = "DIR")]
        audit_dir: Option<PathBuf>,

        /// State directory whose audit log to check (ignored with --audit-dir).
        #[arg(
            long,
            value_name = "DIR",
            env = "TOOLGATE_STATE_DIR",
            default_value = "~/.toolgate"
        )]
        state_dir: String,

        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
}

#[derive(Debug, Args)]
pub struct PinsArgs {
    #[command(subcommand)]
    pub action: PinsAction,

    #[command(flatten)]
    pub state: StateArgs,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum PinsAction {
    /// Every pin, with the tools whose listed definition changed or that wait as new.
    List {
        /// Only this server's pins.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
    },
    /// How a tool's listed definition differs from its pin.
    Diff {
        /// SERVER/TOOL, as `pins list` shows it.
        #[arg(value_name = "SERVER/TOOL")]
        target: String,
    },
    /// Make what a server lists now the pin: one tool, or every waiting change.
    Approve {
        /// SERVER/TOOL, or SERVER/instructions for the server's instructions.
        #[arg(
            value_name = "SERVER/TOOL",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        target: Option<String>,
        /// Approve every waiting change (of --server, if given).
        #[arg(long)]
        all: bool,
        /// With --all: only this server's changes.
        #[arg(long, value_name = "NAME", requires = "all")]
        server: Option<String>,
    },
    /// Forget pins: the next listing is trusted on first use again.
    Reset {
        /// Only this server's pins.
        #[arg(
            long,
            value_name = "NAME",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        server: Option<String>,
        /// Every server's pins.
        #[arg(long)]
        all: bool,
    },
    /// Connect to a server and compare its tools with a lock file; exits 1 on any drift.
    Check(PinsCheckArgs),
}

#[derive(Debug, Args)]
pub struct PinsCheckArgs {
    /// The lock file (written by `toolgate scan --lock`).
    #[arg(long, value_name = "FILE")]
    pub lock: PathBuf,

    /// A remote server to ask instead of a command: its Streamable HTTP (or legacy SSE) URL.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub upstream: Option<String>,

    /// A header sent on every request to the --upstream server, "Name: value". Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "upstream")]
    pub headers: Vec<String>,

    /// Seconds to wait for the server at each step.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// The MCP server to check, after `--`: command and arguments.
    #[arg(
        last = true,
        value_name = "SERVER_COMMAND",
        required_unless_present = "upstream"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailModeArg {
    /// Refuse calls that need a counter while the store is unreachable.
    Closed,
    /// Let such calls through uncounted (recorded in the audit log).
    Open,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Policy file (YAML or JSON; Intercept and PolicyLayer forms), or a gateway config (a
    /// file with `servers`: many servers, each with its own policy). Reloaded when it changes.
    #[arg(short = 'c', long = "config", value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,

    /// Directory for state and audit files.
    #[arg(
        long,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// Counter store: sqlite:PATH (default: sqlite:<state-dir>/state.db), memory:, or
    /// redis://[user:password@]host[:port][/db] (also rediss://, redis+cluster://h:p,h:p).
    /// Prefer the environment variable for a DSN with a password (command lines are visible).
    #[arg(
        long,
        value_name = "DSN",
        env = "TOOLGATE_STATE_DSN",
        hide_env_values = true
    )]
    pub state_dsn: Option<String>,

    /// Prefix for every counter key, to share one store between separate deployments.
    #[arg(long, value_name = "PREFIX", default_value = "toolgate")]
    pub state_prefix: String,

    /// What to do when a call needs a counter and the store cannot be reached.
    #[arg(long, value_enum, default_value = "closed")]
    pub state_fail_mode: FailModeArg,

    /// Log level or filter (error, warn, info, debug, trace). Logs go to stderr.
    #[arg(
        long,
        value_name = "LEVEL",
        env = "TOOLGATE_LOG",
        default_value = "info"
    )]
    pub log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Directory for the audit log (default: <state-dir>/audit).
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// Do not write an audit log.
    #[arg(long, conflicts_with = "audit_dir")]
    pub no_audit: bool,

    /// The identity this client acts as (for scope: identity counters and the audit log).
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,

    /// Text that starts every denial message (default "[POLICY DENIED]").
    #[arg(long, value_name = "TEXT")]
    pub deny_prefix: Option<String>,

    /// Seconds a forwarded call may take before the client is told it timed out. The call
    /// still counts against its limits (the server may have run it), and whatever the
    /// server answers later is dropped.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub call_timeout: u64,

    /// Seconds toolgate keeps waiting for the answer to a call the client cancelled after it
    /// was forwarded (a JSON-RPC error then gives its quota back; anything else, or silence,
    /// and it counts).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub cancel_grace: u64,

    /// Seconds to wait at each step of stopping the server (stdin closed, SIGTERM, SIGKILL).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub shutdown_grace: u64,

    /// Shadow mode: forward every call, and audit what the policy would have done
    /// (would_deny, would_hide, would_require_approval) instead of doing it. Limits count in
    /// shadow counters of their own. The same as `mode: shadow` in the policy.
    #[arg(long)]
    pub shadow: bool,

    /// The server's name for its tool pins (and `toolgate pins`): lower-case letters,
    /// digits, `_` and `-`. Default: derived from the command's package or program
    /// (`npx -y @modelcontextprotocol/server-filesystem /srv` is `server-filesystem`) or
    /// from the --upstream URL's host (`https://mcp.example.com/mcp` is `mcp-example-com`).
    #[arg(long, value_name = "NAME", value_parser = parse_server_name)]
    pub server_name: Option<String>,

    /// Do not reload the policy when its file changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,

    /// How toolgate talks to the client: stdio (default), or http to serve Streamable HTTP
    /// at /mcp and legacy HTTP+SSE at /sse. `sse` keeps Intercept's meaning: the --upstream
    /// server speaks legacy HTTP+SSE (the client side stays stdio).
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    pub transport: Option<TransportArg>,

    /// The MCP server's URL, instead of a command after `--` (Streamable HTTP; legacy
    /// HTTP+SSE is detected when the handshake is refused). Without --transport: bridge this
    /// stdio client to it.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// Which protocol the --upstream URL speaks.
    #[arg(long, value_enum, default_value = "auto", value_name = "PROTOCOL")]
    pub upstream_protocol: UpstreamProtocolArg,

    /// A header sent on every request to the --upstream server, "Name: value". Repeatable.
    /// The client's own Authorization header is never forwarded; this is how credentials reach
    /// the upstream.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Address the HTTP listener binds to.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,

    /// Port of the HTTP listener; 0 picks a free one (the URL is printed on stderr).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,

    /// Host header values the listener accepts besides localhost names (DNS-rebinding
    /// protection). Repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,

    /// Browser origins the listener accepts (default: localhost origins only). Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,

    /// Most client sessions the listener keeps at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_sessions: usize,

    /// Most sessions one identity (a bearer token's name) may hold, so one client cannot
    /// take every --max-sessions slot.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_sessions_per_identity: usize,

    /// Most connections the listener serves at once; more wait until one ends.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Let the listener bind to a non-loopback address although the policy has no
    /// `identities`: anyone who can reach the port may then call tools.
    #[arg(long)]
    pub allow_unauthenticated: bool,

    /// Most server child processes alive at once (stdio upstreams: one per session; behind a
    /// gateway config, one per stdio server per session).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_children: usize,

    /// Seconds without a request or open stream after which a session ends (its child exits).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub session_idle_timeout: u64,

    /// Largest request body the listener reads, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a client may take to send a request's headers.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds a client may take to send a request's body.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub body_timeout: u64,

    /// Most approval requests one identity may have waiting for a decision; a call that
    /// would make one more is refused at once (its request is never announced), so one
    /// client cannot flood the people who decide.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_pending_approvals: usize,

    /// Serve the admin API for approval requests (list, show, approve, deny, event stream)
    /// and the web console (docs/CONSOLE.md) on this loopback address: PORT, IP:PORT or
    /// localhost:PORT (0 picks a free port; the URLs are printed on stderr). Every request
    /// needs the admin bearer token; the console signs in with it at /?token=<token>.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// File holding the admin API's bearer token. Default: the TOOLGATE_ADMIN_TOKEN
    /// variable, else <state-dir>/admin.token (made with a random token, mode 0600, when
    /// missing).
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    pub admin_token_file: Option<PathBuf>,

    /// Serve Prometheus metrics at /metrics on this address, without a token, for a
    /// scraper: PORT, IP:PORT or localhost:PORT (0 picks a free port; the URL is printed on
    /// stderr). Loopback only, unless --metrics-public. The admin API (--admin-listen)
    /// serves them too, behind its token. See docs/OBSERVABILITY.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Let --metrics-listen bind an address other machines can reach (the metrics name
    /// tools, rules and servers, never arguments or identities).
    #[arg(long, requires = "metrics_listen")]
    pub metrics_public: bool,

    /// The MCP server to run, after `--`: command and arguments (none with a gateway config,
    /// which names its servers).
    #[arg(last = true, value_name = "SERVER_COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// The client speaks stdio (the default).
    Stdio,
    /// Serve Streamable HTTP (/mcp) and legacy HTTP+SSE (/sse) to clients.
    Http,
    /// The --upstream server speaks legacy HTTP+SSE.
    Sse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamProtocolArg {
    /// Streamable HTTP, falling back to legacy HTTP+SSE when the handshake is refused.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// Legacy HTTP+SSE (protocol 2024-11-05).
    Sse,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Policy file to check.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// The transport the policy will be served on: warns about limits whose scope cannot
    /// partition calls there (per-session limits for sessionless HTTP requests, per-identity
    /// limits without identities).
    #[arg(long, value_enum, default_value = "stdio")]
    pub transport: TransportArg,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

const TEST_ABOUT: &str = "Run policy test files: calls with the decision each must get.\n\n\
A test file names the policy it tests (relative to the test file) and lists cases:\n\n  \
policy: policy.yaml\n  \
cases:\n    \
- name: small refunds pass\n      \
tool: create_refund\n      \
args: {amount: 500}\n      \
expect: allow                 # allow | deny | hidden | approval | malformed\n    \
- name: the sixth issue in an hour is refused\n      \
tool: create_issue\n      \
repeat: 6                     # the same call 6 times; counters carry over\n      \
expect: [allow, allow, allow, allow, allow, deny]\n      \
rule: hourly issue limit      # optional: the rule that must deny\n\n\
A case may also give identity, session, category (for `categories` rules) and counters \
(starting values, by the keys `explain` prints). Every call is decided as the gateway \
decides it, without a server or a store.\n\n\
Exit status: 0 when every case passes, 1 when a case fails, 2 when a file cannot be read \
or is not a valid test file or policy.";

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files (YAML or JSON).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Also write the results as JUnit XML to this file, for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Print only failures and the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file format: intercept (YAML rules), policylayer (JSON entries), or test (policy
    /// test files). Without it: one schema that accepts either policy form.
    #[arg(long, value_enum, value_name = "FORM")]
    pub form: Option<SchemaFormArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaFormArg {
    Intercept,
    Policylayer,
    Test,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The policy to re-decide the calls under.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// Audit directory to read (default: <state-dir>/audit).
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// State directory whose audit log to read (ignored with --audit-dir).
    #[arg(
        long,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// Only calls from this long before now: 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// How many changed and undetermined calls to list (text output; JSON lists all).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub show: usize,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy in force (or the one before a change).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,

    /// The policy to compare it with.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file, or a gateway config (the call is then explained by the gateway-wide
    /// policy and by its server's own).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// Tool name of the call (with a gateway config: `<server>__<tool>`, or the server's own
    /// name with --server).
    #[arg(long, value_name = "NAME")]
    pub tool: String,

    /// With a gateway config: the server the tool belongs to (--tool is then its own name).
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,

    /// The call's arguments as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,

    /// Identity making the call (for scope: identity counters, and identity.name in
    /// conditions).
    #[arg(long, value_name = "ID")]
    pub identity: Option<String>,

    /// The caller's OAuth scopes, space- or comma-separated (identity.scopes in conditions).
    #[arg(long, value_name = "SCOPES", requires = "identity")]
    pub scopes: Option<String>,

    /// A claim of the caller's token, as CLAIM=VALUE (VALUE is read as JSON when it is JSON,
    /// else as text; repeatable). For identity.claims.<claim> in conditions.
    #[arg(long = "claim", value_name = "CLAIM=VALUE", requires = "identity")]
    pub claims: Vec<String>,

    /// Session making the call (for scope: session counters).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,

    /// The tool's risk category (Read, Write, Execute, Destructive, Financial, Other), as
    /// `toolgate classify` reports it: a tool the policy does not name then takes the rules of
    /// `categories.<CATEGORY>`, as the gateway does once it has listed the tool.
    #[arg(long, value_name = "CATEGORY")]
    pub category: Option<String>,

    /// Assume a counter holds a value, e.g. create_issue._rate_hour=5. Repeatable.
    #[arg(long = "counter", value_name = "KEY=VALUE")]
    pub counters: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Audit directory to read (default: <state-dir>/audit).
    // Not a clap conflict with --state-dir: that also comes from TOOLGATE_STATE_DIR, and an
    // exported variable must not make an explicit --audit-dir an error.
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// State directory whose audit log to read (ignored with --audit-dir).
    #[arg(
        long,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// Count calls per minute over this many minutes, up to the newest line in the log.
    #[arg(
        long,
        value_name = "MINUTES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub since: u32,

    /// How many recent denials and failed reloads to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub recent: usize,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// An aligned table, riskiest first.
    Table,
    /// One object per tool, in the server's order.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyOutputFormat {
    /// Intercept-form YAML with the tools' descriptions as comments.
    Yaml,
    /// PolicyLayer-form JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// A saved tools/list result ({"tools": [...]}, a whole JSON-RPC response, or a plain
    /// array of tools) instead of a live server.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["command", "upstream"])]
    pub tools_json: Option<PathBuf>,

    /// A remote server to ask instead of a command: its Streamable HTTP (or legacy SSE) URL.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub upstream: Option<String>,

    /// A header sent on every request to the --upstream server, "Name: value". Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "upstream")]
    pub headers: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableFormat,

    /// Seconds to wait for the server at each step.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// The MCP server to run and ask for its tools, after `--`.
    #[arg(
        last = true,
        value_name = "SERVER_COMMAND",
        required_unless_present_any = ["tools_json", "upstream"]
    )]
    pub command: Vec<OsString>,
}

const INIT_ABOUT: &str =
    "Put the MCP servers a client already runs behind toolgate, in one step.\n\n\
    Finds the client's config (Claude Desktop's claude_desktop_config.json, Claude Code's \
    .mcp.json in this directory, Cursor's ~/.cursor/mcp.json, VS Code's .vscode/mcp.json in this \
    directory), writes a gateway config with every server it names (DIR/<client>/gateway.yaml), \
    lists each server's tools and writes a starter policy for it by risk (as `toolgate scan` \
    does; a server that cannot be started is kept, with a comment saying why), then rewrites the \
    client's config to launch `toolgate -c gateway.yaml` instead. The client's config is backed up \
    first, beside it, with a timestamp; `--undo` restores it byte for byte.\n\n\
    Examples:\n  \
    toolgate init --dry-run                  # show what would change, write nothing\n  \
    toolgate init                            # every client config found\n  \
    toolgate init --client cursor --client-config ./mcp.json\n  \
    toolgate init --undo";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The client whose config to adopt (default: every known client's config that exists).
    #[arg(long, value_enum)]
    pub client: Option<ClientArg>,

    /// The client's config file, when it is not where the client keeps it by default.
    #[arg(long, value_name = "PATH")]
    pub client_config: Option<PathBuf>,

    /// Where the gateway configs and policies go (default: ~/.toolgate/gateways).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Print what would be written and the change to the client's config; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Restore the client's config from the newest backup `toolgate init` made.
    #[arg(long, conflicts_with = "dry_run")]
    pub undo: bool,

    /// Seconds to wait for each server to list its tools.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

/// The MCP clients `toolgate init` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientArg {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Where to write the policy (default: standard output). A starter test file for it is
    /// written next to it, as <name>.test.yaml (run it with `toolgate test`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Policy form to write.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: PolicyOutputFormat,

    /// Replace FILE (and its test file) if they exist.
    #[arg(long)]
    pub force: bool,

    /// Do not write the starter test file next to the policy.
    #[arg(long)]
    pub no_tests: bool,

    /// Write a pin lock file of the server's tools and instructions to FILE (for the
    /// policy's `pinning.lock`, and `toolgate pins check`). The starter policy is then
    /// written only with -o.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,

    /// The server's name in the lock file (default: derived as the gateway's
    /// --server-name is).
    #[arg(long, value_name = "NAME", value_parser = parse_server_name, requires = "lock")]
    pub server_name: Option<String>,

    /// A remote server to ask instead of a command: its Streamable HTTP (or legacy SSE) URL.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub upstream: Option<String>,

    /// A header sent on every request to the --upstream server, "Name: value". Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "upstream")]
    pub headers: Vec<String>,

    /// Seconds to wait for the server at each step.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// The MCP server to scan, after `--`: command and arguments.
    #[arg(
        last = true,
        value_name = "SERVER_COMMAND",
        required_unless_present = "upstream"
    )]
    pub command: Vec<OsString>,
}

/// Where the gateways keep their shared state, for commands that read or change it.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Directory for state and audit files (the gateway's --state-dir).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "TOOLGATE_STATE_DIR",
        default_value = "~/.toolgate"
    )]
    pub state_dir: String,

    /// The gateway's state store: sqlite:PATH (default: sqlite:<state-dir>/state.db) or
    /// redis://… (records shared by every gateway on that Redis).
    #[arg(
        long,
        global = true,
        value_name = "DSN",
        env = "TOOLGATE_STATE_DSN",
        hide_env_values = true
    )]
    pub state_dsn: Option<String>,

    /// The gateway's --state-prefix.
    #[arg(long, global = true, value_name = "PREFIX", default_value = "toolgate")]
    pub state_prefix: String,

    /// Directory of the audit log the change is recorded in (default: <state-dir>/audit).
    #[arg(long, global = true, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,

    /// Do not record the change in the audit log.
    #[arg(long, global = true)]
    pub no_audit: bool,
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub action: ApprovalsAction,

    #[command(flatten)]
    pub state: StateArgs,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsAction {
    /// Requests waiting for a decision, newest first (with --all: recent ones in any state).
    List {
        #[arg(long)]
        all: bool,
        /// Most requests to show.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
    /// One request, with the call's full arguments.
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Approve a request: the next identical call goes through, once.
    Approve {
        #[arg(value_name = "ID")]
        id: String,
        /// A note kept with the decision (audited).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Deny a request; the agent is told the reason.
    Deny {
        #[arg(value_name = "ID")]
        id: String,
        /// Why (the agent receives it).
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
    },
}

/// `--server-name`: `[a-z0-9_-]+`, as in a gateway config.
pub fn parse_server_name(text: &str) -> Result<String, String> {
    if toolgate_proxy::pinning::server_name::is_valid(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a server name: use 1 to {} lower-case letters, digits, `_` or `-`",
            toolgate_proxy::pinning::server_name::MAX_LEN
        ))
    }
}
