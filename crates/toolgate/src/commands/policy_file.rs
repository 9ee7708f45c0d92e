//! Reading a policy file for the commands, with errors that name the file.

use std::path::Path;

use anyhow::Context;
use toolgate_policy::{Diagnostic, Policy};

/// Reads and compiles a policy; on failure, every diagnostic.
pub fn load(path: &Path) -> anyhow::Result<Result<Policy, Vec<Diagnostic>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    Ok(toolgate_policy::compile(&text))
}

/// Reads and compiles a policy; when it is invalid, prints every diagnostic on stderr and
/// returns `None` (each command decides its exit status).
pub fn load_or_report(path: &Path) -> anyhow::Result<Option<Policy>> {
    Ok(match load(path)? {
        Ok(policy) => Some(policy),
        Err(errors) => {
            eprint!("{}", render_errors(path, &errors));
            None
        }
    })
}

/// `file:line:column: path: message` lines, then a count.
pub fn render_errors(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let file = path.display().to_string();
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.display_in(&file).to_string());
        out.push('\n');
    }
    let noun = if diagnostics.len() == 1 {
        "error"
    } else {
        "errors"
    };
    out.push_str(&format!("{} {noun} in {file}\n", diagnostics.len()));
    out
}
