//! The SMTP submission front (RFC 6409): EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA,
//! BDAT, RSET, NOOP, QUIT, on the plain port with STARTTLS and on an implicit TLS port
//! (RFC 8314). Commands are parsed by smtp-proto; a `250` after DATA means the message is
//! durably queued in the outbox (ARCHITECTURE invariant 3).

mod conn;
mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::bridge::Bridge;

/// The TLS acceptor of the SMTP servers; None (and a logged error) when no certificate can
/// be had, in which case STARTTLS is not offered.
fn acceptor(bridge: &Bridge) -> Option<TlsAcceptor> {
    match crate::tls::acceptor(&bridge.config.tls, &bridge.config.data_dir) {
        Ok(acceptor) => Some(acceptor),
        Err(e) => {
            tracing::error!(error = %e, "no TLS for SMTP");
            None
        }
    }
}

/// The submission port: plain, with STARTTLS.
pub async fn serve(bridge: Arc<Bridge>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let tls = acceptor(&bridge);
    accept_loop(bridge, listener, tls, false, shutdown).await
}

/// The implicit TLS port (submissions): TLS from the first byte.
pub async fn serve_implicit_tls(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let Some(tls) = acceptor(&bridge) else {
        return;
    };
    accept_loop(bridge, listener, Some(tls), true, shutdown).await
}

async fn accept_loop(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    implicit: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let bridge = bridge.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session::run(bridge, tcp, peer, tls, implicit).await {
                            tracing::debug!(%peer, error = %e, "SMTP connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SMTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
