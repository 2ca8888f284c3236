//! Push: Graph change-notification subscriptions, one per folder, when the bridge has a public
//! URL Graph can reach. A notification is only a trigger: it names a subscription, and the
//! engine runs that folder's delta at once. What changed is always read from delta, never from
//! the notification (which may be late, repeated, or forged).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tokio::sync::watch;

use super::{MailboxSync, SyncError};
use crate::bridge::Bridge;
use crate::graph::GraphError;
use crate::mailstore::folders;

/// Subscriptions are asked for this long (Graph allows under 7 days for messages) and renewed
/// when less than [`RENEW_BEFORE`] is left.
const LIFETIME: chrono::Duration = chrono::Duration::days(2);
const RENEW_BEFORE: chrono::Duration = chrono::Duration::hours(12);
/// How often subscriptions are checked (new folders, renewals).
const CHECK_EVERY: Duration = Duration::from_secs(600);

/// A live subscription of one folder.
#[derive(Debug, Clone)]
pub(super) struct FolderSubscription {
    id: String,
    folder_id: i64,
    expires: chrono::DateTime<chrono::Utc>,
}

/// The push state of one engine: where Graph should post, the secret it echoes back, and the
/// live subscriptions by folder (the store's folder id).
#[derive(Debug, Default)]
pub(super) struct PushState {
    url: Option<String>,
    client_state: String,
    subscriptions: HashMap<i64, FolderSubscription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    id: String,
    expiration_date_time: String,
}

impl MailboxSync {
    /// Turns push on: notifications are to reach `public_url` (the bridge's HTTP side).
    pub fn enable_push(&self, public_url: &str) {
        let mut push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        push.url = Some(format!(
            "{}/graph/notifications/{}",
            public_url.trim_end_matches('/'),
            self.account_id
        ));
        push.client_state = crate::graph::Pkce::new().verifier;
        push.client_state.truncate(64);
        drop(push);
        // A running loop starts the subscriptions at its next turn.
        self.wake();
    }

    pub(super) fn push_enabled(&self) -> bool {
        self.push_url().is_some()
    }

    fn push_url(&self) -> Option<(String, String)> {
        let push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        push.url.clone().map(|u| (u, push.client_state.clone()))
    }

    /// Keeps one subscription per folder alive until `shutdown`, then deletes them all.
    pub(super) async fn run_push(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.push_url().is_none() {
            return;
        }
        loop {
            if let Err(e) = self.ensure_subscriptions().await {
                tracing::warn!(account = self.account_id, error = %e, "change notifications unavailable; polling");
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.changed() => break,
            }
        }
        self.delete_subscriptions().await;
    }

    /// Creates subscriptions for folders without one, renews those about to expire, and drops
    /// those of folders that are gone.
    async fn ensure_subscriptions(&self) -> Result<(), SyncError> {
        let Some((url, client_state)) = self.push_url() else {
            return Ok(());
        };
        let account = self.account_id;
        let folders = self
            .store
            .call(move |c| folders::list_folders(c, account))
            .await?;
        let current = self.subscriptions();
        let now = chrono::Utc::now();
        for folder in &folders {
            match current.get(&folder.id) {
                Some(sub) if sub.expires - now > RENEW_BEFORE => {}
                Some(sub) => match self.graph.renew_subscription(&sub.id, now + LIFETIME).await {
                    Ok(()) => self.remember(FolderSubscription {
                        expires: now + LIFETIME,
                        ..sub.clone()
                    }),
                    Err(e) if e.is_not_found() => self.forget(folder.id),
                    Err(e) => return Err(e.into()),
                },
                None => {
                    let body = self
                        .graph
                        .create_subscription(&folder.graph_id, &url, &client_state, now + LIFETIME)
                        .await?;
                    let created: Created = serde_json::from_slice(&body)
                        .map_err(|e| GraphError::Decode(e.to_string()))?;
                    let expires =
                        chrono::DateTime::parse_from_rfc3339(&created.expiration_date_time)
                            .map(|t| t.with_timezone(&chrono::Utc))
                            .unwrap_or(now + LIFETIME);
                    self.remember(FolderSubscription {
                        id: created.id,
                        folder_id: folder.id,
                        expires,
                    });
                }
            }
        }
        for (folder_id, sub) in current {
            if !folders.iter().any(|f| f.id == folder_id) {
                let _ = self.graph.delete_subscription(&sub.id).await;
                self.forget(folder_id);
            }
        }
        Ok(())
    }

    async fn delete_subscriptions(&self) {
        for (folder_id, sub) in self.subscriptions() {
            if let Err(e) = self.graph.delete_subscription(&sub.id).await {
                tracing::debug!(error = %e, "cannot delete a subscription; it expires by itself");
            }
            self.forget(folder_id);
        }
    }

    fn subscriptions(&self) -> HashMap<i64, FolderSubscription> {
        let push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        push.subscriptions.clone()
    }

    fn remember(&self, sub: FolderSubscription) {
        let mut push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        push.subscriptions.insert(sub.folder_id, sub);
    }

    fn forget(&self, folder_id: i64) {
        let mut push = self.push.lock().unwrap_or_else(|p| p.into_inner());
        push.subscriptions.remove(&folder_id);
    }

    /// A notification arrived: finds the folder its subscription watches (checking the secret
    /// Graph echoes) and asks the poll loop for that folder's delta now.
    pub fn notified(&self, subscription_id: &str, client_state: Option<&str>) -> bool {
        let folder = {
            let push = self.push.lock().unwrap_or_else(|p| p.into_inner());
            if client_state != Some(push.client_state.as_str()) {
                return false;
            }
            push.subscriptions
                .values()
                .find(|s| s.id == subscription_id)
                .map(|s| s.folder_id)
        };
        match folder {
            Some(folder_id) => {
                self.urgent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(folder_id);
                self.wake();
                true
            }
            None => false,
        }
    }

    /// Folders a notification asked for since the last pass.
    pub(super) fn take_urgent(&self) -> Vec<i64> {
        let mut urgent = self.urgent.lock().unwrap_or_else(|p| p.into_inner());
        urgent.drain().collect()
    }
}

#[derive(Deserialize)]
struct Notifications {
    #[serde(default)]
    value: Vec<Notification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    #[serde(default)]
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
}

/// The HTTP route Graph posts to: `POST /graph/notifications/{account}`, merged into the
/// bridge's HTTP side.
pub fn routes<S: Clone + Send + Sync + 'static>(bridge: Arc<Bridge>) -> Router<S> {
    Router::new()
        .route("/graph/notifications/{account}", post(receive))
        .with_state(bridge)
}

async fn receive(
    State(bridge): State<Arc<Bridge>>,
    Path(account): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    // The subscription handshake: echo the token as text/plain within 10 seconds.
    if let Some(token) = query.get("validationToken") {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            token.clone(),
        )
            .into_response();
    }
    let Ok(notifications) = serde_json::from_slice::<Notifications>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if let Some(sync) = bridge
        .all_syncs()
        .into_iter()
        .find(|s| s.account_id == account)
    {
        for n in &notifications.value {
            if !sync.notified(&n.subscription_id, n.client_state.as_deref()) {
                tracing::debug!(account, "notification for an unknown subscription ignored");
            }
        }
    }
    // Answered at once (Graph wants 2xx within 3 s); the delta runs on the engine's loop.
    StatusCode::ACCEPTED.into_response()
}
