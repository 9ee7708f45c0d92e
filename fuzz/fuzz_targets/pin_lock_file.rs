//! Pin lock files, and tool definitions as a server lists them: arbitrary text is parsed as a
//! lock file (never a panic), and one that parses writes back to text that parses to the same
//! pins. The same text, read as a `tools/list` result, is pinned and compared with the lock:
//! a drift is found for every listed tool whose definition the lock does not hold, and its
//! readable diff holds no raw control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use toolgate_proxy::pinning::{compare, seen_tool, LockFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lock) = LockFile::parse(text) else {
        let Ok(Value::Object(listing)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(Value::Array(tools)) = listing.get("tools") else {
            return;
        };
        let seen: Vec<_> = tools.iter().filter_map(|t| seen_tool(t, 0)).collect();
        let pinned = LockFile::of_listing("s", &tools[..tools.len() / 2], None);
        for drift in compare(&pinned.tools, &seen, true) {
            for line in drift.diff() {
                assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
            }
        }
        return;
    };
    let again = LockFile::parse(&lock.to_text()).expect("a lock file's own text parses");
    assert_eq!(again.tools, lock.tools);
    assert_eq!(again.instructions, lock.instructions);
});
