//! Key names. Every key of one prefix carries the same hash tag, so all the counters of a
//! call — and of a whole deployment — live in one Redis Cluster slot and one script can
//! reserve them atomically.
//!
//! ```text
//! {<prefix>}:<counter key>:<window length ms>:<window start ms>
//! {toolgate}:create_issue._rate_hour:3600000:1767225600000
//! ```
//!
//! The counter key is the policy's, which can embed values an agent chose (a session id, an
//! argument). Redis keys are binary-safe, so it is stored as it is; the name stays
//! unambiguous because it sits between the tag (which ends at the first `}`) and two
//! all-digit fields at the end. The prefix is the operator's; its `%`, `{` and `}` are
//! percent-encoded so that it cannot end the hash tag early or collide with another prefix.

use crate::store::StoreError;

/// The hash tag of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    tag: String,
}

impl Namespace {
    pub(crate) fn new(prefix: &str) -> Result<Namespace, StoreError> {
        if prefix.is_empty() {
            // `{}` is no hash tag at all: Redis would hash each whole key, scattering one
            // call's counters over the cluster's slots.
            return Err(StoreError::Unavailable(
                "the Redis store needs a non-empty --state-prefix (it is the keys' hash tag)"
                    .into(),
            ));
        }
        let mut tag = String::with_capacity(prefix.len() + 2);
        tag.push('{');
        for c in prefix.chars() {
            match c {
                '%' => tag.push_str("%25"),
                '{' => tag.push_str("%7B"),
                '}' => tag.push_str("%7D"),
                c => tag.push(c),
            }
        }
        tag.push('}');
        Ok(Namespace { tag })
    }

    /// A counter's name without its window start (the scripts append `:<start>`).
    pub(crate) fn counter(&self, key: &str, length_ms: u64) -> String {
        format!("{}:{key}:{length_ms}", self.tag)
    }

    /// The approval keys, as `lua/approvals.lua` takes them: the record prefix (the script
    /// appends the id), the fingerprint index prefix, and the sorted set of ids.
    pub(crate) fn approvals(&self) -> [String; 3] {
        [
            format!("{}:apr:", self.tag),
            format!("{}:apr-fp:", self.tag),
            format!("{}:apr-list", self.tag),
        ]
    }

    /// The hash holding every pin of this prefix (`lua/pins.lua`).
    pub(crate) fn pins(&self) -> String {
        format!("{}:pins", self.tag)
    }

    /// The pattern matching every key of this prefix (for tests and operators' `SCAN`).
    pub(crate) fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.tag.len() + 2);
        for c in self.tag.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":*");
        pattern
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_carry_the_prefix_as_hash_tag() {
        let ns = Namespace::new("toolgate").unwrap();
        assert_eq!(
            ns.counter("create_issue._rate_hour", 3_600_000),
            "{toolgate}:create_issue._rate_hour:3600000"
        );
        // Agent-chosen text in the key cannot move the tag: it ends at the first `}`.
        assert_eq!(
            ns.counter("search.args.q={evil}:1", 60_000),
            "{toolgate}:search.args.q={evil}:1:60000"
        );
        assert_eq!(ns.pattern(), "{toolgate}:*");
    }

    #[test]
    fn prefixes_are_encoded_so_they_cannot_end_the_tag() {
        let a = Namespace::new("a}b").unwrap();
        assert_eq!(a.counter("k", 1000), "{a%7Db}:k:1000");
        let b = Namespace::new("a%7Db").unwrap();
        assert_eq!(b.counter("k", 1000), "{a%257Db}:k:1000");
        assert_eq!(Namespace::new("t*").unwrap().pattern(), "{t\\*}:*");
        assert!(Namespace::new("").is_err());
    }
}
