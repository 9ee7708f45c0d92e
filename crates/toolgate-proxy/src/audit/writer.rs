//! The audit writer thread: appends lines, each chained to the one before (`chain.rs`),
//! rotates by size, prunes old files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use serde::Serialize;

use super::{format_rfc3339_ms, AuditEvent};

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

/// Bytes of lines waiting to be written before new events are dropped instead of waited for.
/// Every event counts at least 160 bytes, so this also bounds the queue's length (about
/// 100,000 events); the channel itself is unbounded, so an empty queue costs no memory.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// An event waiting to be written, stamped when it was recorded.
pub struct Queued {
    pub ts_ms: u64,
    pub event: AuditEvent,
    /// The server the event is about, when the gateway fronts many (`AuditSink::for_server`).
    pub server: Option<std::sync::Arc<str>>,
    /// Told once the event's line is written (`AuditSink::record_and_flush`).
    pub written: Option<std::sync::mpsc::SyncSender<()>>,
    /// Its estimated line length, taken off `Queue::bytes` once written.
    pub size: usize,
}

/// The writer's queue: events, the bytes their lines will hold (added by senders, taken off
/// by the writer as it writes), and how many were dropped since the writer last said so.
pub struct Queue {
    pub sender: mpsc::Sender<Queued>,
    pub bytes: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicU64>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    /// The hash of the line before (`chain.rs`).
    prev: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// How long the writer waits, once woken, for more events to write with the first.
const GATHER_FOR: std::time::Duration = std::time::Duration::from_millis(1);

/// Most bytes gathered into one write: whole lines only, so a reader never sees half of one.
const MAX_WRITE_BYTES: usize = 64 * 1024;

pub fn spawn(instance: &str, config: AuditConfig) -> std::io::Result<Queue> {
    std::fs::create_dir_all(&config.dir)?;
    let live = config.dir.join(format!("toolgate-{instance}.jsonl"));
    let file = open_append(&live)?;
    let prev = super::chain::resume(&config.dir, instance)?;
    let (sender, receiver) = mpsc::channel::<Queued>();
    let bytes = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let (queued, lost) = (Arc::clone(&bytes), Arc::clone(&dropped));
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
                prev,
            };
            writer.written = writer.file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut batch = Vec::with_capacity(MAX_WRITE_BYTES);
            while let Ok(first) = receiver.recv() {
                // Events that arrive while the writer sleeps do not wake it: a sender pays a
                // wake-up only for the first event after a pause, and a busy gateway's
                // events go out a batch per interval.
                std::thread::sleep(GATHER_FOR);
                // Everything queued meanwhile goes out in one write.
                let mut next = Some(first);
                let mut waiting = Vec::new();
                while let Some(item) = next {
                    waiting.extend(item.written.clone());
                    let count = lost.swap(0, Ordering::Relaxed);
                    if count > 0 {
                        let event = AuditEvent::EventsDropped { count };
                        writer.serialize(&mut batch, item.ts_ms, None, &event);
                    }
                    writer.serialize(&mut batch, item.ts_ms, item.server.as_deref(), &item.event);
                    queued.fetch_sub(item.size, Ordering::Relaxed);
                    // A batch ends where the file is to rotate, as a line would alone.
                    let room = writer.written + (batch.len() as u64) < writer.config.max_file_bytes;
                    next = (batch.len() < MAX_WRITE_BYTES && room)
                        .then(|| receiver.try_recv().ok())
                        .flatten();
                }
                if let Err(e) = writer.append(&batch) {
                    tracing::error!(error = %e, "audit write failed");
                }
                batch.clear();
                for written in waiting {
                    let _ = written.try_send(());
                }
            }
        })?;
    Ok(Queue {
        sender,
        bytes,
        dropped,
    })
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
    /// The hash of the last line serialized: the next line's `prev`.
    prev: String,
}

impl Writer {
    /// Appends one event's line to `batch`.
    fn serialize(
        &mut self,
        batch: &mut Vec<u8>,
        ts_ms: u64,
        server: Option<&str>,
        event: &AuditEvent,
    ) {
        let line = Line {
            ts: format_rfc3339_ms(ts_ms),
            instance: &self.instance,
            // An event that names its server itself says it once.
            server: server.filter(|_| !event.names_server()),
            prev: &self.prev,
            event,
        };
        let start = batch.len();
        match serde_json::to_writer(&mut *batch, &line) {
            Ok(()) => {
                self.prev = super::chain::line_hash(&batch[start..]);
                batch.push(b'\n');
            }
            // Never half a line: what was written of it is taken back.
            Err(e) => {
                batch.truncate(start);
                tracing::error!(error = %e, "an audit event could not be serialized");
            }
        }
    }

    /// Writes whole lines in one write: concurrent readers never see half a line from this
    /// writer.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
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

    /// Lines written from many threads, across many rotations, form one chain that verifies.
    #[test]
    fn a_chain_holds_across_rotations_under_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf());
        config.max_file_bytes = 4096;
        config.keep_files = 1000;
        let sender = spawn("load", config).unwrap().sender;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let reason = format!("thread {t} event {i}");
                        let event = AuditEvent::Shutdown { reason };
                        sender
                            .send(Queued {
                                ts_ms: 0,
                                event,
                                server: None,
                                written: None,
                                size: 0,
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(sender);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Checked while the writer still writes and rotates, and once it is done.
        let verified = loop {
            let verified = crate::audit::chain::verify_dir(dir.path())
                .unwrap()
                .unwrap();
            if verified.lines == 2000 || std::time::Instant::now() > deadline {
                break verified;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(verified.lines, 2000);
        assert!(verified.files > 10, "{verified:?}");
        assert!(verified.starts_after_pruning.is_empty());
    }

    #[test]
    fn rotates_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf());
        config.max_file_bytes = 100;
        config.keep_files = 2;
        let sender = spawn("t1", config).unwrap().sender;
        for i in 0..40 {
            let event = AuditEvent::Shutdown {
                reason: format!("{i} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            };
            sender
                .send(Queued {
                    ts_ms: 0,
                    event,
                    server: None,
                    written: None,
                    size: 0,
                })
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
