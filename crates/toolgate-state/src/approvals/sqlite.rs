//! Approval records in the SQLite state file, beside the counters.
//!
//! The file is opened the way the counter store opens it (same permissions, WAL, busy
//! timeout, counter schema first), then the `approvals` table is added if missing. Each
//! transition is one `BEGIN IMMEDIATE` transaction whose `UPDATE` names the state it
//! expects (`… WHERE state = 'approved' AND expires_ms > now`), so SQLite's write lock makes
//! it atomic against every process sharing the file: of two gateways consuming the same
//! approval, exactly one changes a row.
//!
//! Like the counter store, all SQL runs on one thread that owns the connection; the async
//! methods send it a job and await the answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    apply_verdict, mode_str, parse_mode, require_state, Admission, AdmitOutcome, ApprovalError,
    ApprovalRecord, ApprovalState, ApprovalStore, ListFilter, NewApproval, Verdict, RETENTION_MS,
};
use crate::clock::Clock;
use crate::sqlite::error::store_error;
use crate::sqlite::schema;
use crate::store::StoreError;

/// Added to any state file that lacks it; the counter schema's version is untouched, so
/// files stay readable by builds without approvals.
const CREATE_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS approvals (
        prefix      TEXT    NOT NULL,
        id          TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        tool        TEXT    NOT NULL,
        identity    TEXT,
        session     TEXT,
        rule        TEXT    NOT NULL,
        policy      TEXT    NOT NULL,
        mode        TEXT    NOT NULL,
        message     TEXT,
        arguments   TEXT    NOT NULL,
        timeout_ms  INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        decided_ms  INTEGER,
        decided_by  TEXT,
        note        TEXT,
        reason      TEXT,
        consumed_ms INTEGER,
        PRIMARY KEY (prefix, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS approvals_fingerprint ON approvals (prefix, fingerprint);
    CREATE INDEX IF NOT EXISTS approvals_deadline ON approvals (prefix, state, expires_ms);
";

const COLUMNS: &str = "id, fingerprint, state, tool, identity, session, rule, policy, mode, \
    message, arguments, timeout_ms, created_ms, expires_ms, updated_ms, decided_ms, decided_by, \
    note, reason, consumed_ms";

const JOBS: usize = 256;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Approval records in an SQLite file. Dropping every clone stops the worker thread.
#[derive(Clone)]
pub struct SqliteApprovals {
    jobs: mpsc::Sender<Job>,
    path: Arc<Path>,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteApprovals")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteApprovals {
    /// Opens (creating if needed) the state file at `path`. Synchronous: for start-up.
    pub fn open(
        path: impl AsRef<Path>,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<SqliteApprovals, StoreError> {
        SqliteApprovals::open_with(path, prefix, clock, Duration::from_secs(5))
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        prefix: &str,
        clock: Arc<dyn Clock>,
        busy_timeout: Duration,
    ) -> Result<SqliteApprovals, StoreError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let mut conn = schema::open(&path, busy_timeout)?;
        {
            let fail = |e: rusqlite::Error| store_error(&path, "preparing the approvals table", &e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            tx.execute_batch(CREATE_TABLE).map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        let (jobs, mut receiver) = mpsc::channel::<Job>(JOBS);
        std::thread::Builder::new()
            .name("toolgate-approvals".into())
            .spawn(move || {
                while let Some(job) = receiver.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "starting the approvals database thread for {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteApprovals {
            jobs,
            path: path.into(),
            prefix: prefix.into(),
            clock,
        })
    }

    /// Runs `work` on the worker thread with the connection, this store's prefix and the
    /// clock; the clock is read by `work` itself, after it holds whatever lock it needs.
    async fn run<T: Send + 'static>(
        &self,
        doing: &'static str,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, ApprovalError> + Send + 'static,
    ) -> Result<T, ApprovalError> {
        let (reply, answer) = oneshot::channel();
        let path = Arc::clone(&self.path);
        let prefix = Arc::clone(&self.prefix);
        let clock = Arc::clone(&self.clock);
        let job: Job = Box::new(move |conn| {
            let result = run_immediate(conn, &path, &prefix, clock.as_ref(), doing, work);
            let _ = reply.send(result);
        });
        self.jobs.send(job).await.map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> ApprovalError {
        ApprovalError::Store(StoreError::Unavailable(format!(
            "the approvals database thread for {} has stopped",
            self.path.display()
        )))
    }
}

/// One transaction's view: the connection inside `BEGIN IMMEDIATE`, with what the
/// statements need.
struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    prefix: &'a str,
    path: &'a Path,
    doing: &'static str,
    now: u64,
}

impl Tx<'_> {
    fn fail(&self, e: rusqlite::Error) -> ApprovalError {
        ApprovalError::Store(store_error(self.path, self.doing, &e))
    }

    fn read(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        self.tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE prefix = ?1 AND id = ?2"),
                params![self.prefix, id],
                record_from_row,
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    fn insert(&self, r: &ApprovalRecord) -> Result<(), ApprovalError> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO approvals (prefix, {COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
            ))
            .and_then(|mut insert| {
                insert.execute(params![
                    self.prefix,
                    r.id,
                    r.fingerprint,
                    r.state.as_str(),
                    r.tool,
                    r.identity,
                    r.session,
                    r.rule,
                    r.policy,
                    mode_str(r.mode),
                    r.message,
                    r.arguments,
                    sql_ms(r.timeout_ms),
                    sql_ms(r.created_ms),
                    sql_ms(r.expires_ms),
                    sql_ms(r.updated_ms),
                    r.decided_ms.map(sql_ms),
                    r.decided_by,
                    r.note,
                    r.reason,
                    r.consumed_ms.map(sql_ms),
                ])
            })
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Writes a record's mutable fields, only if the stored state is still `from` (the
    /// write lock already guarantees it; the condition keeps the statement honest on its
    /// own). Anything else is a conflict.
    fn update_from(&self, r: &ApprovalRecord, from: ApprovalState) -> Result<(), ApprovalError> {
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE approvals SET state = ?3, expires_ms = ?4, updated_ms = ?5, \
                 decided_ms = ?6, decided_by = ?7, note = ?8, reason = ?9, consumed_ms = ?10 \
                 WHERE prefix = ?1 AND id = ?2 AND state = ?11",
            )
            .and_then(|mut update| {
                update.execute(params![
                    self.prefix,
                    r.id,
                    r.state.as_str(),
                    sql_ms(r.expires_ms),
                    sql_ms(r.updated_ms),
                    r.decided_ms.map(sql_ms),
                    r.decided_by,
                    r.note,
                    r.reason,
                    r.consumed_ms.map(sql_ms),
                    from.as_str(),
                ])
            })
            .map_err(|e| self.fail(e))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(ApprovalError::Conflict {
                id: r.id.clone(),
                state: self
                    .read(&r.id)?
                    .map_or(ApprovalState::Expired, |s| s.at(self.now).state),
            })
        }
    }

    /// The conditional step shared by every transition: read under the write lock, check
    /// the state, write the changed record.
    fn transition(
        &self,
        id: &str,
        from: ApprovalState,
        step: impl FnOnce(&mut ApprovalRecord, u64),
    ) -> Result<ApprovalRecord, ApprovalError> {
        let record = self.read(id)?;
        require_state(record.as_ref(), id, from, self.now)?;
        let Some(mut record) = record else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        let stored = record.state;
        step(&mut record, self.now);
        record.updated_ms = self.now;
        self.update_from(&record, stored)?;
        Ok(record.at(self.now))
    }
}

fn run_immediate<T>(
    conn: &mut Connection,
    path: &Path,
    prefix: &str,
    clock: &dyn Clock,
    doing: &'static str,
    work: impl FnOnce(&mut Tx<'_>) -> Result<T, ApprovalError>,
) -> Result<T, ApprovalError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ApprovalError::Store(store_error(path, doing, &e)))?;
    // Read after the write lock is held, as the counter store does: "now" is a moment at
    // which this process is the only writer.
    let now = clock.now_ms();
    let mut tx = Tx {
        tx,
        prefix,
        path,
        doing,
        now,
    };
    let value = work(&mut tx)?;
    tx.tx
        .commit()
        .map_err(|e| ApprovalError::Store(store_error(path, doing, &e)))?;
    Ok(value)
}

