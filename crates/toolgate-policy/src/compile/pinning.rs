//! `pinning: {on_change: hide | deny | warn, on_new_tool: allow | hide, lock: FILE}`: what the
//! gateway does when a server's tool definitions differ from the ones approved.

use super::reader::{child_path, Reader};
use crate::ir::{OnNewTool, OnPinChange, PinningPolicy};
use crate::source::Node;

pub(crate) const PINNING_KEYS: &[&str] = &["on_change", "on_new_tool", "lock"];

pub(super) fn compile_pinning(reader: &mut Reader, node: &Node) -> PinningPolicy {
    let mut out = PinningPolicy::default();
    let Some(entries) = reader.mapping(node, "pinning", PINNING_KEYS) else {
        return out;
    };
    for (key, value) in entries {
        let path = child_path("pinning", &key.name);
        let Some(text) = reader.name(value, &path) else {
            continue;
        };
        let allowed = match (key.name.as_str(), text.as_str()) {
            ("on_change", "hide") => {
                out.on_change = OnPinChange::Hide;
                continue;
            }
            ("on_change", "deny") => {
                out.on_change = OnPinChange::Deny;
                continue;
            }
            ("on_change", "warn") => {
                out.on_change = OnPinChange::Warn;
                continue;
            }
            ("on_new_tool", "allow") => {
                out.on_new_tool = OnNewTool::Allow;
                continue;
            }
            ("on_new_tool", "hide") => {
                out.on_new_tool = OnNewTool::Hide;
                continue;
            }
            ("lock", file) => {
                out.lock = Some(file.to_string());
                continue;
            }
            ("on_change", _) => "hide, deny or warn",
            ("on_new_tool", _) => "allow or hide",
            // Unknown keys were reported by `mapping`.
            _ => continue,
        };
        reader.error(
            value.location,
            &path,
            format!("{} must be {allowed}, got {text:?}", key.name),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::ir::{OnNewTool, OnPinChange};

    #[test]
    fn reads_every_setting_and_defaults_the_rest() {
        let p = crate::compile(
            "version: '1'\npinning: {on_change: hide, lock: tools.lock}\ntools: {}\n",
        )
        .unwrap();
        assert_eq!(p.pinning.on_change, OnPinChange::Hide);
        assert_eq!(p.pinning.on_new_tool, OnNewTool::Allow);
        assert_eq!(p.pinning.lock.as_deref(), Some("tools.lock"));
        let p = crate::compile(
            r#"{"version":"1","pinning":{"on_new_tool":"hide","on_change":"deny"},"tools":{}}"#,
        )
        .unwrap();
        assert_eq!(p.pinning.on_change, OnPinChange::Deny);
        assert_eq!(p.pinning.on_new_tool, OnNewTool::Hide);
        assert_eq!(
            crate::compile("version: '1'\ntools: {}\n").unwrap().pinning,
            Default::default()
        );
    }

    #[test]
    fn refuses_what_it_does_not_know_with_the_place() {
        let errors = crate::compile(
            "version: '1'\npinning:\n  on_change: block\n  lock: ''\n  when: now\ntools: {}\n",
        )
        .unwrap_err();
        let text: Vec<String> = errors
            .iter()
            .map(|d| d.display_in("p.yaml").to_string())
            .collect();
        let all = text.join("\n");
        assert!(
            all.contains("p.yaml:3:14") && all.contains("hide, deny or warn"),
            "{all}"
        );
        assert!(
            all.contains("p.yaml:4:9: pinning.lock: must not be empty"),
            "{all}"
        );
        assert!(all.contains("unknown key \"when\""), "{all}");
        assert_eq!(errors.len(), 3, "{all}");
    }
}
