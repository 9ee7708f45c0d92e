//! The crypto provider every TLS connection toolgate makes uses (HTTPS upstreams, approval
//! webhooks; `rediss://` installs the same one): ring, installed process-wide before the
//! first client is built, unless something already installed one.

/// Installs ring as rustls' process-wide provider if there is none yet. Idempotent.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
