//! The parts every counter limit is made of, whichever form wrote it: windows, scopes,
//! increments, and where the counter lives.

use super::reader::{child_path, Reader};
use crate::amount::Amount;
use crate::args::{ArgPath, ArgPathError};
use crate::ir::{Increment, Limit, Scope, GLOBAL_NAMESPACE};
use crate::source::{Node, NodeKind};
use crate::window::{Window, WindowMode};

/// Whose rule a limit belongs to: a named tool, every tool (`"*"` / `all_tools`), or the
/// unnamed tools of a risk category (`categories.<Category>`).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Tool(&'a str),
    AllTools,
    Category(&'a str),
}

impl Owner<'_> {
    /// The namespace Intercept gives this owner's counters in `state.<ns>.<counter>` paths.
    pub fn state_namespace(&self) -> &str {
        match self {
            Owner::Tool(name) | Owner::Category(name) => name,
            Owner::AllTools => GLOBAL_NAMESPACE,
        }
    }
}

/// A `scope:` as written.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopeChoice {
    Global,
    Tool,
    Session,
    Identity,
    Argument(ArgPath),
}

pub const SCOPE_HELP: &str =
    "use global, tool, session, identity (or grant), or args.<path> such as args.repo";

pub fn read_scope(reader: &mut Reader, node: &Node, path: &str) -> Option<ScopeChoice> {
    let text = reader.name(node, path)?;
    Some(match text.as_str() {
        "global" => ScopeChoice::Global,
        "tool" => ScopeChoice::Tool,
        "session" => ScopeChoice::Session,
        "identity" | "grant" => ScopeChoice::Identity,
        other if other.starts_with("args.") => match ArgPath::parse(other) {
            Ok(p) => ScopeChoice::Argument(p),
            Err(e) => {
                reader.error_with_hint(node.location, path, e.to_string(), SCOPE_HELP);
                return None;
            }
        },
        other => {
            reader.error_with_hint(
                node.location,
                path,
                format!("unknown scope {other:?}"),
                SCOPE_HELP,
            );
            return None;
        }
    })
}

/// A window written as a name or duration (`hour`, `15m`) or, as PolicyLayer's pages do,
/// a number of seconds (`60`).
pub fn read_window(reader: &mut Reader, node: &Node, path: &str) -> Option<Window> {
    let parsed = match &node.kind {
        NodeKind::String(text) => Window::parse(text),
        NodeKind::Number(text) => match text.parse::<u64>() {
            Ok(seconds) => Window::from_seconds(seconds),
            Err(_) => {
                reader.error(
                    node.location,
                    path,
                    format!("window {text} must be a whole number of seconds"),
                );
                return None;
            }
        },
        _ => {
            reader.error(
                node.location,
                path,
                format!(
                    "expected a window such as minute, hour, day, 15m or 60 (seconds), found {}",
                    node.type_name()
                ),
            );
            return None;
        }
    };
    match parsed {
        Ok(w) => Some(w),
        Err(e) => {
            reader.error(node.location, path, e.to_string());
            None
        }
    }
}

pub fn read_mode(reader: &mut Reader, node: &Node, path: &str) -> Option<WindowMode> {
    match reader.name(node, path)?.as_str() {
        "fixed" => Some(WindowMode::Fixed),
        "sliding" => Some(WindowMode::Sliding),
        other => {
            reader.error_with_hint(
                node.location,
                path,
                format!("unknown window mode {other:?}"),
                "use fixed (calendar-aligned, the default) or sliding",
            );
            None
        }
    }
}

/// A positive amount (`max`, `increment`).
pub fn read_positive_amount(
    reader: &mut Reader,
    node: &Node,
    path: &str,
    what: &str,
) -> Option<Amount> {
    let text = reader.number_text(node, path)?;
    match Amount::parse(text) {
        Ok(a) if a > Amount::ZERO => Some(a),
        Ok(_) => {
            reader.error(
                node.location,
                path,
                format!("{what} must be greater than zero, got {text}"),
            );
            None
        }
        Err(e) => {
            reader.error(node.location, path, format!("{what}: {e}"));
            None
        }
    }
}

pub fn read_increment_from(reader: &mut Reader, node: &Node, path: &str) -> Option<Increment> {
    let text = reader.name(node, path)?;
    let message = match ArgPath::parse(&text) {
        Ok(p) => return Some(Increment::FromArgument(p)),
        Err(ArgPathError::NotArgs(_)) => {
            format!("increment_from must start with \"args.\", got {text:?}")
        }
        Err(e) => format!("increment_from: {e}"),
    };
    reader.error_with_hint(
        node.location,
        path,
        message,
        "name the numeric argument to add, e.g. args.amount",
    );
    None
}

