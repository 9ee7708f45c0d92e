//! The audit writer thread: appends lines, rotates by size, prunes old files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

/// Where and how much to keep.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub dir: PathBuf,
    /// Rotate the live file when it grows past this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept per instance; older ones are deleted.
    pub keep_files: usize,
}

impl AuditConfig {
    pub fn new(dir: PathBuf) -> AuditConfig {
        AuditConfig {
            dir,
            max_file_bytes: 64 * 1024 * 1024,
            keep_files: 10,
        }
    }
}

/// Queue length before new events are dropped instead of waited for.
const QUEUE: usize = 65_536;

/// Bytes of lines waiting to be written before new events are dropped: the queue is bounded
/// by size as well as by count, so large lines cannot make it hold gigabytes.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// The writer's queue: lines, and the bytes they hold (added by senders, taken off by the
/// writer as it writes).
pub struct Queue {
    pub sender: mpsc::SyncSender<String>,
    pub bytes: Arc<AtomicUsize>,
}

pub fn spawn(instance: &str, config: AuditConfig) -> std::io::Result<Queue> {
    std::fs::create_dir_all(&config.dir)?;
    let live = config.dir.join(format!("toolgate-{instance}.jsonl"));
    let file = open_append(&live)?;
    let (sender, receiver) = mpsc::sync_channel::<String>(QUEUE);
    let bytes = Arc::new(AtomicUsize::new(0));
    let queued = Arc::clone(&bytes);
    let instance = instance.to_string();
    std::thread::Builder::new()
        .name("toolgate-audit".into())
        .spawn(move || {
            let mut writer = Writer {
                config,
                instance,
                live,
                file,
                written: 0,
                rotations: 0,
            };
            writer.written = writer.file.metadata().map(|m| m.len()).unwrap_or(0);
            for line in receiver {
                if let Err(e) = writer.append(&line) {
                    tracing::error!(error = %e, "audit write failed");
                }
                queued.fetch_sub(line.len(), Ordering::Relaxed);
            }
        })?;
    Ok(Queue { sender, bytes })
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

struct Writer {
    config: AuditConfig,
    instance: String,
    live: PathBuf,
    file: File,
    written: u64,
    rotations: u64,
}

impl Writer {
    fn append(&mut self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // One write per line: concurrent readers never see half a line from this writer.
        self.file.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        if self.written >= self.config.max_file_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        // Millisecond stamp plus a sequence: rotations within one millisecond must never
        // rename over each other, and names must sort in age order.
        self.rotations += 1;
        let name = format!(
            "toolgate-{}.{}-{:06}.jsonl",
            self.instance,
            super::now_ms(),
            self.rotations
        );
        std::fs::rename(&self.live, self.config.dir.join(name))?;
        self.file = open_append(&self.live)?;
        self.written = 0;
        self.prune()
    }

    fn prune(&self) -> std::io::Result<()> {
        let prefix = format!("toolgate-{}.", self.instance);
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(&self.config.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| *p != self.live)
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
            })
            .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(self.config.keep_files);
        for old in &rotated[..excess] {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rotates_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf());
        config.max_file_bytes = 100;
        config.keep_files = 2;
        let sender = spawn("t1", config).unwrap().sender;
        for i in 0..40 {
            sender
                .send(format!(
                    "{{\"n\":{i},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}"
                ))
                .unwrap();
        }
        drop(sender);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.contains(&"toolgate-t1.jsonl".to_string()));
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
