//! The connection to Redis: made on first use, remade by itself, and never waited on for
//! longer than the DSN's timeout.
//!
//! Nothing connects when the store is opened, so a gateway starts while Redis is down and
//! its calls get [`StoreError::Unavailable`] until Redis answers. A single node is reached
//! through redis-rs's `ConnectionManager` (one multiplexed connection, replaced after an I/O
//! error; the next operation tries again); a cluster through its async `ClusterConnection`,
//! created on first success and then left to follow the cluster's topology itself. Every
//! operation is bounded twice: by the connection's own connect and response timeouts, and by
//! a timer around the whole operation, so no call waits on Redis longer than the timeout.
//!
//! Errors are described with the redacted DSN, and the password is scrubbed from whatever
//! text the driver produced, so no message can carry it.

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    ScriptInvocation, Value,
};
use tokio::sync::{Mutex, OnceCell};

use super::dsn::RedisDsn;
use crate::store::StoreError;

/// How much longer than the timeout an answer is still waited for by a task that can use it
/// after its caller gave up (a reservation that arrives late is rolled back, not leaked).
pub(crate) const LINGER: Duration = Duration::from_secs(5);

pub(crate) struct Link {
    /// The DSN without its password, for messages.
    target: String,
    /// Scrubbed from every message.
    password: Option<String>,
    timeout: Duration,
    kind: Kind,
}

enum Kind {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
        manager: OnceCell<ConnectionManager>,
    },
    Cluster {
        client: ClusterClient,
        connection: RwLock<Option<ClusterConnection>>,
        /// One connection attempt at a time; the others wait for its outcome.
        connecting: Mutex<()>,
    },
}

impl Link {
    /// Prepares the connection without making it. Fails only on a configuration the driver
    /// refuses outright.
    pub(crate) fn new(dsn: &RedisDsn) -> Result<Link, StoreError> {
        let target = dsn.to_string();
        let password = dsn.password.as_ref().map(|p| p.0.clone());
        let refuse = |e: RedisError| {
            StoreError::Unavailable(format!(
                "redis {target}: {}",
                scrub(&e.to_string(), password.as_deref())
            ))
        };
        if dsn.tls {
            install_crypto_provider();
        }
        let mut settings = RedisConnectionInfo::default().set_db(dsn.db);
        if let Some(user) = &dsn.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &dsn.password {
            settings = settings.set_password(&password.0);
        }
        let infos = dsn
            .nodes
            .iter()
            .map(|(host, port)| {
                let addr = if dsn.tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                addr.into_connection_info()
                    .map(|info| info.set_redis_settings(settings.clone()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(refuse)?;
        let kind = if dsn.cluster {
            let client = ClusterClient::builder(infos)
                .connection_timeout(dsn.timeout)
                .response_timeout(dsn.timeout + LINGER)
                .build()
                .map_err(refuse)?;
            Kind::Cluster {
                client,
                connection: RwLock::new(None),
                connecting: Mutex::new(()),
            }
        } else {
            let info = infos.into_iter().next().ok_or_else(|| {
                StoreError::Unavailable(format!("redis {target}: no host to connect to"))
            })?;
            let client = redis::Client::open(info).map_err(refuse)?;
            // No retries inside one connection attempt: an operation fails fast while Redis
            // is down (the fail mode decides), and the next operation tries again.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(dsn.timeout))
                .set_response_timeout(Some(dsn.timeout + LINGER))
                .set_number_of_retries(0);
            Kind::Single {
                client,
                config,
                manager: OnceCell::new(),
            }
        };
        Ok(Link {
            target,
            password,
            timeout: dsn.timeout,
            kind,
        })
    }

    /// The DSN this link reaches, without its password.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// How long a caller waits for an operation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT), within the timeout.
    pub(crate) async fn eval(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<Value, StoreError> {
        self.eval_within(invocation, self.timeout).await
    }

    /// Runs a script, waiting for its answer up to `limit` (at most the timeout plus
    /// [`LINGER`]).
    pub(crate) async fn eval_within(
        &self,
        invocation: &ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<Value, StoreError> {
        let run = async {
            match &self.kind {
                Kind::Single {
                    client,
                    config,
                    manager,
                } => {
                    let mut connection = manager
                        .get_or_try_init(|| async {
                            ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        })
                        .await?
                        .clone();
                    invocation.invoke_async(&mut connection).await
                }
                Kind::Cluster {
                    client,
                    connection,
                    connecting,
                } => {
                    let mut connection = self.cluster(client, connection, connecting).await?;
                    invocation.invoke_async(&mut connection).await
                }
            }
        };
        match tokio::time::timeout(limit, run).await {
            Ok(result) => result.map_err(|e| self.error(&e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {}: no answer within {} ms",
                self.target,
                limit.as_millis()
            ))),
        }
    }

    async fn cluster(
        &self,
        client: &ClusterClient,
        slot: &RwLock<Option<ClusterConnection>>,
        connecting: &Mutex<()>,
    ) -> Result<ClusterConnection, RedisError> {
        if let Some(connection) = read(slot) {
            return Ok(connection);
        }
        let _turn = connecting.lock().await;
        if let Some(connection) = read(slot) {
            return Ok(connection);
        }
        let connection = client.get_async_connection().await?;
        *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    fn error(&self, error: &RedisError) -> StoreError {
        let text = scrub(&error.to_string(), self.password.as_deref());
        let message = format!("redis {}: {text}", self.target);
        if is_script_bug(error) {
            StoreError::Backend(message)
        } else {
            StoreError::Unavailable(message)
        }
    }
}

fn read(slot: &RwLock<Option<ClusterConnection>>) -> Option<ClusterConnection> {
    slot.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// An error in toolgate's own scripts or in reading their answer: a bug, not an outage.
/// Everything else (refused, timed out, dropped, loading, out of memory, read-only replica,
/// cluster down, authentication) is the backend being unavailable.
fn is_script_bug(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => true,
        ErrorKind::Server(_) => error
            .detail()
            .is_some_and(|d| d.contains("user_script") || d.contains("Error running script")),
        _ => false,
    }
}

/// Removes every occurrence of the password from a message.
pub(crate) fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// rustls needs a process-wide crypto provider when more than one (or none) is compiled in;
/// install the one every TLS connection of toolgate uses (ring), unless something already
/// did. Idempotent; the proxy calls it too, before building an HTTPS client.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
