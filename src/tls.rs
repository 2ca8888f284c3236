//! TLS set-up. rustls is built with ring as its only crypto provider, installed once per
//! process before any TLS client or server is made.

/// Installs ring as the process-wide crypto provider; later calls do nothing.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
