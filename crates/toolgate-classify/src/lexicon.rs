//! The vocabulary: which words are verbs and what they do, which words name
//! things that change a verb's meaning (money, code, browser tabs), and which
//! word pairs are really one word ("look up", "pull request").
//!
//! Tables are `match` statements so lookups compile to string comparisons
//! with no hashing or allocation. Every entry is a plain English word that
//! commonly appears in MCP tool names; product and vendor names are
//! deliberately absent so the classifier generalises to unseen servers.

/// What a verb does, before its object is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Retrieves or inspects.
    Read,
    /// Creates or changes data.
    Write,
    /// Drives a user interface (click, type); changes page state.
    Interact,
    /// Runs something.
    Execute,
    /// Deletes or irreversibly resets.
    Destroy,
    /// Moves money by itself (pay, refund, purchase).
    Pay,
    /// Session plumbing (login, connect, wait).
    Session,
    /// Records what is in front of it (capture, take): a reading when the
    /// object is a readout ("take screenshot"), a payment when it is money
    /// ("capture payment"), nothing otherwise.
    Capture,
    /// Says too little to decide (manage, handle, generate); only money as
    /// the object gives it meaning ("process a refund").
    Vague,
}

/// A verb's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verb {
    pub action: Action,
    /// True for verbs that are session plumbing when their object is a
    /// session thing: "close tab" is plumbing, "close issue" is a write.
    pub plumbing: bool,
}

/// What a noun tells us about the action applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Thing {
    /// Money itself or a money movement: payment, refund, invoice.
    Money,
    /// Money only on servers that handle payments: "subscription" is billing
    /// on a payments server but a notification setting on a code host.
    MaybeMoney,
    /// Something that runs commands by itself: shell, terminal, script.
    Runnable,
    /// Program text that runs only when a verb says so: sql, query, code.
    CodeText,
    /// A piece of the client session: tab, page, browser, connection.
    SessionPart,
    /// Something that is only ever looked at: status, logs, metadata.
    Readout,
}

const fn verb(action: Action) -> Option<Verb> {
    Some(Verb {
        action,
        plumbing: false,
    })
}

const fn plumbing(action: Action) -> Option<Verb> {
    Some(Verb {
        action,
        plumbing: true,
    })
}

/// The meaning of `word` used as a verb, if it is one.
pub(crate) fn verb_meaning(word: &str) -> Option<Verb> {
    use Action::*;
    match word {
        "get" | "list" | "read" | "fetch" | "retrieve" | "search" | "find" | "lookup" | "query"
        | "describe" | "show" | "view" | "display" | "browse" | "inspect" | "introspect"
        | "explore" | "discover" | "check" | "count" | "aggregate" | "diff" | "decompile"
        | "disassemble" | "compare" | "analyze" | "analyse" | "diagnose" | "detect"
        | "identify" | "explain" | "summarize" | "summarise" | "validate" | "verify" | "lint"
        | "audit" | "scan" | "preview" | "poll" | "watch" | "render" | "extract" | "scrape"
        | "crawl" | "download" | "export" | "pull" | "load" | "access" | "obtain" | "see"
        | "return" | "locate" | "estimate" | "calculate" | "measure" | "research" | "recommend"
        | "suggest" | "learn" | "transcribe" | "translate" | "paginate" | "tail" | "grep"
        | "peek" | "dryrun" | "enumerate" => verb(Read),
        "open" => plumbing(Read),

        "create" | "add" | "update" | "edit" | "set" | "put" | "post" | "insert" | "upsert"
        | "write" | "modify" | "patch" | "rename" | "move" | "copy" | "save" | "store"
        | "upload" | "import" | "append" | "assign" | "unassign" | "attach" | "detach" | "tag"
        | "untag" | "label" | "comment" | "reply" | "send" | "push" | "commit" | "merge"
        | "rebase" | "publish" | "unpublish" | "share" | "unshare" | "invite" | "enable"
        | "disable" | "configure" | "register" | "unregister" | "deregister" | "mark" | "star"
        | "unstar" | "fork" | "clone" | "init" | "initialize" | "initialise" | "schedule"
        | "reschedule" | "mute" | "unmute" | "dismiss" | "accept" | "approve" | "reject"
        | "decline" | "cancel" | "transition" | "change" | "replace" | "record" | "subscribe"
        | "unsubscribe" | "follow" | "unfollow" | "pin" | "unpin" | "archive" | "unarchive"
        | "restore" | "revert" | "link" | "provision" | "define" | "establish" | "initiate"
        | "draft" | "compose" | "react" | "vote" | "confirm" | "allow" | "grant" | "block"
        | "unblock" | "ban" | "unban" | "fix" | "autofix" | "adjust" | "emulate" | "lock"
        | "unlock" | "finalize" | "finalise" | "complete" | "prepare" | "setup" | "apply"
        | "sync" | "reorder" | "rotate" | "renew" | "activate" | "deactivate" | "suspend"
        | "pause" | "resume" | "submit" | "request" | "notify" | "annotate" | "bookmark"
        | "remember" | "memorize" | "memorise" | "migrate" | "upgrade" | "scale" | "recreate"
        | "transfer" | "resize" => verb(Write),
        "close" | "new" | "end" => plumbing(Write),

        "click" | "dblclick" | "hover" | "drag" | "fill" | "type" | "press" | "scroll" | "tap"
        | "swipe" | "focus" | "uncheck" | "keypress" => verb(Interact),
        "select" => plumbing(Interact),

        "run" | "execute" | "exec" | "eval" | "evaluate" | "invoke" | "call" | "trigger"
        | "launch" | "restart" | "reboot" | "deploy" | "redeploy" | "build" | "rebuild"
        | "compile" | "test" | "spawn" | "dispatch" | "rerun" | "retry" | "install" | "ssh"
        | "benchmark" | "fire" | "train" => verb(Execute),
        "start" | "stop" => plumbing(Execute),

        "delete" | "remove" | "rm" | "del" | "drop" | "purge" | "destroy" | "wipe" | "erase"
        | "truncate" | "clear" | "prune" | "reset" | "revoke" | "terminate" | "kill"
        | "uninstall" | "discard" | "overwrite" | "flush" | "nuke" | "obliterate" | "shred"
        | "deprovision" | "teardown" | "evict" | "expunge" | "empty" | "clean" | "cleanup"
        | "forget" | "unset" => verb(Destroy),

        "pay" | "refund" | "purchase" | "buy" | "withdraw" | "deposit" | "payout" | "charge"
        | "tip" | "donate" | "reimburse" | "remit" => verb(Pay),

        "login" | "logout" | "signin" | "signout" | "authenticate" | "connect" | "disconnect"
        | "reconnect" | "ping" | "whoami" | "switch" | "navigate" | "wait" | "echo"
        | "handshake" | "heartbeat" | "sleep" | "quit" | "exit" => verb(Session),

        "manage" | "handle" | "work" | "use" | "process" | "perform" | "do" | "make"
        | "generate" | "design" | "convert" | "help" | "support" | "interact" | "provide"
        | "resolve" | "surface" | "transform" | "operate" | "administer" | "control"
        | "orchestrate" => verb(Vague),
        "capture" | "take" => verb(Capture),

        _ => None,
    }
}