/// A counter name: letters, digits, `_` and `-`. Dots and `@` separate the parts of a counter
/// key (`tool.counter@session:"id"`), so a name holding them could share another's counter.
pub fn read_counter_name(reader: &mut Reader, node: &Node, path: &str) -> Option<String> {
    let name = reader.name(node, path)?;
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        reader.error_with_hint(
            node.location,
            path,
            format!("counter name {name:?} contains {bad:?}"),
            "use letters, digits, _ and -, e.g. daily_spend",
        );
        return None;
    }
    Some(name)
}

/// The fields every counter limit shares, read from its mapping whichever form wrote it
/// (an Intercept `state` block, a PolicyLayer limit). A field is `None` when it is absent or
/// could not be read (the reason is then already reported); a missing required field is the
/// caller's to report, since each form words it for its own syntax.
pub struct LimitFields {
    pub counter: Option<String>,
    /// With `mode:` applied.
    pub window: Option<Window>,
    pub max: Option<Amount>,
    /// `increment` or `increment_from`; one per call when neither is written.
    pub increment: Option<Increment>,
    /// As written, or the default the caller gave.
    pub scope: Option<ScopeChoice>,
}

/// Reads [`LimitFields`] from a limit's entries (`get` finds an entry by key); `scope` is
/// the scope when none is written.
pub fn read_limit_fields<'n>(
    reader: &mut Reader,
    scope: ScopeChoice,
    get: impl Fn(&str) -> Option<&'n Node>,
    path: &str,
) -> LimitFields {
    let counter =
        get("counter").and_then(|n| read_counter_name(reader, n, &child_path(path, "counter")));
    let window = get("window").and_then(|n| read_window(reader, n, &child_path(path, "window")));
    let max =
        get("max").and_then(|n| read_positive_amount(reader, n, &child_path(path, "max"), "max"));
    let increment = match (get("increment"), get("increment_from")) {
        (Some(n), Some(_)) => {
            reader.error(
                n.location,
                &child_path(path, "increment"),
                "use either increment or increment_from, not both",
            );
            None
        }
        (Some(n), None) => {
            read_positive_amount(reader, n, &child_path(path, "increment"), "increment")
                .map(Increment::Fixed)
        }
        (None, Some(n)) => read_increment_from(reader, n, &child_path(path, "increment_from")),
        (None, None) => Some(Increment::Fixed(Amount::ONE)),
    };
    let scope = match get("scope") {
        Some(n) => read_scope(reader, n, &child_path(path, "scope")),
        None => Some(scope),
    };
    let window = match get("mode").map(|n| read_mode(reader, n, &child_path(path, "mode"))) {
        None => window,
        Some(Some(mode)) => window.map(|w| Window { mode, ..w }),
        Some(None) => None,
    };
    LimitFields {
        counter,
        window,
        max,
        increment,
        scope,
    }
}

/// Refuses a limit no call could ever fit under (a fixed increment above the maximum), which
/// would deny every call while looking like a limit.
pub fn check_reachable(reader: &mut Reader, node: &Node, path: &str, limit: &Limit) -> bool {
    match limit.increment {
        Increment::Fixed(step) if step > limit.max => {
            reader.error_with_hint(
                node.location,
                path,
                format!(
                    "every call would be denied: each call adds {step} to counter {:?} but its maximum is {}",
                    limit.counter, limit.max
                ),
                "raise max, or lower increment",
            );
            false
        }
        _ => true,
    }
}

/// Builds the limit, placing the counter according to its owner and scope.
pub fn build_limit(
    owner: Owner<'_>,
    counter: String,
    scope: ScopeChoice,
    window: Window,
    max: Amount,
    increment: Increment,
) -> Limit {
    let own_namespace = match owner {
        Owner::Tool(name) => Some(name.to_string()),
        Owner::AllTools => Some(GLOBAL_NAMESPACE.to_string()),
        // Category rules count per called tool, as if written under each tool's own name.
        Owner::Category(_) => None,
    };
    let (namespace, scope) = match scope {
        ScopeChoice::Global => (Some(GLOBAL_NAMESPACE.to_string()), Scope::Shared),
        ScopeChoice::Tool => match owner {
            Owner::Tool(name) => (Some(name.to_string()), Scope::Shared),
            // A tool-scoped counter on a rule for every tool counts each tool apart.
            Owner::AllTools | Owner::Category(_) => (None, Scope::Shared),
        },
        ScopeChoice::Session => (own_namespace, Scope::Session),
        ScopeChoice::Identity => (own_namespace, Scope::Identity),
        ScopeChoice::Argument(p) => (own_namespace, Scope::Argument(p)),
    };
    Limit {
        counter,
        namespace,
        scope,
        window,
        max,
        increment,
    }
}

/// The scope a counter gets when none is written: its own tool, or every tool for `"*"`.
pub fn default_scope(owner: Owner<'_>) -> ScopeChoice {
    match owner {
        Owner::Tool(_) | Owner::Category(_) => ScopeChoice::Tool,
        Owner::AllTools => ScopeChoice::Global,
    }
}
