//! The audit log's hash chain: every line carries `"prev"`, the SHA-256 (hex) of the line
//! written before it by the same instance — across its rotated files — so a line changed,
//! removed or moved breaks the chain at the line after it. An instance's first line carries
//! [`GENESIS`]. `toolgate audit verify` ([`verify_dir`]) walks every instance's chain.
//!
//! What the chain cannot show: an instance's newest line changed (nothing follows it yet;
//! a gateway writes a `shutdown` line last), or an instance's oldest files removed whole
//! (indistinguishable from pruning by `keep_files`; the report says where a chain starts
//! after pruned files). Whoever can rewrite the whole log can also rewrite the chain: keep a
//! copy of the newest hashes elsewhere to anchor it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The `prev` of an instance's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash the next line carries as `prev`: SHA-256 of this line's bytes, without the newline.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// The hash of the last line of `path` (`None` for an empty or missing file). Reads only the
/// file's tail.
pub fn last_line_hash(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    // Lines are far shorter than this; a longer one is read whole.
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        file.by_ref().take(len - start).read_to_end(&mut tail)?;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if body.is_empty() {
            return Ok(None);
        }
        match body.iter().rposition(|b| *b == b'\n') {
            Some(at) => return Ok(Some(line_hash(&body[at + 1..]))),
            None if start == 0 => return Ok(Some(line_hash(body))),
            None => window *= 4,
        }
    }
}

/// The audit files of one instance, oldest first: rotated files by their stamp, then the live
/// file (`toolgate-<instance>.jsonl`, `toolgate-<instance>.<ms>-<n>.jsonl`).
pub fn files_by_instance(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut by_instance: BTreeMap<String, Vec<(bool, String, PathBuf)>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name
            .strip_prefix("toolgate-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        // Instance names have no '.'; a rotated file's stamp follows the first one.
        let (instance, stamp) = match stem.split_once('.') {
            Some((instance, stamp)) => (instance, Some(stamp)),
            None => (stem, None),
        };
        by_instance.entry(instance.to_string()).or_default().push((
            stamp.is_none(),
            stamp.unwrap_or("").to_string(),
            path.clone(),
        ));
    }
    Ok(by_instance
        .into_iter()
        .map(|(instance, mut files)| {
            files.sort();
            (instance, files.into_iter().map(|(_, _, p)| p).collect())
        })
        .collect())
}

/// The newest line's hash among an instance's files in `dir`, to go on with its chain.
pub fn resume(dir: &Path, instance: &str) -> std::io::Result<String> {
    let files = files_by_instance(dir)?.remove(instance).unwrap_or_default();
    for path in files.iter().rev() {
        if let Some(hash) = last_line_hash(path)? {
            return Ok(hash);
        }
    }
    Ok(GENESIS.to_string())
}

/// Appends one event to `instance`'s live file in `dir`, chained to its last line, for
/// processes that write a line or two and exit (`toolgate approvals`, `toolgate pins`).
/// Several such processes may append at once: each holds an exclusive lock on the file from
/// reading its last line to writing its own.
pub fn append_one(
    dir: &Path,
    instance: &str,
    now_ms: u64,
    event: &crate::audit::AuditEvent,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(dir.join(format!("toolgate-{instance}.jsonl")))?;
    file.lock()?;
    let prev = resume(dir, instance)?;
    let line = crate::approvals::audit_line(instance, now_ms, &prev, event)
        .ok_or_else(|| std::io::Error::other("the event could not be serialized"))?;
    // One write: a reader never sees half a line. The lock goes with the file.
    file.write_all(format!("{line}\n").as_bytes())
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Verified {
    pub lines: u64,
    pub files: usize,
    pub instances: usize,
    /// Instances whose chain starts after files that are gone (pruned, or removed).
    pub starts_after_pruning: Vec<String>,
}

/// The first place a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    pub why: String,
}

/// Walks every instance's chain in `dir`: each line's `prev` must be the hash of the line
/// before it. Returns the count, or the first line where a chain breaks.
///
/// A running gateway may rotate a file while it is read (the live file renamed, a new one
/// begun): a break found while the set of files changed is checked again on the new set,
/// rather than reported.
pub fn verify_dir(dir: &Path) -> std::io::Result<Result<Verified, Broken>> {
    let mut files = files_by_instance(dir)?;
    for _ in 0..5 {
        let outcome = verify_files(&files)?;
        let now = files_by_instance(dir)?;
        if outcome.is_ok() || now == files {
            return Ok(outcome);
        }
        files = now;
    }
    verify_files(&files)
}

