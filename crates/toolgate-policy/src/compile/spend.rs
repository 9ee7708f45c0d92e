//! `spend_limit` (Intercept's key): a limit on the sum of an amount argument per window.
//!
//! `spend_limit: "$500/day"` is shorthand for a counter `_spend_day` that adds `args.amount`
//! to itself on every call and may reach 500 — the `state` block people otherwise write by
//! hand. The block form names another argument or scope:
//! `spend_limit: {max: 500, window: day, increment_from: args.total, scope: identity}`.
//! Amounts are exact decimals; a currency sign in front of the amount is read and dropped (the
//! counter sums whatever unit the argument is in).

use super::limits::{build_limit, check_reachable, default_scope, read_limit_fields, Owner};
use super::reader::Reader;
use crate::amount::Amount;
use crate::args::ArgPath;
use crate::ir::{Increment, Limit};
use crate::source::{Node, NodeKind};
use crate::window::Window;

pub(crate) const SPEND_BLOCK_KEYS: &[&str] = &["max", "window", "increment_from", "scope", "mode"];
const CURRENCY_SIGNS: [char; 5] = ['$', '€', '£', '¥', '₹'];
const FORMAT_HINT: &str = "for example \"$500/day\", \"250.50/7d\" or {max: 500, window: day, increment_from: args.total}";

/// The argument summed when none is named.
pub const DEFAULT_AMOUNT_ARGUMENT: &str = "args.amount";

pub fn compile_spend_limit(
    reader: &mut Reader,
    owner: Owner<'_>,
    node: &Node,
    path: &str,
) -> Option<Limit> {
    let default_increment = || {
        ArgPath::parse(DEFAULT_AMOUNT_ARGUMENT)
            .ok()
            .map(Increment::FromArgument)
    };
    let limit = match &node.kind {
        NodeKind::String(text) => {
            let (max, window) = parse_shorthand(text).or_else(|| {
                reader.error_with_hint(
                    node.location,
                    path,
                    format!("spend_limit must be \"AMOUNT/window\", got {text:?}"),
                    FORMAT_HINT,
                );
                None
            })?;
            let window = match window {
                Ok(w) => w,
                Err(e) => {
                    reader.error(node.location, path, format!("spend_limit window: {e}"));
                    return None;
                }
            };
            let Some(max) = max.filter(|m| *m > Amount::ZERO) else {
                reader.error_with_hint(
                    node.location,
                    path,
                    format!("spend_limit amount must be a positive number, got {text:?}"),
                    FORMAT_HINT,
                );
                return None;
            };
            let counter = format!("_spend_{}", window.name());
            build_limit(
                owner,
                counter,
                default_scope(owner),
                window,
                max,
                default_increment()?,
            )
        }
        NodeKind::Mapping(_) => {
            let entries = reader.mapping(node, path, SPEND_BLOCK_KEYS)?;
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|(key, _)| key.name == k)
                    .map(|(_, v)| v)
            };
            let (Some(_), Some(_)) = (get("max"), get("window")) else {
                reader.error_with_hint(
                    node.location,
                    path,
                    "a spend_limit block needs both `max` and `window`",
                    FORMAT_HINT,
                );
                return None;
            };
            let fields = read_limit_fields(reader, default_scope(owner), get, path);
            let increment = match get("increment_from") {
                Some(_) => fields.increment?,
                None => default_increment()?,
            };
            let (max, window, scope) = (fields.max?, fields.window?, fields.scope?);
            let counter = format!("_spend_{}", window.name());
            build_limit(owner, counter, scope, window, max, increment)
        }
        _ => {
            reader.error_with_hint(
                node.location,
                path,
                format!("expected a string or a mapping, found {}", node.type_name()),
                FORMAT_HINT,
            );
            return None;
        }
    };
    check_reachable(reader, node, path, &limit).then_some(limit)
}

/// `"$500/day"` → (500, day). `None` when there is no `/`; the amount is `None` when it is
/// not a number, the window an error when it is not a window.
#[allow(clippy::type_complexity)]
fn parse_shorthand(
    text: &str,
) -> Option<(Option<Amount>, Result<Window, crate::window::WindowError>)> {
    let (amount, window) = text.split_once('/')?;
    let amount = amount.trim();
    let amount = amount
        .strip_prefix(CURRENCY_SIGNS)
        .unwrap_or(amount)
        .trim()
        .replace('_', "");
    Some((Amount::parse(&amount).ok(), Window::parse(window.trim())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shorthand() {
        let (max, window) = parse_shorthand("$500/day").unwrap();
        assert_eq!(max.unwrap().to_string(), "500");
        assert_eq!(window.unwrap().name(), "day");
        let (max, _) = parse_shorthand("€ 12.50 / 7d").unwrap();
        assert_eq!(max.unwrap().to_string(), "12.5");
        assert!(parse_shorthand("500").is_none());
        assert!(parse_shorthand("lots/day").unwrap().0.is_none());
        assert!(parse_shorthand("5/fortnight").unwrap().1.is_err());
    }
}