#[async_trait]
impl ApprovalStore for SqliteApprovals {
    async fn admit(&self, request: NewApproval) -> Result<Admission, ApprovalError> {
        self.run("asking for approval", move |tx| {
            let now = tx.now;
            let mut candidates: Vec<ApprovalRecord> = {
                let mut select = tx
                    .tx
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM approvals WHERE prefix = ?1 AND fingerprint = ?2 \
                         AND state IN ('pending', 'approved', 'denied')"
                    ))
                    .map_err(|e| tx.fail(e))?;
                let rows = select
                    .query_map(params![tx.prefix, request.fingerprint], record_from_row)
                    .map_err(|e| tx.fail(e))?;
                rows.collect::<Result<_, _>>().map_err(|e| tx.fail(e))?
            };
            candidates.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
            let mut expired = Vec::new();
            let mut standing = None;
            for mut record in candidates {
                if record.effective_state(now) == ApprovalState::Expired {
                    let stored = record.state;
                    record.state = ApprovalState::Expired;
                    record.updated_ms = now;
                    tx.update_from(&record, stored)?;
                    expired.push(record);
                } else if standing.is_none() && record.stands(now) {
                    standing = Some(record);
                }
            }
            let (outcome, record) = match standing {
                Some(mut record) => {
                    let outcome = match record.state {
                        ApprovalState::Approved => {
                            record.state = ApprovalState::Consumed;
                            record.consumed_ms = Some(now);
                            record.updated_ms = now;
                            tx.update_from(&record, ApprovalState::Approved)?;
                            AdmitOutcome::Consumed
                        }
                        ApprovalState::Denied => AdmitOutcome::Denied,
                        _ => AdmitOutcome::Pending,
                    };
                    (outcome, record)
                }
                None => {
                    let record = ApprovalRecord::from_new(request, now);
                    tx.insert(&record)?;
                    (AdmitOutcome::Created, record)
                }
            };
            Ok(Admission {
                outcome,
                record,
                expired,
            })
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let id = id.to_string();
        self.run("reading an approval", move |tx| {
            Ok(tx.read(&id)?.map(|r| r.at(tx.now)))
        })
        .await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        self.run("listing approvals", move |tx| {
            let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
            let sql = if filter.all {
                format!(
                    "SELECT {COLUMNS} FROM approvals WHERE prefix = ?1 \
                     ORDER BY created_ms DESC, id DESC LIMIT ?2"
                )
            } else {
                format!(
                    "SELECT {COLUMNS} FROM approvals WHERE prefix = ?1 AND state = 'pending' \
                     AND expires_ms > ?3 ORDER BY created_ms DESC, id DESC LIMIT ?2"
                )
            };
            let mut select = tx.tx.prepare_cached(&sql).map_err(|e| tx.fail(e))?;
            let now = tx.now;
            let rows = if filter.all {
                select.query_map(params![tx.prefix, limit], record_from_row)
            } else {
                select.query_map(params![tx.prefix, limit, sql_ms(now)], record_from_row)
            }
            .map_err(|e| tx.fail(e))?;
            let records: Vec<ApprovalRecord> =
                rows.collect::<Result<_, _>>().map_err(|e| tx.fail(e))?;
            Ok(records.into_iter().map(|r| r.at(now)).collect())
        })
        .await
    }

