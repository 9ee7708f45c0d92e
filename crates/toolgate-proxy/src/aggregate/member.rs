//! One server behind the aggregator: its own gateway (its policy, under its own counters and
//! pins), the session the aggregator holds to it, and the task that starts it, watches it and
//! starts it again when it fails.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use toolgate_policy::gateway_config::Restart;

use super::Aggregator;
use crate::gateway::Gateway;
use crate::http::upstream::{LinkSpec, UpstreamLink};
use crate::http::UpstreamTarget;
use crate::message::ToClient;
use crate::session::{MessageHandler, Outbox, Session, CHANNEL_DEPTH};
use crate::stdio::line_sink::LineSink;
use crate::stdio::reader_thread::ReaderThread;
use crate::stdio::{child, exit_code};

/// What the aggregator is given for each server.
#[derive(Clone)]
pub struct MemberSpec {
    pub name: String,
    /// What the server's config said (command or url, restart, policy file): a config
    /// reload restarts a server whose description changed, and leaves the others running.
    pub config: String,
    /// The server's gateway: its policy, counters (under a prefix of its own) and audit
    /// lines (with `server`).
    pub gateway: Arc<Gateway>,
    pub target: UpstreamTarget,
    pub restart: Restart,
}

pub(super) struct Member {
    pub spec: MemberSpec,
    /// Set when the server is to stop for good (the session ended, or the config dropped
    /// it): its supervisor stops it and does not start it again.
    pub stop: watch::Sender<bool>,
    pub live: Mutex<Option<Live>>,
    /// Why the server is not available, while it is not.
    pub down_reason: Mutex<String>,
}

/// A running connection to the server.
pub(super) struct Live {
    pub session: Arc<Session>,
    /// Whether it answered `initialize`: only then are requests routed to it.
    pub ready: bool,
    /// Its `initialize` result.
    pub initialized: Option<Value>,
    /// Whether it has been sent `initialize` (the client's, or the aggregator's own on its
    /// behalf): it is sent once.
    pub introduced: bool,
    /// Whether it answered `initialize` with an error.
    pub refused: bool,
}

impl Member {
    pub fn new(spec: MemberSpec) -> Member {
        Member {
            spec,
            stop: watch::channel(false).0,
            live: Mutex::new(None),
            down_reason: Mutex::new("it has not started yet".to_string()),
        }
    }

    /// The session to a server that answered `initialize`.
    pub fn ready_session(&self) -> Option<Arc<Session>> {
        let live = self.live.lock();
        live.as_ref()
            .filter(|l| l.ready)
            .map(|l| Arc::clone(&l.session))
    }

    /// The session to a started server, ready or not.
    pub fn started_session(&self) -> Option<Arc<Session>> {
        self.live.lock().as_ref().map(|l| Arc::clone(&l.session))
    }

    /// The session to a started server not yet sent `initialize`, marked as sent it now.
    pub fn introduce(&self) -> Option<Arc<Session>> {
        let mut live = self.live.lock();
        let live = live.as_mut().filter(|l| !l.introduced)?;
        live.introduced = true;
        Some(Arc::clone(&live.session))
    }

    /// Whether the server is ready, refused `initialize`, or is not running: nothing more
    /// will come of its start.
    pub fn settled(&self) -> bool {
        self.live
            .lock()
            .as_ref()
            .is_none_or(|l| l.ready || l.refused)
    }

    /// Whether the server, as initialized, has this capability.
    pub fn has_capability(&self, key: &str) -> bool {
        self.live.lock().as_ref().is_some_and(|l| {
            l.ready
                && l.initialized
                    .as_ref()
                    .and_then(|r| r.get("capabilities")?.get(key))
                    .is_some()
        })
    }
}

/// Delivers what a server's gateway sends "to the client" to the aggregator.
struct MemberReturn {
    aggregator: Weak<Aggregator>,
    index: usize,
}

