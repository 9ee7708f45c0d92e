//! The crypto provider every TLS connection toolgate makes uses (HTTPS upstreams, approval
//! webhooks, `rediss://`): ring, installed process-wide before the first client is built.
//! The state crate owns it (its Redis link needs it first); this is where the proxy calls it.

pub use toolgate_state::install_crypto_provider;