fn verify_files(
    by_instance: &BTreeMap<String, Vec<PathBuf>>,
) -> std::io::Result<Result<Verified, Broken>> {
    let mut verified = Verified::default();
    for (instance, files) in by_instance {
        verified.instances += 1;
        let mut expected: Option<String> = None;
        for path in files {
            verified.files += 1;
            let file = match File::open(path) {
                Ok(file) => file,
                // Pruned by a running writer since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
                let line = line?;
                let number = index as u64 + 1;
                let broken = |why: String| Broken {
                    file: path.to_path_buf(),
                    line: number,
                    why,
                };
                let prev = match serde_json::from_slice::<serde_json::Value>(&line) {
                    Ok(value) => value
                        .get("prev")
                        .and_then(|p| p.as_str())
                        .map(str::to_string),
                    Err(_) => return Ok(Err(broken("not a JSON line".into()))),
                };
                let Some(prev) = prev else {
                    return Ok(Err(broken("the line has no chain hash (\"prev\")".into())));
                };
                match &expected {
                    Some(hash) if *hash != prev => {
                        return Ok(Err(broken(
                            "its chain hash is not that of the line before it: that line was \
                             changed, or lines were removed or moved here"
                                .into(),
                        )))
                    }
                    None if prev != GENESIS => verified.starts_after_pruning.push(instance.clone()),
                    _ => {}
                }
                expected = Some(line_hash(&line));
                verified.lines += 1;
            }
        }
    }
    Ok(Ok(verified))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chained(lines: &[&str]) -> Vec<String> {
        let mut prev = GENESIS.to_string();
        lines
            .iter()
            .map(|body| {
                let line = format!(r#"{{"prev":"{prev}","e":"{body}"}}"#);
                prev = line_hash(line.as_bytes());
                line
            })
            .collect()
    }

    fn write(dir: &Path, name: &str, lines: &[String]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_chain_across_rotated_files_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let lines = chained(&["a", "b", "c", "d", "e"]);
        write(
            dir.path(),
            "toolgate-x.1767225600000-000001.jsonl",
            &lines[..2],
        );
        write(
            dir.path(),
            "toolgate-x.1767225600001-000002.jsonl",
            &lines[2..4],
        );
        write(dir.path(), "toolgate-x.jsonl", &lines[4..]);
        write(dir.path(), "toolgate-y.jsonl", &chained(&["z"]));
        let verified = verify_dir(dir.path()).unwrap().unwrap();
        assert_eq!(
            (verified.lines, verified.files, verified.instances),
            (6, 4, 2)
        );
        assert!(verified.starts_after_pruning.is_empty());
        assert_eq!(
            resume(dir.path(), "x").unwrap(),
            line_hash(lines[4].as_bytes())
        );
        assert_eq!(resume(dir.path(), "new").unwrap(), GENESIS);
        // The oldest file pruned: still verifies, and says so.
        std::fs::remove_file(dir.path().join("toolgate-x.1767225600000-000001.jsonl")).unwrap();
        let verified = verify_dir(dir.path()).unwrap().unwrap();
        assert_eq!(verified.starts_after_pruning, vec!["x".to_string()]);
    }

    #[test]
    fn a_changed_removed_or_swapped_line_is_named() {
        let lines = chained(&["a", "b", "c", "d"]);
        let cases: Vec<(&str, Vec<String>, u64)> = vec![
            (
                "changed",
                vec![
                    lines[0].clone(),
                    lines[1].replace("\"b\"", "\"B\""),
                    lines[2].clone(),
                    lines[3].clone(),
                ],
                3,
            ),
            (
                "removed",
                vec![lines[0].clone(), lines[2].clone(), lines[3].clone()],
                2,
            ),
            (
                "swapped",
                vec![
                    lines[0].clone(),
                    lines[2].clone(),
                    lines[1].clone(),
                    lines[3].clone(),
                ],
                2,
            ),
        ];
        for (what, edited, line) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "toolgate-x.jsonl", &edited);
            let broken = verify_dir(dir.path()).unwrap().unwrap_err();
            assert_eq!(broken.line, line, "{what}: {broken:?}");
        }
    }

    /// Short-lived writers appending at once (threads here, each with its own open file, as
    /// processes have) still make one chain.
    #[test]
    fn appends_from_many_writers_make_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let reason = format!("writer {w} line {i}");
                        let event = crate::audit::AuditEvent::Shutdown { reason };
                        append_one(&dir, "cli", 0, &event).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let verified = verify_dir(dir.path()).unwrap().unwrap();
        assert_eq!(verified.lines, 160);
    }

    #[test]
    fn the_last_line_is_found_in_a_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(300_000);
        let lines = vec!["{}".to_string(), format!(r#"{{"e":"{long}"}}"#)];
        write(dir.path(), "toolgate-x.jsonl", &lines);
        let hash = last_line_hash(&dir.path().join("toolgate-x.jsonl")).unwrap();
        assert_eq!(hash, Some(line_hash(lines[1].as_bytes())));
    }
}