impl MessageHandler<ToClient> for MemberReturn {
    fn handle(&self, message: ToClient) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.aggregator.upgrade() {
                Some(aggregator) => {
                    aggregator.on_server_message(self.index, message).await;
                    true
                }
                None => false,
            }
        })
    }
}

/// Shortest and longest wait before a failed server is started again.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A server that ran this long before failing starts again without waiting.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The wait before the `failures`-th consecutive restart: doubling from half a second,
/// at most 30 seconds.
pub(super) fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// How the aggregator reaches a started server.
pub(super) enum Connection {
    /// A stdio server: its stdin a sink the pipeline writes to directly, its stdout read
    /// where the client's answers are written from (see `StdoutReader`), so a call crosses
    /// no thread hand-off on its way there or back.
    Piped {
        child: tokio::process::Child,
        stdin: Arc<LineSink>,
        reader: StdoutReader,
    },
    /// An HTTP server, through the listener's upstream link.
    Link(UpstreamLink),
}

/// What reads a stdio server's stdout and runs the pipeline on each message.
pub(super) enum StdoutReader {
    /// A thread of its own, as the stdio proxy reads one: behind a stdio client, the answer
    /// then goes from that thread straight into the client's stdout.
    Thread(ReaderThread),
    /// A task of the runtime: behind the HTTP listener, the answer goes to the POST waiting
    /// for it, which runs on the runtime. Read on a thread, each answer would wake the
    /// thread and then a runtime thread; on a task, the reactor's wake-up is the only one.
    Task(tokio::task::JoinHandle<()>),
}

impl StdoutReader {
    /// Waits, at most `limit`, for the server's last words to be read, then reads no more.
    async fn finish(self, limit: Duration) {
        match self {
            StdoutReader::Thread(mut thread) => {
                let _ = tokio::time::timeout(limit, &mut thread.done).await;
                thread.stop();
            }
            StdoutReader::Task(mut task) => {
                if tokio::time::timeout(limit, &mut task).await.is_err() {
                    task.abort();
                }
            }
        }
    }
}

/// A started server: its connection, its session and its call-expiry sweeper.
pub(super) struct Running {
    connection: Connection,
    session: Arc<Session>,
    sweeper: tokio::task::JoinHandle<()>,
}

pub(super) type Started = std::io::Result<Running>;

