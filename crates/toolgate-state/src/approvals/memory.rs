//! `memory:` approval records: one map behind one mutex, for tests and single-process
//! gateways (only the admin API of that process can decide them).
//!
//! Every method does all its work under the lock with no await point, which is what makes
//! each transition atomic here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{
    apply_verdict, require_state, Admission, AdmitOutcome, ApprovalError, ApprovalRecord,
    ApprovalState, ApprovalStore, ListFilter, NewApproval, Verdict, RETENTION_MS,
};
use crate::clock::Clock;

/// Approval records in this process's memory; clones share them.
#[derive(Clone)]
pub struct MemoryApprovals {
    clock: Arc<dyn Clock>,
    records: Arc<Mutex<HashMap<String, ApprovalRecord>>>,
}

impl std::fmt::Debug for MemoryApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryApprovals").finish_non_exhaustive()
    }
}

impl MemoryApprovals {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryApprovals {
        MemoryApprovals {
            clock,
            records: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, ApprovalRecord>> {
        // Every method checks before it writes and writes whole records, so a panic under
        // the lock cannot leave a half-made transition behind.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `step` on the record `id` if its effective state is `from`.
    fn transition(
        &self,
        id: &str,
        from: ApprovalState,
        step: impl FnOnce(&mut ApprovalRecord, u64),
    ) -> Result<ApprovalRecord, ApprovalError> {
        let mut records = self.lock();
        let now = self.clock.now_ms();
        require_state(records.get(id), id, from, now)?;
        let Some(record) = records.get_mut(id) else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        step(record, now);
        record.updated_ms = now;
        Ok(record.clone().at(now))
    }
}

#[async_trait]
impl ApprovalStore for MemoryApprovals {
    async fn admit(&self, request: NewApproval) -> Result<Admission, ApprovalError> {
        let mut records = self.lock();
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        let mut standing: Option<String> = None;
        let mut newest = 0u64;
        for record in records.values_mut() {
            if record.fingerprint != request.fingerprint {
                continue;
            }
            if record.effective_state(now) == ApprovalState::Expired
                && record.state != ApprovalState::Expired
            {
                record.state = ApprovalState::Expired;
                record.updated_ms = now;
                expired.push(record.clone());
            } else if record.stands(now) && (standing.is_none() || record.created_ms >= newest) {
                newest = record.created_ms;
                standing = Some(record.id.clone());
            }
        }
        if let Some(record) = standing.and_then(|id| records.get_mut(&id)) {
            let outcome = match record.state {
                ApprovalState::Approved => {
                    record.state = ApprovalState::Consumed;
                    record.consumed_ms = Some(now);
                    record.updated_ms = now;
                    AdmitOutcome::Consumed
                }
                ApprovalState::Denied => AdmitOutcome::Denied,
                _ => AdmitOutcome::Pending,
            };
            return Ok(Admission {
                outcome,
                record: record.clone(),
                expired,
            });
        }
        let record = ApprovalRecord::from_new(request, now);
        records.insert(record.id.clone(), record.clone());
        Ok(Admission {
            outcome: AdmitOutcome::Created,
            record,
            expired,
        })
    }

    async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let now = self.clock.now_ms();
        Ok(self.lock().get(id).map(|r| r.clone().at(now)))
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let now = self.clock.now_ms();
        let mut found: Vec<ApprovalRecord> = self
            .lock()
            .values()
            .map(|r| r.clone().at(now))
            .filter(|r| filter.all || r.state == ApprovalState::Pending)
            .collect();
        found.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        found.truncate(filter.limit);
        Ok(found)
    }

    async fn decide(
        &self,
        id: &str,
        verdict: &Verdict,
        by: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        self.transition(id, ApprovalState::Pending, |r, now| {
            apply_verdict(r, verdict, by, now)
        })
    }

    async fn consume(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.transition(id, ApprovalState::Approved, |r, now| {
            r.state = ApprovalState::Consumed;
            r.consumed_ms = Some(now);
        })
    }

    async fn release(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.transition(id, ApprovalState::Consumed, |r, _| {
            r.state = ApprovalState::Approved;
        })
    }

    async fn withdraw(&self, id: &str, reason: &str) -> Result<ApprovalRecord, ApprovalError> {
        self.transition(id, ApprovalState::Pending, |r, _| {
            r.state = ApprovalState::Withdrawn;
            r.reason = Some(reason.to_string());
        })
    }

    async fn expire_due(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let mut records = self.lock();
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        for record in records.values_mut() {
            if record.state != ApprovalState::Expired
                && record.effective_state(now) == ApprovalState::Expired
            {
                record.state = ApprovalState::Expired;
                record.updated_ms = now;
                expired.push(record.clone());
            }
        }
        records.retain(|_, r| {
            r.state == ApprovalState::Pending
                || r.state == ApprovalState::Approved
                || r.expires_ms.max(r.updated_ms).saturating_add(RETENTION_MS) > now
        });
        expired.sort_by_key(|r| r.expires_ms);
        Ok(expired)
    }
}
