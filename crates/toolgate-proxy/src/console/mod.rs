//! The web console (docs/CONSOLE.md): server-rendered pages on the admin listener that show
//! what the gateway decides, which tools its servers have and what they are, what waits
//! for a person, the policy in force and the counters.
//!
//! | path | page |
//! |---|---|
//! | `/` | Overview: decisions over the last hour, deny rate, top deny rules, the gateway's added latency, servers |
//! | `/live` | Live: decisions as they are made (server-sent events from `/console/events`) |
//! | `/tools`, `/tools/{server}/{tool}` | the tool catalogue, and a page per tool |
//! | `/approvals` | pending requests, approve and deny, history |
//! | `/policy` | each policy file, its revision, the last reload and its errors |
//! | `/counters` | the counters calls reserved, against their limits |
//!
//! What the pages show is learnt from the audit sink's events ([`ConsoleData`]: the same
//! events the log and the metrics see) and read from the gateways themselves (policies,
//! counter stores, approvals). Signing in is `/?token=<admin token>` or the form every page
//! shows without a login (`logins.rs`). Every asset is compiled into the binary.

mod assets;
pub mod catalogue;
pub mod feed;
mod html;
pub mod logins;
mod pages;
pub(crate) mod routes;

use std::sync::Arc;

use crate::aggregate::Servers;
use crate::gateway::Gateway;

/// What the console learns from the audit sink: recent decisions and the tool catalogue.
#[derive(Default)]
pub struct ConsoleData {
    pub feed: feed::Feed,
    pub catalogue: catalogue::Catalogue,
}

/// The gateways the console shows.
#[derive(Clone)]
pub enum Directory {
    /// A gateway of one server.
    One(Arc<Gateway>),
    /// A gateway config: the gateway-wide policy's gateway, and the servers'.
    Many {
        front: Arc<Gateway>,
        servers: Arc<Servers>,
    },
}

/// One gateway as the console names it.
pub struct Served {
    /// The server behind a gateway config; empty for a gateway of one server, and for the
    /// gateway-wide policy.
    pub server: String,
    pub gateway: Arc<Gateway>,
}

impl Served {
    /// How pages name it.
    pub fn label(&self) -> &str {
        if self.server.is_empty() {
            "(gateway)"
        } else {
            &self.server
        }
    }
}

impl Directory {
    /// Every gateway, the gateway-wide one first (when it has a policy of its own).
    pub fn gateways(&self) -> Vec<Served> {
        match self {
            Directory::One(gateway) => vec![Served {
                server: String::new(),
                gateway: Arc::clone(gateway),
            }],
            Directory::Many { front, servers } => {
                let front = front.policy_file().is_some().then(|| Served {
                    server: String::new(),
                    gateway: Arc::clone(front),
                });
                let members = servers.members(None).into_iter().map(|m| Served {
                    server: m.name,
                    gateway: m.gateway,
                });
                front.into_iter().chain(members).collect()
            }
        }
    }

    /// The gateway that decides the calls of `server` (empty: the only one, or the
    /// gateway-wide one).
    pub fn gateway_of(&self, server: &str) -> Option<Arc<Gateway>> {
        match self {
            Directory::One(gateway) => server.is_empty().then(|| Arc::clone(gateway)),
            Directory::Many { front, .. } if server.is_empty() => Some(Arc::clone(front)),
            Directory::Many { servers, .. } => servers
                .members(Some(server))
                .into_iter()
                .next()
                .map(|m| m.gateway),
        }
    }

    /// Whether there are servers to tell apart.
    pub fn is_many(&self) -> bool {
        matches!(self, Directory::Many { .. })
    }
}

/// Everything the console's pages need.
pub struct Console {
    pub data: Arc<ConsoleData>,
    pub directory: Directory,
    pub logins: logins::Logins,
}

impl Console {
    pub fn new(data: Arc<ConsoleData>, directory: Directory) -> Console {
        Console {
            data,
            directory,
            logins: logins::Logins::default(),
        }
    }
}
