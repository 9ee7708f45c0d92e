//! The servers of a gateway config, shared by every client session's aggregator: what a new
//! session starts, and what a changed config adds to and removes from the live ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use super::merge::Listing;
use super::{Aggregator, AggregatorOptions, ClientNames, MemberSpec, SessionShape, Sessionless};
use crate::gateway::Gateway;

pub struct Servers {
    members: RwLock<Vec<MemberSpec>>,
    pub options: AggregatorOptions,
    /// `tool_names: bare_when_unique`.
    bare_when_unique: AtomicBool,
    /// Every aggregator serving a client now, told of changes to the server list.
    live: Mutex<Vec<Live>>,
}

/// A client session's aggregator, and the one server it serves alone (`/mcp/<server>`).
struct Live {
    aggregator: Weak<Aggregator>,
    only: Option<String>,
}

/// Whether a session of every server (`None`) or of one serves the server `name`.
fn serves(only: Option<&str>, name: &str) -> bool {
    only.is_none_or(|only| only == name)
}

impl Servers {
    pub fn new(
        members: Vec<MemberSpec>,
        options: AggregatorOptions,
        bare_when_unique: bool,
    ) -> Servers {
        Servers {
            members: RwLock::new(members),
            options,
            bare_when_unique: AtomicBool::new(bare_when_unique),
            live: Mutex::new(Vec::new()),
        }
    }

    /// The servers, in config order (only the one named, when `only` names one).
    pub fn members(&self, only: Option<&str>) -> Vec<MemberSpec> {
        let members = self.members.read();
        let wanted = |m: &&MemberSpec| serves(only, &m.name);
        members.iter().filter(wanted).cloned().collect()
    }

    /// Whether the config has a server of this name.
    pub fn has(&self, name: &str) -> bool {
        self.members.read().iter().any(|m| m.name == name)
    }

    /// How many child processes one session's aggregator starts.
    pub fn processes(&self, only: Option<&str>) -> usize {
        self.members(only)
            .iter()
            .filter(|m| matches!(m.target, crate::http::UpstreamTarget::Command(_)))
            .count()
    }

    /// The names a new client session uses: the aggregated view's (`tool_names`), or one
    /// server's own.
    pub fn client_names(&self, only: Option<&str>) -> Arc<ClientNames> {
        names(only, self.bare_when_unique.load(Ordering::Relaxed))
    }

    /// The names a single 2026-07-28 request uses: it has no listing of its own to make a
    /// name unique against, so the aggregated view's names are always prefixed.
    pub fn sessionless_names(&self, only: Option<&str>) -> Arc<ClientNames> {
        names(only, false)
    }

    /// An aggregator for one client session (of every server, or of `shape.only`), told of
    /// later changes to the list.
    pub(crate) fn aggregator(
        &self,
        front: Arc<Gateway>,
        identity: Option<String>,
        shape: SessionShape,
    ) -> Arc<Aggregator> {
        let members = self.members(shape.only.as_deref());
        let only = shape.only.clone();
        let aggregator = Aggregator::new(front, members, self.options_for(identity), shape);
        let mut live = self.live.lock();
        live.retain(|l| l.aggregator.strong_count() > 0);
        live.push(Live {
            aggregator: Arc::downgrade(&aggregator),
            only,
        });
        aggregator
    }

    /// An aggregator for a single request of the 2026-07-28 era (of every server, of
    /// `only`, or of `route_to` alone: the server a request's `<server>__` name points at,
    /// the only one it needs started). It serves one request, so a changed config is not
    /// its concern.
    pub(crate) fn sessionless_aggregator(
        &self,
        front: Arc<Gateway>,
        identity: Option<String>,
        only: Option<&str>,
        route_to: Option<&str>,
        sessionless: Sessionless,
    ) -> Arc<Aggregator> {
        let shape = SessionShape {
            only: only.map(str::to_string),
            sessionless: Some(sessionless),
            over_http: true,
        };
        let members = self.members(only.or(route_to));
        Aggregator::new(front, members, self.options_for(identity), shape)
    }

    fn options_for(&self, identity: Option<String>) -> AggregatorOptions {
        AggregatorOptions {
            identity,
            ..self.options.clone()
        }
    }

    fn live(&self) -> Vec<(Arc<Aggregator>, Option<String>)> {
        let live = self.live.lock();
        live.iter()
            .filter_map(|l| Some((l.aggregator.upgrade()?, l.only.clone())))
            .collect()
    }

    /// Switches `tool_names: bare_when_unique` on or off, for new sessions and live ones
    /// (whose clients are told to list again).
    pub async fn set_bare_when_unique(&self, on: bool) {
        if self.bare_when_unique.swap(on, Ordering::Relaxed) == on {
            return;
        }
        for (aggregator, only) in self.live() {
            if only.is_none()
                && aggregator.client_names_changed(|names| names.set_bare_when_unique(on))
            {
                aggregator.notify_changed(Listing::Tools).await;
                aggregator.notify_changed(Listing::Prompts).await;
            }
        }
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
        for (aggregator, only) in self.live() {
            let only = only.as_deref();
            for name in removed.iter().filter(|n| serves(only, n)) {
                aggregator.remove(name).await;
            }
            for spec in added.iter().filter(|s| serves(only, &s.name)) {
                aggregator.add(spec.clone()).await;
            }
        }
        (removed, added.into_iter().map(|s| s.name).collect())
    }
}

/// One server's own names, or the aggregated view's.
fn names(only: Option<&str>, bare_when_unique: bool) -> Arc<ClientNames> {
    Arc::new(match only {
        Some(server) => ClientNames::one_server(server),
        None => ClientNames::aggregated(bare_when_unique),
    })
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members = self.members.read();
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("Servers").field("members", &names).finish()
    }
}

/// Keeps one client session's aggregator (started when the session opened) until the session
/// ends, then stops its servers. (The session's front gateway hands the aggregator each
/// message itself, through `Aggregator::front_handler`, with no task in between.)
pub(crate) async fn serve_session(
    aggregator: Arc<Aggregator>,
    stop: Arc<tokio::sync::Notify>,
) -> String {
    stop.notified().await;
    aggregator.stop().await;
    "The session ended".to_string()
}
