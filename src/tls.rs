//! TLS set-up. rustls is built with ring as its only crypto provider, installed once per
//! process before any TLS client or server is made.
//!
//! The servers (SMTP here, IMAP alike) present either the certificate and key named in the
//! configuration or a self-signed certificate made at first start and kept in
//! `<data_dir>/tls/`, so that a restart presents the same certificate and clients that pinned
//! it keep working.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Installs ring as the process-wide crypto provider; later calls do nothing.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("tls.cert and tls.key must be given together")]
    HalfConfigured,
    #[error("the certificate and key do not make a TLS server: {0}")]
    Rustls(#[from] rustls::Error),
}

static SELF_SIGNED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the self-signed certificate lives.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A TLS acceptor for any of the bridge's servers.
pub fn acceptor(config: &TlsConfig, data_dir: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(server_config(config, data_dir)?))
}

/// The rustls server configuration: configured certificate, or the self-signed one.
pub fn server_config(
    config: &TlsConfig,
    data_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    install_crypto_provider();
    let (cert, key) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => {
            let (cert, key) = self_signed_paths(data_dir);
            // Servers start together: one makes the certificate, the others then read it.
            let _made = SELF_SIGNED.lock().unwrap_or_else(|p| p.into_inner());
            if !cert.exists() || !key.exists() {
                make_self_signed(&cert, &key, &config.hostnames)?;
            }
            (cert, key)
        }
        _ => return Err(TlsError::HalfConfigured),
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| TlsError::Read(cert.clone(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(cert.clone(), e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::Read(key, e.to_string()))?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(server))
}

fn make_self_signed(cert: &Path, key: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let names = if hostnames.is_empty() {
        vec!["localhost".to_string()]
    } else {
        hostnames.to_vec()
    };
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::Write(dir.to_path_buf(), e))?;
    }
    // The key first: a certificate without its key would be unusable after a crash.
    crate::secrets::write_private_file(key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError::Write(key.to_path_buf(), e))?;
    crate::secrets::write_private_file(cert, made.cert.pem().as_bytes())
        .map_err(|e| TlsError::Write(cert.to_path_buf(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TlsConfig::default();
        server_config(&config, dir.path()).expect("first start makes a certificate");
        let (cert, _) = self_signed_paths(dir.path());
        let first = std::fs::read(&cert).expect("cert written");
        server_config(&config, dir.path()).expect("second start reuses it");
        assert_eq!(std::fs::read(&cert).expect("cert"), first);
    }

    #[test]
    fn half_a_configuration_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TlsConfig {
            cert: Some(dir.path().join("c.pem")),
            ..TlsConfig::default()
        };
        assert!(matches!(
            server_config(&config, dir.path()),
            Err(TlsError::HalfConfigured)
        ));
    }
}