/// The meaning of `word` used as a noun, if it changes how a verb reads.
pub(crate) fn thing_meaning(word: &str) -> Option<Thing> {
    use Thing::*;
    match word {
        "payment" | "refund" | "payout" | "charge" | "invoice" | "fund" | "funds" | "money"
        | "transfer" | "withdrawal" | "deposit" | "remittance" | "purchase" | "donation"
        | "checkout" => Some(Money),
        "subscription" | "order" | "billing" | "bill" | "balance" | "wallet" | "card" => {
            Some(MaybeMoney)
        }
        // "console" is absent: in MCP tools it is mostly the browser console.
        "shell" | "bash" | "sh" | "zsh" | "powershell" | "terminal" | "repl" | "cmd"
        | "command" | "script" => Some(Runnable),
        "code" | "sql" | "query" | "cypher" | "javascript" | "js" | "python" | "expression"
        | "statement" | "snippet" | "program" => Some(CodeText),
        "session" | "tab" | "browser" | "window" | "connection" | "page" => Some(SessionPart),
        "status" | "info" | "information" | "details" | "detail" | "metadata" | "schema"
        | "stats" | "statistics" | "version" | "health" | "log" | "logs" | "history" | "docs"
        | "documentation" | "summary" | "insights" | "usage" | "screenshot" | "snapshot"
        | "output" | "tree" | "overview" | "spec" | "capabilities" | "results" | "size" => {
            Some(Readout)
        }
        _ => None,
    }
}

/// Like [`thing_meaning`], also trying the singular of a plural noun.
pub(crate) fn thing_meaning_any_number(word: &str) -> Option<Thing> {
    thing_meaning(word).or_else(|| singular_forms(word).find_map(thing_meaning))
}

/// Abbreviations that are verbs in identifiers (`rm_file`) but in prose
/// are far more often words of other languages ("del", "init") or nouns.
fn is_identifier_only_verb(word: &str) -> bool {
    matches!(
        word,
        "rm" | "del" | "exec" | "eval" | "init" | "ssh" | "tip" | "fire"
    )
}

/// Verb meaning of a word in prose, which may be inflected ("deletes",
/// "retrieves", "applies"). Returns the meaning and whether it was inflected.
pub(crate) fn prose_verb_meaning(word: &str) -> Option<(Verb, bool)> {
    if is_identifier_only_verb(word) {
        return None;
    }
    if let Some(meaning) = verb_meaning(word) {
        return Some((meaning, false));
    }
    singular_forms(word).find_map(|stem| verb_meaning(stem).map(|meaning| (meaning, true)))
}

