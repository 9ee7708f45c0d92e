//! The listener's sessions: the table of live sessions, and where each message for a client
//! goes.
//!
//! Routing (Streamable HTTP): a response goes to the POST that carried its request; a
//! server-initiated message goes to the POST stream its progress token names, else to the
//! newest POST still open that can stream (a stdio server's messages during a call are about
//! that call), else to the GET stream, else it waits in a bounded backlog for the next GET.
//! A legacy HTTP+SSE session has one stream, which carries everything.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::upstream::{LinkWatcher, UpstreamLink};
use crate::message::{Route, ToClient};
use crate::session::Session;

/// Messages waiting for a stream are capped; the oldest are dropped past this.
const BACKLOG_LIMIT: usize = 1024;

/// Where a session was opened, which is the only place it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/mcp`.
    Streamable,
    /// `/sse` and `/message`.
    Legacy,
    /// `/mcp/<server>`: one server of a gateway config, under its own names.
    OneServer(String),
}

/// One client session of the listener.
pub(crate) struct HttpSession {
    pub id: String,
    pub session: Arc<Session>,
    pub identity: Option<String>,
    pub endpoint: Endpoint,
    pub legacy: bool,
    pub outbound: Arc<Outbound>,
    link: Mutex<Option<UpstreamLink>>,
    pub watcher: LinkWatcher,
    last_seen: Mutex<Instant>,
    /// Requests being handled and streams open: a session with any is not idle.
    active: AtomicUsize,
    closed: AtomicBool,
}

impl HttpSession {
    /// A session whose client-bound messages `outbound` routes.
    pub fn new(
        session: Arc<Session>,
        outbound: Arc<Outbound>,
        endpoint: Endpoint,
        link: UpstreamLink,
    ) -> HttpSession {
        HttpSession {
            id: session.id.clone(),
            identity: session.identity.clone(),
            watcher: link.watcher(),
            session,
            legacy: endpoint == Endpoint::Legacy,
            endpoint,
            outbound,
            link: Mutex::new(Some(link)),
            last_seen: Mutex::new(Instant::now()),
            active: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    pub fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    /// Marks the session busy until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(Arc::clone(self))
    }

    pub fn is_idle(&self, idle_for: std::time::Duration) -> bool {
        self.active.load(Ordering::SeqCst) == 0
            && self.session.inflight_count() == 0
            && self.last_seen.lock().elapsed() >= idle_for
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Ends the session: streams close, the upstream is stopped (a child is reaped).
    pub async fn close(&self, grace: std::time::Duration) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.outbound.close();
        let link = self.link.lock().take();
        if let Some(link) = link {
            // stdin closed → SIGTERM → SIGKILL, each after `grace`, plus reading the end.
            link.close(grace * 3 + std::time::Duration::from_secs(3))
                .await;
        }
    }
}

/// Keeps a session from idling out while a request or stream is open.
pub(crate) struct Busy(Arc<HttpSession>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// All live sessions.
#[derive(Default)]
pub(crate) struct SessionTable {
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
}

impl SessionTable {
    /// Live sessions of one identity.
    pub fn count_of(&self, identity: &Option<String>) -> usize {
        self.sessions
            .lock()
            .values()
            .filter(|s| &s.identity == identity)
            .count()
    }

    pub fn get(&self, id: &str) -> Option<Arc<HttpSession>> {
        self.sessions
            .lock()
            .get(id)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn insert(&self, session: Arc<HttpSession>) {
        self.sessions.lock().insert(session.id.clone(), session);
    }

    pub fn remove(&self, id: &str) -> Option<Arc<HttpSession>> {
        self.sessions.lock().remove(id)
    }

    pub fn all(&self) -> Vec<Arc<HttpSession>> {
        self.sessions.lock().values().cloned().collect()
    }
}

/// Messages one client stream (a POST's SSE answer, the GET stream) holds before its client
/// counts as not reading: routing never waits on a client, and never queues without bound.
const STREAM_DEPTH: usize = 1024;

/// Where a session's client-bound messages go.
pub(crate) struct Outbound {
    state: Mutex<OutState>,
}

struct OutState {
    legacy: bool,
    /// Request id (canonical) → the POST waiting for its answer.
    waiters: HashMap<String, u64>,
    /// Open POSTs, oldest first.
    posts: Vec<PostSlot>,
    get: Option<(u64, mpsc::Sender<ToClient>)>,
    backlog: VecDeque<ToClient>,
    next: u64,
    closed: bool,
}

struct PostSlot {
    id: u64,
    tx: mpsc::Sender<ToClient>,
    progress_tokens: Vec<String>,
    can_stream: bool,
}

/// A request whose answer a POST waits for.
pub(crate) struct Expected {
    pub id_key: String,
    pub progress_token: Option<String>,
}

impl Outbound {
    pub fn new(legacy: bool) -> Outbound {
        Outbound {
            state: Mutex::new(OutState {
                legacy,
                waiters: HashMap::new(),
                posts: Vec::new(),
                get: None,
                backlog: VecDeque::new(),
                next: 1,
                closed: false,
            }),
        }
    }

    /// Registers a POST waiting for the answers to `expected`. Fails with the id of a request
    /// that another POST is already waiting for.
    pub fn open_post(
        &self,
        expected: &[Expected],
        can_stream: bool,
    ) -> Result<(u64, mpsc::Receiver<ToClient>), String> {
        let mut state = self.state.lock();
        if let Some(dup) = expected
            .iter()
            .find(|e| state.waiters.contains_key(&e.id_key))
        {
            return Err(dup.id_key.clone());
        }
        let id = state.next;
        state.next += 1;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        for e in expected {
            state.waiters.insert(e.id_key.clone(), id);
        }
        state.posts.push(PostSlot {
            id,
            tx,
            progress_tokens: expected
                .iter()
                .filter_map(|e| e.progress_token.clone())
                .collect(),
            can_stream,
        });
        Ok((id, rx))
    }

    /// The POST is done (answered or abandoned). Messages still queued for it that are not
    /// answers are routed elsewhere.
    pub fn close_post(&self, id: u64, rx: &mut mpsc::Receiver<ToClient>) {
        {
            let mut state = self.state.lock();
            state.posts.retain(|p| p.id != id);
            state.waiters.retain(|_, post| *post != id);
        }
        rx.close();
        while let Ok(message) = rx.try_recv() {
            if !message.is_answer() {
                self.deliver(message);
            }
        }
    }

    /// A POST that cannot stream after all (the client accepts only JSON).
    pub fn cannot_stream(&self, id: u64) {
        if let Some(p) = self.state.lock().posts.iter_mut().find(|p| p.id == id) {
            p.can_stream = false;
        }
    }

    /// Opens the stream for server-initiated messages (the GET stream, or the legacy event
    /// stream), replacing an older one; waiting messages are handed to it.
    pub fn open_stream(&self) -> (u64, mpsc::Receiver<ToClient>) {
        let mut state = self.state.lock();
        let id = state.next;
        state.next += 1;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        while let Some(message) = state.backlog.pop_front() {
            let _ = tx.try_send(message);
        }
        if state.closed {
            // A closed session's stream ends at once.
            return (id, rx);
        }
        state.get = Some((id, tx));
        (id, rx)
    }

    pub fn close_stream(&self, id: u64) {
        let mut state = self.state.lock();
        if state.get.as_ref().is_some_and(|(g, _)| *g == id) {
            state.get = None;
        }
    }

    fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.get = None;
        state.posts.clear();
        state.waiters.clear();
    }

    /// Routes one client-bound message.
    pub fn deliver(&self, message: ToClient) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        if state.legacy {
            return state.send_to_stream(message);
        }
        let token = match &message.route {
            Route::Answer { id_key, .. } => {
                // An error with id null answers a message that could not be read: it belongs
                // to the newest POST.
                let target = if id_key == "null" {
                    state.posts.last().map(|p| p.id)
                } else {
                    state.waiters.remove(id_key)
                };
                match target.and_then(|post| state.posts.iter().find(|p| p.id == post)) {
                    Some(post) => {
                        if post.tx.try_send(message).is_err() {
                            tracing::warn!(
                                "a client is not reading its POST stream; dropped an answer"
                            );
                        }
                    }
                    None => {
                        tracing::debug!(id = %id_key, "dropped an answer nobody is waiting for")
                    }
                }
                return;
            }
            Route::Progress(token) => Some(token),
            Route::Other => None,
        };
        let by_token = token.and_then(|t| {
            state
                .posts
                .iter()
                .rposition(|p| p.progress_tokens.contains(t))
        });
        let index = by_token.or_else(|| state.posts.iter().rposition(|p| p.can_stream));
        if let Some(index) = index {
            match state.posts[index].tx.try_send(message) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(message)
                    | mpsc::error::TrySendError::Closed(message),
                ) => return state.send_to_stream(message),
            }
        }
        state.send_to_stream(message);
    }
}

