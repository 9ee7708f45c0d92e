//! The ids of requests sent upstream: every one is minted by the gateway.
//!
//! A client's request id never reaches the server. The gateway rewrites it to a number of its
//! own and maps the server's answer back, so that:
//! - a client cannot make the server answer one of the gateway's own requests (a client
//!   `ping` with the id of the gateway's internal `tools/list` would otherwise be taken for
//!   the listing's answer);
//! - an id a server writes back differently (`"\uD800"` → `"\ud800"`, `1.0` → `1`) cannot
//!   slip an answer past the gateway's filters: an answer whose id was not minted, or was
//!   already answered, is dropped and logged, never relayed;
//! - a call that timed out or was cancelled is answered once: its late answer is recognised
//!   and dropped.
//!
//! Minted ids are small positive integers, which every JSON reader (JavaScript's included)
//! reads and writes back exactly.

use std::collections::{HashMap, VecDeque};

use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::message::ServerMessage;

/// How many ended requests (timed out, cancelled) a session remembers so that their late
/// answers are recognised; older ones are forgotten and their answers dropped as unknown.
const REMEMBERED_ENDED: usize = 1024;

/// Requests one session may have waiting for the server at once. A server that never
/// answers would otherwise let a client make the gateway remember requests without bound.
pub const MAX_WAITING: usize = 4096;

/// Why a client request cannot go upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MintRefusal {
    /// Another request with the same id is waiting for its answer.
    IdInUse,
    /// The session has [`MAX_WAITING`] requests waiting.
    TooManyWaiting,
}

impl MintRefusal {
    /// What the client is told (`-32600`).
    pub fn message(self) -> String {
        match self {
            MintRefusal::IdInUse => {
                "request id is already in use by a request in flight".to_string()
            }
            MintRefusal::TooManyWaiting => format!(
                "too many requests are waiting for the server (at most {MAX_WAITING} per session); wait for answers, then retry"
            ),
        }
    }
}

/// What an upstream request was.
pub(crate) enum Pending {
    /// A client's request; its answer goes back with the client's own id (and ends its
    /// span, when it is traced).
    Client {
        id: Box<RawValue>,
        key: String,
        span: Option<Box<crate::pipeline::RequestSpan>>,
    },
    /// The gateway's own request; its answer goes to the waiting task.
    Internal(oneshot::Sender<ServerMessage>),
}

/// What the answer with a given upstream id is.
pub(crate) enum Answer {
    Pending(Pending),
    /// A request that already ended (timeout, cancellation): the answer is late.
    Ended {
        tool: Option<String>,
    },
    /// An id the gateway never minted, or whose answer already came.
    Unknown,
}

/// One session's upstream ids.
#[derive(Default)]
pub(crate) struct UpstreamIds {
    next: u64,
    pending: HashMap<u64, Pending>,
    /// Client request key → upstream id, for cancellations and duplicate detection.
    by_client: HashMap<String, u64>,
    ended: HashMap<u64, Option<String>>,
    ended_order: VecDeque<u64>,
}

impl UpstreamIds {
    /// Mints an id for a client request, unless a request with the same client id is still
    /// waiting for its answer, or the session already has [`MAX_WAITING`] requests waiting.
    pub fn mint_for_client(&mut self, id: &RawValue, key: &str) -> Result<u64, MintRefusal> {
        if self.by_client.contains_key(key) {
            return Err(MintRefusal::IdInUse);
        }
        if self.pending.len() >= MAX_WAITING {
            return Err(MintRefusal::TooManyWaiting);
        }
        let upstream = self.mint();
        self.by_client.insert(key.to_string(), upstream);
        self.pending.insert(
            upstream,
            Pending::Client {
                id: id.to_owned(),
                key: key.to_string(),
                span: None,
            },
        );
        Ok(upstream)
    }

    /// Traces a client request minted an id: its span ends with the answer.
    pub fn trace(&mut self, upstream: u64, traced: Box<crate::pipeline::RequestSpan>) {
        if let Some(Pending::Client { span, .. }) = self.pending.get_mut(&upstream) {
            *span = Some(traced);
        }
    }

    /// Mints an id for a request of the gateway's own.
    pub fn mint_internal(&mut self, waiter: oneshot::Sender<ServerMessage>) -> u64 {
        let upstream = self.mint();
        self.pending.insert(upstream, Pending::Internal(waiter));
        upstream
    }

