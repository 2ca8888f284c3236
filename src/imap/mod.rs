//! The IMAP front: a session state machine over imap-next, one file per command family.
//!
//! Sessions read from the store and ask the sync engine for what is missing (a body not
//! fetched yet); writes go through the sync engine, which answers only once Graph accepted.

mod commands;
pub mod fetch;
pub mod frontend;
pub mod keywords;
pub mod names;
pub mod search;
mod selected;
mod session;
pub mod throttle;

pub use commands::fetch::compute_item as fetch_item;
pub use selected::clamp_set;

use std::sync::Arc;
use std::time::Duration;

use imap_next::stream::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::bridge::Bridge;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The plain IMAP port, with STARTTLS.
pub async fn serve(bridge: Arc<Bridge>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let tls = crate::listener::tls_acceptor(&bridge, "IMAP");
    accept(bridge, listener, tls, false, shutdown).await
}

/// The implicit TLS port (imaps): TLS from the first byte.
pub async fn serve_implicit_tls(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let Some(tls) = crate::listener::tls_acceptor(&bridge, "IMAP") else {
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
    let sessions_stop = shutdown.clone();
    crate::listener::accept_loop(listener, "IMAP", shutdown, move |tcp, peer| {
        let (bridge, tls, shutdown) = (bridge.clone(), tls.clone(), sessions_stop.clone());
        async move {
            let stream = match (&tls, implicit) {
                (Some(acceptor), true) => match handshake(acceptor, tcp).await {
                    Some(stream) => stream,
                    None => return,
                },
                _ => Stream::insecure(tcp),
            };
            session::run(bridge, stream, implicit, tls, peer, shutdown).await;
        }
    })
    .await
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
