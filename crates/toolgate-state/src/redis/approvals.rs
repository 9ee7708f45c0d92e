//! Approval records in Redis, shared by every gateway (and `toolgate approvals`) that reaches
//! the same server.
//!
//! A record is a hash at `{prefix}:apr:<id>`; `{prefix}:apr-fp:<fingerprint>` is the set of
//! ids asked for one call, and `{prefix}:apr-list` holds every id scored by creation time,
//! for listing and the sweep. Each step of [`ApprovalStore`] is one Lua script
//! (`lua/approvals.lua`), so Redis runs it atomically against every other gateway: of two
//! gateways retrying the same approved call, exactly one consumes it. The scripts read the
//! Redis server's clock (`TIME`), as the counters do; tests can hand them a time instead.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use redis::{Script, Value};

use super::dsn::RedisDsn;
use super::keys::Namespace;
use super::link::Link;
use super::RedisTime;
use crate::approvals::{
    mode_str, parse_mode, Admission, AdmitOutcome, ApprovalError, ApprovalRecord, ApprovalState,
    ApprovalStore, ListFilter, NewApproval, Verdict, RETENTION_MS,
};
use crate::store::StoreError;

const LIB: &str = include_str!("lua/approvals.lua");

/// Approval records in Redis. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisApprovals {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    keys: [String; 3],
    time: RedisTime,
    admit: Script,
    get: Script,
    list: Script,
    decide: Script,
    consume: Script,
    release: Script,
    withdraw: Script,
    expire: Script,
}

impl std::fmt::Debug for RedisApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisApprovals")
            .field("target", &self.inner.link.target())
            .finish_non_exhaustive()
    }
}

fn script(entry: &str) -> Script {
    Script::new(&format!("{LIB}\nreturn {entry}()\n"))
}

impl RedisApprovals {
    /// Prepares the store under `prefix` without connecting (as [`super::RedisStore::open`]).
    pub fn open(
        dsn: &RedisDsn,
        prefix: &str,
        time: RedisTime,
    ) -> Result<RedisApprovals, StoreError> {
        let namespace = Namespace::new(prefix)?;
        Ok(RedisApprovals {
            inner: Arc::new(Inner {
                link: Link::new(dsn)?,
                keys: namespace.approvals(),
                time,
                admit: script("admit"),
                get: script("get"),
                list: script("list"),
                decide: script("decide"),
                consume: script("consume"),
                release: script("release"),
                withdraw: script("withdraw"),
                expire: script("expire"),
            }),
        })
    }

    /// Parses `dsn` (`redis://…`, `rediss://…`, `redis+cluster://…`) and opens it.
    pub fn open_dsn(
        dsn: &str,
        prefix: &str,
        time: RedisTime,
    ) -> Result<RedisApprovals, StoreError> {
        match crate::dsn::Dsn::parse(dsn)? {
            crate::dsn::Dsn::Redis(dsn) => RedisApprovals::open(&dsn, prefix, time),
            _ => Err(StoreError::Unavailable("not a Redis DSN".into())),
        }
    }
}

