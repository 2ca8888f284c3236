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

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bridge::Bridge;

/// Accepts IMAP connections until `shutdown` turns true; each connection runs in its own task.
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
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        session::run(bridge, tcp, peer, shutdown).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "IMAP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
