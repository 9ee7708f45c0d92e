//! Signal extraction: each submodule reads one part of a tool definition
//! and records what it suggests on the [`Scoreboard`](crate::scoreboard::Scoreboard).
//!
//! The weights below are the whole tuning surface of the classifier. They
//! encode one ordering, argued from how MCP tools are written rather than
//! fitted to any label set: the name is the most reliable statement of what
//! a tool does (it is what the model calls), the first sentence of the
//! description comes next, parameters and annotations refine, and single
//! words elsewhere in the prose only nudge.

pub(crate) mod annotations;
pub(crate) mod description;
pub(crate) mod name;
pub(crate) mod parameters;
pub(crate) mod phrase;
pub(crate) mod siblings;

/// A verb (with its object) in the tool name.
pub(crate) const NAME_VERB: f32 = 3.0;
/// A telling noun in a name that has no verb (`git_status`, `shell`).
pub(crate) const NAME_THING: f32 = 1.5;
/// Titles usually restate the name; they count for less so that a title
/// and name saying the same thing are not mistaken for independent proof.
pub(crate) const TITLE_SCALE: f32 = 0.6;
/// The description's first verb, when it opens the sentence.
pub(crate) const LEAD_VERB_FIRST: f32 = 2.0;
/// The description's first verb, a few words in ("Batch retrieve ...").
pub(crate) const LEAD_VERB_LATER: f32 = 1.5;
/// An explicit "read-only" / "does not modify" claim in the description.
pub(crate) const PROSE_READ_ONLY: f32 = 2.0;
/// "permanently", "irreversible", "cannot be undone".
pub(crate) const PROSE_IRREVERSIBLE: f32 = 1.5;
/// "arbitrary code", "shell commands".
pub(crate) const PROSE_ARBITRARY_CODE: f32 = 1.5;
/// A risky verb anywhere else in the description.
pub(crate) const PROSE_MENTION: f32 = 0.4;
/// `amount` with `currency` (or a recipient) among the parameters.
pub(crate) const PARAM_MONEY: f32 = 2.5;
/// A parameter carrying code or a command.
pub(crate) const PARAM_CODE: f32 = 1.5;
/// A code parameter on a tool whose name or description already runs things.
pub(crate) const PARAM_CODE_WITH_RUN_VERB: f32 = 2.0;
/// `force`, `recursive` or `overwrite` on a tool that changes data.
pub(crate) const PARAM_SAFETY_SWITCH: f32 = 1.0;
/// A filesystem path on a tool that deletes.
pub(crate) const PARAM_PATH: f32 = 0.5;
/// A positive MCP hint (`readOnlyHint`/`destructiveHint` = true). Kept
/// below a name verb: hints are self-declared by the server and untrusted.
pub(crate) const HINT: f32 = 1.5;
/// `destructiveHint=false` weighs against Destructive.
pub(crate) const HINT_NOT_DESTRUCTIVE: f32 = 1.0;
/// `readOnlyHint=false` weighs (a little) against Read.
pub(crate) const HINT_NOT_READ_ONLY: f32 = 0.5;
/// `idempotentHint=true` weighs a little against running code or moving money.
pub(crate) const HINT_IDEMPOTENT: f32 = 0.3;
/// `openWorldHint=false` weighs against moving money (no outside system).
pub(crate) const HINT_CLOSED_WORLD: f32 = 0.5;
/// Sibling tools that run shell commands, for a tool that runs something.
pub(crate) const SIBLINGS_SHELL: f32 = 1.0;

/// Confidence multiplier when there is no description to confirm the name.
pub(crate) const NO_DESCRIPTION_FACTOR: f32 = 0.8;
/// Confidence multiplier when the description could not be read as English.
pub(crate) const FOREIGN_DESCRIPTION_FACTOR: f32 = 0.85;
/// Confidence multiplier when an annotation contradicts the verdict.
pub(crate) const HINT_CONFLICT_FACTOR: f32 = 0.8;

/// Facts from outside a phrase that change how its words read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Domain<'a> {
    /// The server handles payments, so "subscription" or "order" is money.
    pub payments: bool,
    /// A parameter showing the tool takes an amount of money (`amount` with
    /// `currency` or a recipient): the parameters reveal the verb's object,
    /// so `send(amount, currency, recipient)` sends money.
    pub money_parameter: Option<&'a str>,
}
