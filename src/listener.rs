//! What the IMAP and SMTP servers share around their sessions: the TLS acceptor made from the
//! configuration, and the accept loop that spawns one task per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::bridge::Bridge;

/// The TLS acceptor of a server; None (and a logged error) when no certificate can be had,
/// in which case the server offers no TLS.
pub fn tls_acceptor(bridge: &Bridge, server: &str) -> Option<TlsAcceptor> {
    match crate::tls::acceptor(&bridge.config.tls, &bridge.config.data_dir) {
        Ok(acceptor) => Some(acceptor),
        Err(e) => {
            tracing::error!(error = %e, "no TLS for {server}");
            None
        }
    }
}

/// Accepts connections until `shutdown` turns true, running `session` for each in its own
/// task. A failed accept (out of file descriptors, say) pauses briefly instead of spinning.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    server: &'static str,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(session(tcp, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{server} accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
