//! The outbox worker: sends queued messages through Graph, oldest first. A message stays
//! queued until Graph accepted it (202); a refusal that retrying cannot mend marks it failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::graph::GraphError;
use crate::mailstore::{accounts, outbox as stored, OutboxItem, OutboxState};

/// How long a transiently failed message waits before the next try, at most.
const RETRY_INTERVAL: Duration = Duration::from_secs(30);

pub async fn run(bridge: Arc<Bridge>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = send_queued(&bridge).await {
            tracing::warn!(error = %e, "outbox pass failed");
        }
        tokio::select! {
            _ = bridge.outbox_ready.notified() => {}
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass over the queue.
pub async fn send_queued(bridge: &Bridge) -> Result<(), crate::mailstore::StoreError> {
    let queued = bridge.store.call(|c| stored::queued(c)).await?;
    for item in queued {
        let outcome = send_one(bridge, &item).await;
        let (state, error) = match &outcome {
            Ok(()) => (OutboxState::Sent, None),
            Err(e) if is_permanent(e) => (OutboxState::Failed, Some(e.to_string())),
            Err(e) => {
                tracing::warn!(outbox = item.id, error = %e, "send failed, will retry");
                (OutboxState::Queued, Some(e.to_string()))
            }
        };
        let id = item.id;
        bridge
            .store
            .call(move |c| stored::mark(c, id, state, error.as_deref()))
            .await?;
        if outcome.is_ok() {
            tracing::info!(outbox = item.id, "message sent");
        }
    }
    Ok(())
}

async fn send_one(bridge: &Bridge, item: &OutboxItem) -> Result<(), SendError> {
    let mailbox_id = item.mailbox_id;
    let mailbox = bridge
        .store
        .call(move |c| accounts::mailbox_by_id(c, mailbox_id))
        .await
        .map_err(|e| SendError::Unavailable(e.to_string()))?;
    let sync = match bridge.sync_for(&mailbox) {
        Some(sync) => sync,
        None => bridge
            .attach_account(mailbox.account_id())
            .await
            .map_err(|e| SendError::Unavailable(e.to_string()))?,
    };
    sync.send_mime(&item.message).await?;
    // Graph saved the copy in Sent Items: pick it up now rather than at the next poll.
    let sync = sync.clone();
    tokio::spawn(async move { sync.refresh_now().await });
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("mailbox unavailable: {0}")]
    Unavailable(String),
}

/// 4xx answers other than throttling mean Graph will refuse the same request again.
fn is_permanent(error: &SendError) -> bool {
    match error {
        SendError::Graph(GraphError::Status { status, .. }) => {
            (400..500).contains(status) && *status != 429 && *status != 408
        }
        SendError::Graph(e) => e.needs_signin(),
        SendError::Unavailable(_) => false,
    }
}
