//! The IMAP front: a session state machine over imap-next, one file per command family.
//!
//! Sessions read from the store and ask the sync engine for what is missing (a body not
//! fetched yet); writes go through the sync engine, which answers only once Graph accepted.

mod commands;
pub mod fetch;
pub mod names;
pub mod search;
mod selected;
mod session;
pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use imap_next::stream::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::bridge::Bridge;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS acceptor of the IMAP servers; None (and a logged error) when no certificate can be
/// had, in which case STARTTLS is not offered.
fn acceptor(bridge: &Bridge) -> Option<TlsAcceptor> {
    match crate::tls::acceptor(&bridge.config.tls, &bridge.config.data_dir) {
        Ok(acceptor) => Some(acceptor),
        Err(e) => {
            tracing::error!(error = %e, "no TLS for IMAP");
            None
        }
    }
}

/// The plain IMAP port, with STARTTLS.
pub async fn serve(bridge: Arc<Bridge>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let tls = acceptor(&bridge);
    accept_loop(bridge, listener, tls, false, shutdown).await
}

/// The implicit TLS port (imaps): TLS from the first byte.
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

/// Accepts connections until `shutdown` turns true; each connection runs in its own task.
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
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let stream = match (&tls, implicit) {
                            (Some(acceptor), true) => match handshake(acceptor, tcp).await {
                                Some(stream) => stream,
                                None => return,
                            },
                            _ => Stream::insecure(tcp),
                        };
                        session::run(bridge, stream, implicit, tls, peer, shutdown).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "IMAP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// The server side of a TLS handshake, bounded in time; None when it fails.
async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> Option<Stream> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Stream::tls(tokio_rustls::TlsStream::Server(tls))),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "IMAP TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}
