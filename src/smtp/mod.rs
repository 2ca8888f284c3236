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

/// The submission port: plain, with STARTTLS.
pub async fn serve(bridge: Arc<Bridge>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let tls = crate::listener::tls_acceptor(&bridge, "SMTP");
    accept(bridge, listener, tls, false, shutdown).await
}

/// The implicit TLS port (submissions): TLS from the first byte.
pub async fn serve_implicit_tls(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let Some(tls) = crate::listener::tls_acceptor(&bridge, "SMTP") else {
        return;
    };
    accept(bridge, listener, Some(tls), true, shutdown).await
}

async fn accept(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    implicit: bool,
    shutdown: watch::Receiver<bool>,
) {
    crate::listener::accept_loop(listener, "SMTP", shutdown, move |tcp, peer| {
        let (bridge, tls) = (bridge.clone(), tls.clone());
        async move {
            if let Err(e) = session::run(bridge, tcp, peer, tls, implicit).await {
                tracing::debug!(%peer, error = %e, "SMTP connection ended");
            }
        }
    })
    .await
}
