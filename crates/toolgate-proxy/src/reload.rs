//! Hot reload: watch the policy file's directory, debounce, validate, swap. The policy's
//! pin lock file (`pinning.lock`) is read with it, and a change to it reloads too.
//!
//! The directory is watched rather than the file because editors and Kubernetes ConfigMaps
//! replace files (write a new one, rename over the old), which a watch on the old inode misses.
//! A file that does not validate leaves the policy in force unchanged and every error logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::gateway::Gateway;

/// Quiet time after the last change before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Reads, validates and, if valid, installs the policy at `path`. Returns whether it did.
///
/// Reloads are serialized: each one reads the file while holding the gateway's reload lock,
/// so two reloads racing (the watcher and a SIGHUP) cannot install an older read last.
pub async fn reload_from(gateway: &Gateway, path: &Path) -> bool {
    let _one_at_a_time = gateway.reload_lock.lock().await;
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) => {
            let error = format!("{}: cannot read policy: {e}", path.display());
            tracing::error!("{error}; keeping the current policy");
            gateway.reload_failed(vec![error]);
            return false;
        }
    };
    match toolgate_policy::compile(&text) {
        Ok(policy) => {
            let lock = match crate::pinning::LockFile::of_policy(&policy, path) {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::error!("{error}; keeping the current policy");
                    gateway.reload_failed(vec![error]);
                    return false;
                }
            };
            let current = gateway.policy();
            let same_lock = gateway.pin_lock.load().as_deref() == lock.as_ref();
            if policy.revision == current.revision {
                if !same_lock {
                    tracing::info!("pin lock file reloaded");
                    gateway.set_pin_lock(lock);
                }
                return !same_lock;
            }
            if gateway.would_drop_authentication(&policy) {
                let error = format!(
                    "{}: the new policy has neither `identities` nor `oauth`, but the HTTP \
                     listener requires tokens; a reload cannot turn authentication off \
                     (restart toolgate to do that deliberately)",
                    path.display()
                );
                tracing::error!("{error}; keeping the current policy");
                gateway.reload_failed(vec![error]);
                return false;
            }
            tracing::info!(revision = %policy.revision, "policy reloaded");
            if !same_lock {
                gateway.set_pin_lock(lock);
            }
            gateway.replace_policy(policy).await;
            true
        }
        Err(diagnostics) => {
            let file = path.display().to_string();
            let errors: Vec<String> = diagnostics
                .iter()
                .map(|d| d.display_in(&file).to_string())
                .collect();
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!(
                errors = errors.len(),
                "policy reload failed; keeping the current policy"
            );
            gateway.reload_failed(errors);
            false
        }
    }
}

/// Watches `path` and reloads on change until the returned handle is dropped.
pub fn watch(gateway: Arc<Gateway>, path: PathBuf) -> notify::Result<WatchHandle> {
    let lock_of = Arc::downgrade(&gateway);
    // The policy's lock file counts as part of it (when it sits beside it).
    let lock_name = move || {
        let lock = lock_of.upgrade()?.pin_lock.load_full()?;
        lock.source
            .as_deref()?
            .file_name()
            .map(|n| n.to_os_string())
    };
    let reload_path = path.clone();
    watch_file(path, lock_name, move || {
        let gateway = Arc::clone(&gateway);
        let path = reload_path.clone();
        Box::pin(async move {
            reload_from(&gateway, &path).await;
        })
    })
}

/// Watches the file at `path` (and the file `also` names, in the same directory) and calls
/// `on_change` once changes stop arriving, until the returned handle is dropped.
pub fn watch_file(
    path: PathBuf,
    also: impl Fn() -> Option<std::ffi::OsString> + Send + 'static,
    mut on_change: impl FnMut() -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
) -> notify::Result<WatchHandle> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let also = also();
            // Kubernetes mounts a ConfigMap as `<file> -> ..data/<file>` and updates it by
            // swapping the `..data` symlink: the event names `..data`, never the file.
            let ours = event.paths.iter().any(|p| {
                let name = p.file_name().map(|n| n.to_os_string());
                name == file_name
                    || (also.is_some() && name == also)
                    || name
                        .as_deref()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("..data"))
            });
            if ours {
                let _ = tx.send(());
            }
        }
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until changes stop arriving.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            on_change().await;
        }
    });
    Ok(WatchHandle {
        _watcher: watcher,
        task,
    })
}

pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
