//! `memory:` pins: one map behind one mutex, for tests and single-process gateways. Every
//! method does its work under the lock with no await point, which makes each step atomic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{observe_one, Observation, PinRecord, PinStore};
use crate::store::StoreError;

/// Pins in this process's memory; clones share them.
#[derive(Clone, Default)]
pub struct MemoryPins {
    /// By (server, key), so listing comes out ordered.
    records: Arc<Mutex<BTreeMap<(String, String), PinRecord>>>,
}

impl std::fmt::Debug for MemoryPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPins").finish_non_exhaustive()
    }
}

impl MemoryPins {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), PinRecord>> {
        // Records are replaced whole, so a panic under the lock leaves none half-written.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PinStore for MemoryPins {
    async fn observe(
        &self,
        server: &str,
        seen: Vec<Observation>,
        pin_if_new: bool,
    ) -> Result<Vec<PinRecord>, StoreError> {
        let mut records = self.lock();
        Ok(seen
            .into_iter()
            .map(|seen| {
                let id = (server.to_string(), seen.key.clone());
                let (record, _) = observe_one(records.remove(&id), server, seen, pin_if_new);
                records.insert(id, record.clone());
                record
            })
            .collect())
    }

    async fn approve(&self, server: &str, key: &str) -> Result<Option<PinRecord>, StoreError> {
        let mut records = self.lock();
        let Some(record) = records.get_mut(&(server.to_string(), key.to_string())) else {
            return Ok(None);
        };
        let Some(pending) = record.pending.take() else {
            return Ok(None);
        };
        record.pinned = Some(pending);
        Ok(Some(record.clone()))
    }

    async fn list(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|r| server.is_none_or(|s| r.server == s))
            .cloned()
            .collect())
    }

    async fn reset(&self, server: Option<&str>) -> Result<usize, StoreError> {
        let mut records = self.lock();
        let before = records.len();
        records.retain(|(s, _), _| server.is_some_and(|only| s != only));
        Ok(before - records.len())
    }
}
