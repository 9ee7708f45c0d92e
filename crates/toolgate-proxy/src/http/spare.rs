//! A server process started ahead of need, for the next 2026-07-28 request.
//!
//! In front of a stdio server every request of the per-request era gets a process of its own,
//! and a server's start-up (an interpreter loading its SDK, `npx` resolving a package) can
//! take longer than the request itself: a client that waits half a second for the first frame
//! of a response would give up. So once such a request has been served, toolgate starts the
//! next process straight away and hands it to the next request. The spare has received
//! nothing and answered nothing: it is exactly the fresh process the request would have
//! started, only earlier. It holds one of the `--max-children` places, and gives it up when a
//! session needs it.

use crate::stdio::ServerCommand;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::process::Child;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::stdio::child as process;

/// A started child and the `--max-children` place it holds.
pub(crate) struct Started {
    pub child: Child,
    pub permit: OwnedSemaphorePermit,
}

/// At most one spare child, for one server command.
#[derive(Default)]
pub(crate) struct Spare {
    slot: Mutex<Option<Started>>,
}

impl Spare {
    /// The spare, if there is one and it is still running.
    pub fn take(&self) -> Option<Started> {
        let mut started = self.slot.lock().take()?;
        match started.child.try_wait() {
            Ok(None) => Some(started),
            // It exited (or cannot be watched): dropping it reaps it and frees its place.
            _ => None,
        }
    }

    /// Starts a spare unless there is one already or no place is free.
    pub fn refill(&self, command: &ServerCommand, children: &Arc<Semaphore>) {
        let mut slot = self.slot.lock();
        if slot.is_some() {
            return;
        }
        let Ok(permit) = Arc::clone(children).try_acquire_owned() else {
            return;
        };
        match process::spawn(command) {
            Ok(child) => *slot = Some(Started { child, permit }),
            Err(e) => tracing::warn!(error = %e, "cannot start a spare server process"),
        }
    }

    /// Kills the spare, if any, so its place can go to a session at once (it has done
    /// nothing, so nothing is lost; the runtime reaps it).
    pub fn release(&self) -> bool {
        match self.slot.lock().take() {
            Some(started) => {
                process::signal_group(&started.child, nix::sys::signal::Signal::SIGKILL);
                true
            }
            None => false,
        }
    }

    /// Stops the spare and waits for it (shutdown).
    pub async fn shut_down(&self, grace: Duration) {
        let started = self.slot.lock().take();
        if let Some(started) = started {
            stop(started, grace).await;
        }
    }
}

/// Closes the spare's input, then escalates like any other child.
async fn stop(mut started: Started, grace: Duration) {
    drop(started.child.stdin.take());
    let _ = process::stop(&mut started.child, grace).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sleeper() -> ServerCommand {
        ServerCommand::new(vec!["sh".into(), "-c".into(), "read line".into()])
    }

    #[tokio::test]
    async fn a_spare_holds_a_place_until_taken_or_released() {
        let children = Arc::new(Semaphore::new(2));
        let spare = Spare::default();
        spare.refill(&sleeper(), &children);
        assert_eq!(children.available_permits(), 1);
        spare.refill(&sleeper(), &children);
        assert_eq!(children.available_permits(), 1, "only one spare");
        let started = spare.take().unwrap();
        assert!(spare.take().is_none());
        drop(started);
        assert_eq!(children.available_permits(), 2);
        spare.refill(&sleeper(), &children);
        assert!(spare.release());
        assert_eq!(children.available_permits(), 2);
        assert!(!spare.release());
    }

    #[tokio::test]
    async fn an_exited_spare_is_not_handed_out() {
        let children = Arc::new(Semaphore::new(1));
        let spare = Spare::default();
        spare.refill(&ServerCommand::new(vec!["true".into()]), &children);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(spare.take().is_none());
        assert_eq!(children.available_permits(), 1);
    }

    #[tokio::test]
    async fn no_spare_without_a_free_place() {
        let children = Arc::new(Semaphore::new(1));
        let _held = Arc::clone(&children).try_acquire_owned().unwrap();
        let spare = Spare::default();
        spare.refill(&sleeper(), &children);
        assert!(spare.take().is_none());
    }
}
