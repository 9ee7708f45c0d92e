//! The servers of a gateway config, shared by every client session's aggregator: what a new
//! session starts, and what a changed config adds to and removes from the live ones.

use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::{Aggregator, AggregatorOptions, MemberSpec};
use crate::gateway::Gateway;
use crate::message::ToServer;
use crate::session::Session;

pub struct Servers {
    members: RwLock<Vec<MemberSpec>>,
    pub options: AggregatorOptions,
    /// Every aggregator serving a client now, told of changes to the server list.
    live: Mutex<Vec<Weak<Aggregator>>>,
}

impl Servers {
    pub fn new(members: Vec<MemberSpec>, options: AggregatorOptions) -> Servers {
        Servers {
            members: RwLock::new(members),
            options,
            live: Mutex::new(Vec::new()),
        }
    }

    /// The servers, in config order.
    pub fn members(&self) -> Vec<MemberSpec> {
        self.members.read().clone()
    }

    /// How many child processes one session's aggregator starts.
    pub fn processes(&self) -> usize {
        self.members
            .read()
            .iter()
            .filter(|m| matches!(m.target, crate::http::UpstreamTarget::Command(_)))
            .count()
    }

    /// An aggregator for one client session, told of later changes to the list.
    pub(crate) fn aggregator(
        &self,
        front: Arc<Gateway>,
        identity: Option<String>,
    ) -> Arc<Aggregator> {
        let options = AggregatorOptions {
            identity,
            ..self.options.clone()
        };
        let aggregator = Aggregator::new(front, self.members(), options);
        let mut live = self.live.lock();
        live.retain(|a| a.strong_count() > 0);
        live.push(Arc::downgrade(&aggregator));
        aggregator
    }

    /// Puts a new server list in force: a server whose name is gone, or whose config
    /// changed (`MemberSpec::config`), is stopped and removed from every live session; a new
    /// or changed one is started in each. Servers that did not change are left running.
    /// Returns the names removed and added.
    pub async fn replace(&self, new: Vec<MemberSpec>) -> (Vec<String>, Vec<String>) {
        let old = std::mem::replace(&mut *self.members.write(), new.clone());
        let same = |a: &MemberSpec, b: &MemberSpec| a.name == b.name && a.config == b.config;
        let removed: Vec<String> = old
            .iter()
            .filter(|o| !new.iter().any(|n| same(o, n)))
            .map(|o| o.name.clone())
            .collect();
        let added: Vec<MemberSpec> = new
            .into_iter()
            .filter(|n| !old.iter().any(|o| same(o, n)))
            .collect();
        let live: Vec<Arc<Aggregator>> =
            self.live.lock().iter().filter_map(Weak::upgrade).collect();
        for aggregator in live {
            for name in &removed {
                aggregator.remove(name).await;
            }
            for spec in &added {
                aggregator.add(spec.clone()).await;
            }
        }
        (removed, added.into_iter().map(|s| s.name).collect())
    }
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.members.read().iter().map(|m| m.name.clone()).collect();
        f.debug_struct("Servers").field("members", &names).finish()
    }
}

/// Serves one client session of an HTTP listener: what its front gateway sends upstream
/// arrives on `to_server` and goes to the servers, until the session ends.
pub(crate) async fn serve_session(
    servers: &Servers,
    front: Arc<Gateway>,
    session: Arc<Session>,
    mut to_server: tokio::sync::mpsc::Receiver<ToServer>,
    stop: Arc<tokio::sync::Notify>,
) -> String {
    let aggregator = servers.aggregator(front, session.identity.clone());
    aggregator.start(session);
    loop {
        tokio::select! {
            message = to_server.recv() => match message {
                Some(message) => aggregator.on_client_message(message).await,
                None => break,
            },
            _ = stop.notified() => break,
        }
    }
    aggregator.stop().await;
    "The session ended".to_string()
}