impl OutState {
    fn send_to_stream(&mut self, message: ToClient) {
        if let Some((_, tx)) = &self.get {
            match tx.try_send(message) {
                Ok(()) => return,
                // A stream its client does not read is ended (the client reconnects and
                // gets the backlog); one that is gone, too.
                Err(
                    mpsc::error::TrySendError::Full(message)
                    | mpsc::error::TrySendError::Closed(message),
                ) => {
                    self.get = None;
                    self.backlog.push_back(message);
                }
            }
        } else {
            self.backlog.push_back(message);
        }
        if self.backlog.len() > BACKLOG_LIMIT {
            self.backlog.pop_front();
            tracing::warn!("a client is not reading its event stream; dropped its oldest message");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn notification(n: usize) -> String {
        format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"n":{n}}}}}"#)
    }

    #[test]
    fn a_client_that_does_not_read_its_stream_costs_bounded_memory() {
        let out = Outbound::new(false);
        let (_, mut stream) = out.open_stream();
        for n in 0..(STREAM_DEPTH + BACKLOG_LIMIT + 500) {
            out.deliver(ToClient::notice(notification(n)));
        }
        // The stream holds at most its depth; it was ended when full, and what came after
        // went to the bounded backlog (oldest dropped) for the client's next stream.
        let mut held = 0;
        while stream.try_recv().is_ok() {
            held += 1;
        }
        assert_eq!(held, STREAM_DEPTH);
        assert!(out.state.lock().backlog.len() <= BACKLOG_LIMIT);
        assert!(out.state.lock().get.is_none());
        // A new stream gets the backlog.
        let (_, mut next) = out.open_stream();
        assert!(next.try_recv().is_ok());
    }

    #[test]
    fn an_answer_for_a_post_that_does_not_read_is_dropped_not_queued() {
        let out = Outbound::new(false);
        let expected: Vec<Expected> = (0..STREAM_DEPTH + 10)
            .map(|i| Expected {
                id_key: i.to_string(),
                progress_token: None,
            })
            .collect();
        let (_, mut post) = out.open_post(&expected, true).unwrap();
        for i in 0..STREAM_DEPTH + 10 {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{i},"result":{{}}}}"#);
            let id = serde_json::value::RawValue::from_string(i.to_string()).unwrap();
            out.deliver(ToClient::answer(text, Some(&id), None));
        }
        let mut held = 0;
        while post.try_recv().is_ok() {
            held += 1;
        }
        assert_eq!(held, STREAM_DEPTH);
    }
}