/// Watches the server `first` started, and starts it again as its `restart` says when it
/// ends, until `stop` is set.
pub(super) async fn supervise(
    aggregator: Arc<Aggregator>,
    index: usize,
    member: Arc<Member>,
    first: Started,
) {
    let mut stop = member.stop.subscribe();
    let mut failures = 0u32;
    let mut next = Some(first);
    loop {
        let started = Instant::now();
        let attempt = match next.take() {
            Some(first) => first,
            None => start(&aggregator, index, &member),
        };
        let restart = match attempt {
            Ok(running) => {
                aggregator.member_started(index).await;
                let ended = run_until_ended(&aggregator, index, &member, running, &mut stop);
                let Some(reason) = ended.await else {
                    return;
                };
                if started.elapsed() >= HEALTHY_RUN {
                    failures = 0;
                }
                match member.spec.restart {
                    Restart::Never => false,
                    Restart::Always => true,
                    Restart::OnFailure => !reason.ends_with("(code 0)"),
                }
            }
            Err(e) => {
                aggregator.member_down(index, &e.to_string()).await;
                member.spec.restart != Restart::Never
            }
        };
        if !restart {
            tracing::warn!(server = %member.spec.name, "not restarting the server");
            return;
        }
        failures += 1;
        let wait = backoff(failures);
        tracing::info!(
            server = %member.spec.name,
            wait_ms = wait.as_millis() as u64,
            "restarting the server"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Serves the server until it ends (returns why, once it is marked down) or `stop` is set
/// (returns `None`, once it is stopped: stdin closed → SIGTERM → SIGKILL, or DELETE).
async fn run_until_ended(
    aggregator: &Aggregator,
    index: usize,
    member: &Member,
    running: Running,
    stop: &mut watch::Receiver<bool>,
) -> Option<String> {
    let Running {
        connection,
        session,
        sweeper,
    } = running;
    let grace = aggregator.options.shutdown_grace;
    let gateway = &member.spec.gateway;
    let reason = match connection {
        Connection::Piped {
            mut child,
            stdin,
            reader,
        } => {
            let exited = tokio::select! {
                status = child.wait() => Some(match status {
                    Ok(status) => format!("The server exited (code {})", exit_code(status)),
                    Err(e) => format!("The server could not be watched: {e}"),
                }),
                _ = stop.wait_for(|s| *s) => None,
            };
            if exited.is_none() {
                stdin.close();
                let _ = child::stop(&mut child, grace).await;
            }
            // Its last words first, then errors for whatever it left unanswered.
            reader.finish(Duration::from_secs(2)).await;
            stdin.close();
            gateway
                .upstream_gone(&session, "The server exited before answering")
                .await;
            exited
        }
        Connection::Link(link) => {
            let mut watcher = link.watcher();
            let reason = tokio::select! {
                reason = watcher.ended() => Some(reason),
                _ = stop.wait_for(|s| *s) => None,
            };
            link.close(grace + Duration::from_secs(5)).await;
            reason
        }
    };
    sweeper.abort();
    if let Some(reason) = &reason {
        aggregator.member_down(index, reason).await;
    }
    reason
}

/// Opens a session to the server through its gateway.
pub(super) fn start(aggregator: &Arc<Aggregator>, index: usize, member: &Member) -> Started {
    let back: Outbox<ToClient> = Outbox::Handler(Arc::new(MemberReturn {
        aggregator: Arc::downgrade(aggregator),
        index,
    }));
    let identity = aggregator.options.identity.clone();
    let counter_session = aggregator.counter_session();
    let open = move |to_server| {
        Session::open_counted_with_outboxes(identity, back, to_server, counter_session)
    };
    let gateway = &member.spec.gateway;
    let (session, connection) = match &member.spec.target {
        UpstreamTarget::Command(command) => {
            let (child, stdin, stdout) = crate::stdio::spawn_piped(command)?;
            let session = open(Outbox::Pipe(Arc::clone(&stdin)));
            gateway.register(&session);
            let (gateway, reading) = (Arc::clone(gateway), Arc::clone(&session));
            let max_line_bytes = aggregator.options.max_line_bytes;
            let reader = if aggregator.shape.over_http {
                let task =
                    crate::stdio::spawn_server_reader(gateway, reading, stdout, max_line_bytes);
                StdoutReader::Task(task)
            } else {
                let thread =
                    crate::stdio::read_server_on_thread(gateway, reading, stdout, max_line_bytes)?;
                StdoutReader::Thread(thread)
            };
            let connection = Connection::Piped {
                child,
                stdin,
                reader,
            };
            (session, connection)
        }
        UpstreamTarget::Aggregate(_) => {
            return Err(std::io::Error::other(
                "a server behind a gateway config cannot be another gateway config",
            ))
        }
        UpstreamTarget::Http(_) => {
            let (to_server, server_rx) = mpsc::channel(CHANNEL_DEPTH);
            let session = open(Outbox::Channel(to_server));
            gateway.register(&session);
            let spec = LinkSpec {
                target: member.spec.target.clone(),
                http: None,
                shutdown_grace: aggregator.options.shutdown_grace,
                max_line_bytes: aggregator.options.max_line_bytes,
                child_permit: None,
                sessionless: None,
                end_on_session_loss: false,
                aggregator: None,
            };
            let link =
                UpstreamLink::start(spec, Arc::clone(gateway), Arc::clone(&session), server_rx)?;
            (session, Connection::Link(link))
        }
    };
    let sweeper = gateway.spawn_expiry_sweeper(&session);
    *member.live.lock() = Some(Live {
        session: Arc::clone(&session),
        ready: false,
        initialized: None,
        introduced: false,
        refused: false,
    });
    Ok(Running {
        connection,
        session,
        sweeper,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
