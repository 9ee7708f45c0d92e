//! Member names as a case-insensitive decoder sees them.
//!
//! Go's `encoding/json` matches object members to struct fields ignoring case, with Unicode
//! folding (`ſ` reaches `s`, the Kelvin sign `K` reaches `k`), and .NET's decoders can be set
//! to do the same. So for toolgate two member names are "the same" when their Unicode case
//! foldings are equal. Full folding (`ß` ≡ `ss`) is used: it relates every pair simple
//! folding relates, and a few more, and erring towards "the same" can only refuse a call,
//! never let one through.

use std::borrow::Cow;

/// The case folding of `name` (ASCII without allocating when already folded).
pub fn fold(name: &str) -> Cow<'_, str> {
    if name.is_ascii() {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        }
    } else {
        Cow::Owned(caseless::default_case_fold_str(name))
    }
}

/// True when a case-insensitive decoder would take `a` and `b` for one member.
pub fn same_member(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_a_case_insensitive_decoder() {
        assert!(same_member("amount", "AMOUNT"));
        assert!(same_member("arguments", "argument\u{17f}")); // long s
        assert!(same_member("kind", "\u{212a}ind")); // Kelvin sign
        assert!(same_member("strasse", "STRA\u{df}E"));
        assert!(!same_member("amount", "amounts"));
        assert_eq!(fold("Name"), "name");
        assert!(matches!(fold("name"), Cow::Borrowed(_)));
    }
}