impl Inner {
    async fn run(&self, script: &Script, args: &[String]) -> Result<Value, ApprovalError> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation.arg(match &self.time {
            RedisTime::Server => String::new(),
            RedisTime::Clock(clock) => clock.now_ms().to_string(),
        });
        for arg in args {
            invocation.arg(arg);
        }
        Ok(self.link.eval(&invocation).await?)
    }

    fn bad(&self, what: &str) -> ApprovalError {
        ApprovalError::Store(StoreError::Backend(format!(
            "redis {}: unexpected answer from the approvals {what} script",
            self.link.target()
        )))
    }

    fn record(&self, value: &Value, what: &str) -> Result<ApprovalRecord, ApprovalError> {
        decode_record(value).ok_or_else(|| self.bad(what))
    }

    fn records(&self, value: &Value, what: &str) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        match value {
            Value::Array(items) => items.iter().map(|v| self.record(v, what)).collect(),
            _ => Err(self.bad(what)),
        }
    }

    /// Decodes `{"ok", record}`, `{"notfound"}` or `{"conflict", state}`.
    fn transition(
        &self,
        id: &str,
        value: &Value,
        what: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let Value::Array(fields) = value else {
            return Err(self.bad(what));
        };
        match (fields.first().and_then(text).as_deref(), fields.get(1)) {
            (Some("ok"), Some(record)) => self.record(record, what),
            (Some("notfound"), _) => Err(ApprovalError::NotFound(id.to_string())),
            (Some("conflict"), Some(state)) => Err(ApprovalError::Conflict {
                id: id.to_string(),
                state: text(state)
                    .and_then(|s| ApprovalState::parse(&s))
                    .unwrap_or(ApprovalState::Expired),
            }),
            _ => Err(self.bad(what)),
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn decode_record(value: &Value) -> Option<ApprovalRecord> {
    let Value::Array(items) = value else {
        return None;
    };
    if items.len() % 2 != 0 {
        return None;
    }
    let mut map: HashMap<String, String> = HashMap::new();
    for pair in items.chunks(2) {
        map.insert(text(&pair[0])?, text(&pair[1])?);
    }
    let ms = |name: &str| map.get(name).and_then(|v| v.parse::<u64>().ok());
    Some(ApprovalRecord {
        id: map.get("id")?.clone(),
        fingerprint: map.get("fingerprint")?.clone(),
        // A state this build does not know (written by a newer one) is treated as finished.
        state: ApprovalState::parse(map.get("state")?).unwrap_or(ApprovalState::Expired),
        tool: map.get("tool")?.clone(),
        identity: map.get("identity").cloned(),
        session: map.get("session").cloned(),
        rule: map.get("rule")?.clone(),
        policy: map.get("policy")?.clone(),
        mode: parse_mode(map.get("mode")?),
        message: map.get("message").cloned(),
        arguments: map.get("arguments")?.clone(),
        timeout_ms: ms("timeout_ms")?,
        created_ms: ms("created_ms")?,
        expires_ms: ms("expires_ms")?,
        updated_ms: ms("updated_ms")?,
        decided_ms: ms("decided_ms"),
        decided_by: map.get("decided_by").cloned(),
        note: map.get("note").cloned(),
        reason: map.get("reason").cloned(),
        consumed_ms: ms("consumed_ms"),
    })
}

#[async_trait]
impl ApprovalStore for RedisApprovals {
    async fn admit(&self, request: NewApproval) -> Result<Admission, ApprovalError> {
        let inner = &self.inner;
        let mut args = Vec::with_capacity(22);
        let mut field = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(name.to_string());
                args.push(value);
            }
        };
        field("id", Some(request.id));
        field("fingerprint", Some(request.fingerprint));
        field("tool", Some(request.tool));
        field("identity", request.identity);
        field("session", request.session);
        field("rule", Some(request.rule));
        field("policy", Some(request.policy));
        field("mode", Some(mode_str(request.mode).to_string()));
        field("message", request.message);
        field("arguments", Some(request.arguments));
        field("timeout_ms", Some(request.timeout_ms.to_string()));
        let reply = inner.run(&inner.admit, &args).await?;
        let Value::Array(fields) = &reply else {
            return Err(inner.bad("admit"));
        };
        let [outcome, record, expired] = fields.as_slice() else {
            return Err(inner.bad("admit"));
        };
        let outcome = match text(outcome).as_deref() {
            Some("created") => AdmitOutcome::Created,
            Some("pending") => AdmitOutcome::Pending,
            Some("consumed") => AdmitOutcome::Consumed,
            Some("denied") => AdmitOutcome::Denied,
            _ => return Err(inner.bad("admit")),
        };
        Ok(Admission {
            outcome,
            record: inner.record(record, "admit")?,
            expired: inner.records(expired, "admit")?,
        })
    }

    async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let inner = &self.inner;
        let reply = inner.run(&inner.get, &[id.to_string()]).await?;
        match &reply {
            Value::Array(items) if items.is_empty() => Ok(None),
            Value::Nil => Ok(None),
            other => inner.record(other, "get").map(Some),
        }
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let inner = &self.inner;
        let args = [
            if filter.all { "1" } else { "0" }.to_string(),
            filter.limit.to_string(),
        ];
        let reply = inner.run(&inner.list, &args).await?;
        inner.records(&reply, "list")
    }

    async fn decide(
        &self,
        id: &str,
        verdict: &Verdict,
        by: &str,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let inner = &self.inner;
        let (kind, text_arg) = match verdict {
            Verdict::Approve { note } => ("approve", note.clone()),
            Verdict::Deny { reason } => ("deny", Some(reason.clone())),
        };
        let args = [
            id.to_string(),
            kind.to_string(),
            by.to_string(),
            if text_arg.is_some() { "1" } else { "0" }.to_string(),
            text_arg.unwrap_or_default(),
        ];
        let reply = inner.run(&inner.decide, &args).await?;
        inner.transition(id, &reply, "decide")
    }

    async fn consume(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let inner = &self.inner;
        let reply = inner.run(&inner.consume, &[id.to_string()]).await?;
        inner.transition(id, &reply, "consume")
    }

    async fn release(&self, id: &str) -> Result<ApprovalRecord, ApprovalError> {
        let inner = &self.inner;
        let reply = inner.run(&inner.release, &[id.to_string()]).await?;
        inner.transition(id, &reply, "release")
    }

    async fn withdraw(&self, id: &str, reason: &str) -> Result<ApprovalRecord, ApprovalError> {
        let inner = &self.inner;
        let reply = inner
            .run(&inner.withdraw, &[id.to_string(), reason.to_string()])
            .await?;
        inner.transition(id, &reply, "withdraw")
    }

    async fn expire_due(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let inner = &self.inner;
        let reply = inner
            .run(&inner.expire, &[RETENTION_MS.to_string()])
            .await?;
        let mut expired = inner.records(&reply, "expire")?;
        expired.sort_by_key(|r| r.expires_ms);
        Ok(expired)
    }
}