/// Candidate stems of an `-s` / `-es` / `-ies` word. Allocation-free for the
/// two common cases; `-ies` → `-y` needs a new string, so it is rare enough
/// to be handled by a small fixed list of words that matter.
fn singular_forms(word: &str) -> impl Iterator<Item = &str> {
    let without_s = word.strip_suffix('s').filter(|stem| stem.len() >= 2);
    let without_es = word.strip_suffix("es").filter(|stem| stem.len() >= 2);
    let y_stem = match word {
        "applies" => Some("apply"),
        "copies" => Some("copy"),
        "queries" => Some("query"),
        "summaries" => Some("summary"),
        "histories" => Some("history"),
        "verifies" => Some("verify"),
        "modifies" => Some("modify"),
        "identifies" => Some("identify"),
        "notifies" => Some("notify"),
        "retries" => Some("retry"),
        "empties" => Some("empty"),
        _ => None,
    };
    without_s.into_iter().chain(without_es).chain(y_stem)
}

/// Word pairs that mean one thing, joined so that "look up" is a read verb
/// and "pull request" is a noun rather than the verb "pull".
pub(crate) fn compound(first: &str, second: &str) -> Option<&'static str> {
    match (first, second) {
        ("look", "up") => Some("lookup"),
        ("log", "in") | ("sign", "in") => Some("login"),
        ("log", "out") | ("sign", "out") => Some("logout"),
        ("set", "up") => Some("setup"),
        ("tear", "down") => Some("teardown"),
        ("clean", "up") => Some("cleanup"),
        ("dry", "run") => Some("dryrun"),
        ("pull", "request") | ("pull", "requests") => Some("pullrequest"),
        ("merge", "request") | ("merge", "requests") => Some("mergerequest"),
        ("who", "am") => Some("whoami"),
        _ => None,
    }
}

/// Joins [`compound`] pairs in a list of lowercase words.
pub(crate) fn join_compounds(words: Vec<String>) -> Vec<String> {
    let mut joined: Vec<String> = Vec::with_capacity(words.len());
    for word in words {
        let merged = joined.last().and_then(|previous| compound(previous, &word));
        match merged {
            Some(merged) => {
                if let Some(last) = joined.last_mut() {
                    *last = merged.to_string();
                }
            }
            None => joined.push(word),
        }
    }
    joined
}

/// Words that join two verbs into one list of actions: "create or update".
pub(crate) fn is_conjunction(word: &str) -> bool {
    matches!(word, "and" | "or" | "then" | "plus")
}

/// Common English function words; a description with none of them (and no
/// known verb) is probably not English.
pub(crate) fn is_english_function_word(word: &str) -> bool {
    matches!(
        word,
        "the"
            | "a"
            | "an"
            | "to"
            | "of"
            | "and"
            | "or"
            | "for"
            | "in"
            | "on"
            | "with"
            | "by"
            | "from"
            | "is"
            | "are"
            | "this"
            | "that"
            | "all"
            | "any"
            | "it"
            | "its"
            | "as"
            | "at"
            | "be"
            | "into"
            | "your"
            | "you"
    )
}

/// Words that open a description without saying what the tool does:
/// "Use this tool to delete..." reads as "delete...".
pub(crate) fn is_preamble_word(word: &str) -> bool {
    matches!(
        word,
        "this"
            | "tool"
            | "tools"
            | "that"
            | "a"
            | "an"
            | "the"
            | "use"
            | "used"
            | "to"
            | "you"
            | "your"
            | "lets"
            | "let"
            | "helps"
            | "can"
            | "will"
            | "please"
            | "which"
            | "simply"
            | "it"
            | "mcp"
            | "function"
            | "endpoint"
            | "allows"
            | "enables"
            | "user"
            | "users"
            | "agent"
            | "i"
            | "we"
    )
}

/// Words before a verb that negate it: "does not delete".
pub(crate) fn is_negation(word: &str) -> bool {
    matches!(
        word,
        "not" | "never" | "without" | "no" | "cannot" | "t" | "nor"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflected_prose_verbs_are_recognised() {
        let deletes = prose_verb_meaning("deletes");
        assert!(matches!(
            deletes,
            Some((
                Verb {
                    action: Action::Destroy,
                    ..
                },
                true
            ))
        ));
        assert!(matches!(
            prose_verb_meaning("searches"),
            Some((
                Verb {
                    action: Action::Read,
                    ..
                },
                true
            ))
        ));
        assert!(matches!(
            prose_verb_meaning("applies"),
            Some((
                Verb {
                    action: Action::Write,
                    ..
                },
                true
            ))
        ));
        assert_eq!(prose_verb_meaning("status"), None);
    }

    #[test]
    fn plural_things_are_recognised() {
        assert_eq!(thing_meaning_any_number("charges"), Some(Thing::Money));
        assert_eq!(thing_meaning_any_number("invoices"), Some(Thing::Money));
        assert_eq!(thing_meaning_any_number("tabs"), Some(Thing::SessionPart));
        assert_eq!(thing_meaning_any_number("repositories"), None);
    }

    #[test]
    fn compounds_are_joined() {
        let words = ["look", "up", "pull", "request", "id"]
            .map(String::from)
            .to_vec();
        assert_eq!(join_compounds(words), ["lookup", "pullrequest", "id"]);
    }
}