    fn mint(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Whether a client request with this key is waiting for its answer.
    pub fn client_waiting(&self, key: &str) -> bool {
        self.by_client.contains_key(key)
    }

    /// The upstream id of a client request still waiting.
    pub fn upstream_of(&self, key: &str) -> Option<u64> {
        self.by_client.get(key).copied()
    }

    /// Takes the request an answer belongs to. `id_key` is the canonical text of the id the
    /// server wrote.
    pub fn answer(&mut self, id_key: &str) -> Answer {
        let Ok(upstream) = id_key.parse::<u64>() else {
            return Answer::Unknown;
        };
        if let Some(pending) = self.pending.remove(&upstream) {
            if let Pending::Client { key, .. } = &pending {
                self.by_client.remove(key);
            }
            return Answer::Pending(pending);
        }
        match self.ended.remove(&upstream) {
            Some(tool) => Answer::Ended { tool },
            None => Answer::Unknown,
        }
    }

    /// Forgets a request that ended without its answer (the gateway answered the client
    /// itself); a late answer is then recognised as late. Returns its upstream id.
    pub fn end_client(&mut self, key: &str, tool: Option<String>) -> Option<u64> {
        let upstream = self.by_client.remove(key)?;
        self.pending.remove(&upstream);
        self.remember_ended(upstream, tool);
        Some(upstream)
    }

    /// Forgets one of the gateway's own requests that will not be waited for any more.
    pub fn end_internal(&mut self, upstream: u64) {
        if self.pending.remove(&upstream).is_some() {
            self.remember_ended(upstream, None);
        }
    }

    fn remember_ended(&mut self, upstream: u64, tool: Option<String>) {
        if self.ended_order.len() >= REMEMBERED_ENDED {
            if let Some(oldest) = self.ended_order.pop_front() {
                self.ended.remove(&oldest);
            }
        }
        self.ended.insert(upstream, tool);
        self.ended_order.push_back(upstream);
    }

    /// Every client request still waiting, for when the server goes away.
    pub fn drain_clients(&mut self) -> Vec<(String, Box<RawValue>)> {
        self.by_client.clear();
        self.pending
            .drain()
            .filter_map(|(_, p)| match p {
                Pending::Client { id, key, .. } => Some((key, id)),
                Pending::Internal(_) => None,
            })
            .collect()
    }

    /// Requests waiting for an answer (client and internal).
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn client_ids_map_to_minted_ids_and_back() {
        let mut ids = UpstreamIds::default();
        let a = ids
            .mint_for_client(&raw("\"toolgate-1\""), "\"toolgate-1\"")
            .unwrap();
        assert!(ids
            .mint_for_client(&raw("\"toolgate-1\""), "\"toolgate-1\"")
            .is_err());
        let (tx, _rx) = oneshot::channel();
        let internal = ids.mint_internal(tx);
        assert_ne!(a, internal);
        assert!(matches!(
            ids.answer(&internal.to_string()),
            Answer::Pending(Pending::Internal(_))
        ));
        match ids.answer(&a.to_string()) {
            Answer::Pending(Pending::Client { id, .. }) => assert_eq!(id.get(), "\"toolgate-1\""),
            _ => panic!("expected the client's request"),
        }
        // Answered once: a second answer with the same id is unknown.
        assert!(matches!(ids.answer(&a.to_string()), Answer::Unknown));
        assert!(matches!(ids.answer("\"toolgate-1\""), Answer::Unknown));
        assert_eq!(ids.waiting(), 0);
    }

    #[test]
    fn a_session_has_a_bounded_number_of_requests_waiting() {
        let mut ids = UpstreamIds::default();
        for i in 0..MAX_WAITING {
            let key = i.to_string();
            ids.mint_for_client(&raw(&key), &key).unwrap();
        }
        assert_eq!(
            ids.mint_for_client(&raw("\"one more\""), "\"one more\""),
            Err(MintRefusal::TooManyWaiting)
        );
        // An answer frees a place.
        assert!(matches!(ids.answer("1"), Answer::Pending(_)));
        assert!(ids
            .mint_for_client(&raw("\"one more\""), "\"one more\"")
            .is_ok());
    }

    #[test]
    fn late_answers_are_recognised() {
        let mut ids = UpstreamIds::default();
        let a = ids.mint_for_client(&raw("7"), "7").unwrap();
        assert_eq!(ids.end_client("7", Some("slow".into())), Some(a));
        assert!(!ids.client_waiting("7"));
        assert!(
            matches!(ids.answer(&a.to_string()), Answer::Ended { tool: Some(t) } if t == "slow")
        );
        // The id is free again for the client.
        assert!(ids.mint_for_client(&raw("7"), "7").is_ok());
    }

    #[test]
    fn ids_written_back_differently_still_match_when_equal_in_value() {
        let mut ids = UpstreamIds::default();
        let a = ids.mint_for_client(&raw("1"), "1").unwrap();
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{a}.0,"result":{{}}}}"#);
        let message = ServerMessage::read(answer).unwrap();
        assert!(matches!(
            ids.answer(message.answer_key().unwrap()),
            Answer::Pending(_)
        ));
    }

    #[test]
    fn ended_requests_are_remembered_within_a_bound() {
        let mut ids = UpstreamIds::default();
        for i in 0..(REMEMBERED_ENDED + 10) {
            let key = i.to_string();
            ids.mint_for_client(&raw(&key), &key).unwrap();
            ids.end_client(&key, None);
        }
        assert_eq!(ids.ended.len(), REMEMBERED_ENDED);
        assert!(matches!(ids.answer("1"), Answer::Unknown));
    }
}
