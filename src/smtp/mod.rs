//! The SMTP submission front (RFC 6409): EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT. Commands are parsed by smtp-proto; a `250` after DATA means the message is
//! durably queued in the outbox (ARCHITECTURE invariant 3).

mod session;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bridge::Bridge;

pub async fn serve(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let bridge = bridge.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session::run(bridge, tcp, peer).await {
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