    async fn decide(
        &self,
        id: &str,
        verdict: &Verdict,
        by: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let (id, verdict, by) = (id.to_string(), verdict.clone(), by.to_string());
        self.run("deciding an approval", move |tx| {
            tx.transition(&id, ApprovalState::Pending, |r, now| {
                apply_verdict(r, &verdict, &by, now)
            })
        })
        .await
    }

    async fn consume(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let id = id.to_string();
        self.run("using an approval", move |tx| {
            tx.transition(&id, ApprovalState::Approved, |r, now| {
                r.state = ApprovalState::Consumed;
                r.consumed_ms = Some(now);
            })
        })
        .await
    }

    async fn release(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let id = id.to_string();
        self.run("returning an approval", move |tx| {
            tx.transition(&id, ApprovalState::Consumed, |r, _| {
                r.state = ApprovalState::Approved;
            })
        })
        .await
    }

    async fn withdraw(&self, id: &str, reason: &str) -> Result<ApprovalRecord, ApprovalError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.run("withdrawing an approval request", move |tx| {
            tx.transition(&id, ApprovalState::Pending, |r, _| {
                r.state = ApprovalState::Withdrawn;
                r.reason = Some(reason);
            })
        })
        .await
    }

    async fn expire_due(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        self.run("expiring approvals", move |tx| {
            let now = sql_ms(tx.now);
            let expired: Vec<ApprovalRecord> = {
                let mut update = tx
                    .tx
                    .prepare_cached(&format!(
                        "UPDATE approvals SET state = 'expired', updated_ms = ?2 \
                         WHERE prefix = ?1 AND state IN ('pending', 'approved') AND expires_ms <= ?2 \
                         RETURNING {COLUMNS}"
                    ))
                    .map_err(|e| tx.fail(e))?;
                let rows = update
                    .query_map(params![tx.prefix, now], record_from_row)
                    .map_err(|e| tx.fail(e))?;
                rows.collect::<Result<_, _>>().map_err(|e| tx.fail(e))?
            };
            let horizon = sql_ms(tx.now.saturating_sub(RETENTION_MS));
            tx.tx
                .execute(
                    "DELETE FROM approvals WHERE prefix = ?1 \
                     AND state NOT IN ('pending', 'approved') \
                     AND max(expires_ms, updated_ms) < ?2",
                    params![tx.prefix, horizon],
                )
                .map_err(|e| tx.fail(e))?;
            let mut expired = expired;
            expired.sort_by_key(|r| r.expires_ms);
            Ok(expired)
        })
        .await
    }
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<ApprovalRecord> {
    let state: String = row.get(2)?;
    let mode: String = row.get(8)?;
    Ok(ApprovalRecord {
        id: row.get(0)?,
        fingerprint: row.get(1)?,
        // A state this build does not know (written by a newer one) is treated as finished.
        state: ApprovalState::parse(&state).unwrap_or(ApprovalState::Expired),
        tool: row.get(3)?,
        identity: row.get(4)?,
        session: row.get(5)?,
        rule: row.get(6)?,
        policy: row.get(7)?,
        mode: parse_mode(&mode),
        message: row.get(9)?,
        arguments: row.get(10)?,
        timeout_ms: ms(row.get(11)?),
        created_ms: ms(row.get(12)?),
        expires_ms: ms(row.get(13)?),
        updated_ms: ms(row.get(14)?),
        decided_ms: row.get::<_, Option<i64>>(15)?.map(ms),
        decided_by: row.get(16)?,
        note: row.get(17)?,
        reason: row.get(18)?,
        consumed_ms: row.get::<_, Option<i64>>(19)?.map(ms),
    })
}

fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
