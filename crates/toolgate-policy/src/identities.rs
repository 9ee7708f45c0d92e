//! Who may call through an HTTP listener: identity names and the SHA-256 hashes of their
//! bearer tokens, from the policy's `identities` section.
//!
//! Only hashes are ever stored (a policy file is read by people and copied around; a token
//! in it would be a leaked token). Looking a token up compares its hash with every known hash
//! in constant time and without stopping at the first match, so timing tells a caller
//! neither whether a prefix matched nor which entry did. The crate stays pure: hashing the
//! presented token is the caller's job.

/// The SHA-256 of one token.
pub type TokenHash = [u8; 32];

/// Identity names and their token hashes. Empty means no identities are configured (an HTTP
/// listener then does not ask for tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    entries: Vec<(String, TokenHash)>,
}

impl Identities {
    /// Builds the table; names may repeat (one identity, several tokens).
    pub fn new(entries: Vec<(String, TokenHash)>) -> Identities {
        Identities { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Distinct identity names, in file order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.entries {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }

    /// The identity whose token hashes to `hash`, compared in constant time against every
    /// entry.
    pub fn find(&self, hash: &TokenHash) -> Option<&str> {
        let mut found: Option<&str> = None;
        for (name, known) in &self.entries {
            if digests_equal(known, hash) && found.is_none() {
                found = Some(name);
            }
        }
        found
    }
}

/// Whether two digests are equal, in time independent of where they differ: the one
/// constant-time comparison of secrets (bearer tokens here, the admin token in the proxy).
pub fn digests_equal(a: &TokenHash, b: &TokenHash) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Reads a SHA-256 written as 64 hex digits (either case).
pub fn parse_token_hash(text: &str) -> Option<TokenHash> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut hash).ok()?;
    Some(hash)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_by_hash_and_reads_hex() {
        let a = parse_token_hash(&"ab".repeat(32)).unwrap();
        let b = parse_token_hash(&"0F".repeat(32)).unwrap();
        let ids = Identities::new(vec![("alice".into(), a), ("bob".into(), b)]);
        assert_eq!(ids.find(&a), Some("alice"));
        assert_eq!(ids.find(&b), Some("bob"));
        assert_eq!(ids.find(&[0u8; 32]), None);
        assert_eq!(ids.names(), vec!["alice", "bob"]);
        assert!(parse_token_hash("abc").is_none());
        assert!(parse_token_hash(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn compiles_from_a_policy_and_reports_every_problem() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let text = format!(
            "version: \"1\"\nidentities:\n  alice:\n    token_sha256: {a}\n  bot: [{b}, {c}]\n  carol:\n    token_sha256: [{c}]\n"
        );
        let errors = crate::compile(&text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0]
            .message
            .contains("already used by identity \"bot\""));
        let text = format!(
            "version: \"1\"\nidentities:\n  alice:\n    token_sha256: {a}\n  bot: [{b}, {c}]\n"
        );
        let policy = crate::compile(&text).unwrap();
        let hash = |h: &str| parse_token_hash(h).unwrap();
        assert_eq!(policy.identities.find(&hash(&c)), Some("bot"));
        assert_eq!(policy.identities.find(&hash(&a)), Some("alice"));
        assert!(crate::compile("version: \"1\"\n")
            .unwrap()
            .identities
            .is_empty());
        let bad =
            crate::compile("version: \"1\"\nidentities:\n  x: {token_sha256: secret}\n  y: []\n");
        assert_eq!(bad.unwrap_err().len(), 2);
    }
}
