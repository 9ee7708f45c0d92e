//! The `identities` section: identity name → hashed bearer tokens.
//!
//! ```yaml
//! identities:
//!   alice:
//!     token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!   ci-bot:                       # several tokens (rotation): a list of hashes
//!     - 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
//!     - fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13
//! ```
//! `token_sha256` may itself be a list. A hash used by two identities is an error: the token
//! would not say who is calling.

use std::collections::HashMap;

use super::reader::{child_path, index_path, Reader};
use crate::identities::{parse_token_hash, Identities, TokenHash};
use crate::source::{Node, NodeKind};

pub(crate) const IDENTITY_KEYS: &[&str] = &["token_sha256"];
const HASH_HINT: &str =
    "write the token's SHA-256 as 64 hex digits, e.g. from `printf %s \"$TOKEN\" | sha256sum`";

pub(super) fn compile_identities(reader: &mut Reader, node: &Node) -> Identities {
    if matches!(node.kind, NodeKind::Null) {
        return Identities::default();
    }
    let Some(identities) = reader.open_mapping(node, "identities") else {
        return Identities::default();
    };
    let mut entries: Vec<(String, TokenHash)> = Vec::new();
    let mut owners: HashMap<TokenHash, String> = HashMap::new();
    for (key, value) in identities {
        let path = child_path("identities", &key.name);
        if key.name.trim().is_empty() {
            reader.error(key.location, &path, "identity name must not be empty");
            continue;
        }
        let (hashes_node, hashes_path) = match &value.kind {
            NodeKind::Mapping(_) => {
                let Some(fields) = reader.mapping(value, &path, IDENTITY_KEYS) else {
                    continue;
                };
                match fields.iter().find(|(k, _)| k.name == "token_sha256") {
                    Some((_, v)) => (v, child_path(&path, "token_sha256")),
                    None => {
                        reader.error_with_hint(
                            value.location,
                            &path,
                            "missing `token_sha256`",
                            HASH_HINT,
                        );
                        continue;
                    }
                }
            }
            _ => (value, path.clone()),
        };
        let items: Vec<(&Node, String)> = match &hashes_node.kind {
            NodeKind::Sequence(items) if items.is_empty() => {
                reader.error(
                    hashes_node.location,
                    &hashes_path,
                    "needs at least one token hash",
                );
                continue;
            }
            NodeKind::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (n, index_path(&hashes_path, i)))
                .collect(),
            _ => vec![(hashes_node, hashes_path)],
        };
        for (item, item_path) in items {
            let Some(text) = reader.string(item, &item_path) else {
                continue;
            };
            let Some(hash) = parse_token_hash(&text) else {
                reader.error_with_hint(
                    item.location,
                    &item_path,
                    "not a SHA-256 hash (64 hex digits); tokens themselves never go in a policy",
                    HASH_HINT,
                );
                continue;
            };
            if let Some(owner) = owners.get(&hash) {
                reader.error(
                    item.location,
                    &item_path,
                    format!("this token hash is already used by identity {owner:?}"),
                );
                continue;
            }
            owners.insert(hash, key.name.clone());
            entries.push((key.name.clone(), hash));
        }
    }
    Identities::new(entries)
}
