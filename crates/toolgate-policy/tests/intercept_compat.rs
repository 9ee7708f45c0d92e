//! Every policy published with Intercept loads (when the shared copies are present).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

#[test]
fn every_published_intercept_policy_validates() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/intercept-policies");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipped: {} does not exist", dir.display());
        return;
    };
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        count += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(errors) = toolgate_policy::compile(&text) {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            for e in errors {
                failures.push(format!("{}", e.display_in(&name)));
            }
        }
    }
    println!("{count} Intercept policies checked");
    assert!(
        count >= 50,
        "expected the 53 published policies, found {count}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
