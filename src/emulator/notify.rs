//! Delivering change notifications: after each request, the message changes the mailboxes
//! recorded are matched against the live subscriptions and POSTed to their notification URLs,
//! one POST per subscription with every matching change in `value`.
//!
//! Delivery runs on its own tasks, never under the state lock. A receiver has 3 seconds to
//! answer 2xx; otherwise the POST is retried a few times with growing pauses *(unverified:
//! Graph retries for up to 4 hours and then drops the notification; the emulator gives up
//! after its last retry)*.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use serde_json::{json, Value};

use super::changes::ChangeEvent;
use super::state::Mailbox;
use super::subscriptions::{http_client, Subscription};
use super::Shared;

/// Pauses before each retry.
const RETRY_PAUSES_MS: &[u64] = &[500, 1_000, 2_000];
/// Time a receiver has to answer one notification POST.
const ANSWER_TIMEOUT: StdDuration = StdDuration::from_secs(3);

/// Notification POSTs answered 2xx and POSTs that failed (each retry counts), for `/_emulator/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl Stats {
    pub fn json(&self) -> Value {
        json!({
            "delivered": self.delivered.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
        })
    }
}

/// Hands the changes recorded since the last call to the subscriptions that watch them.
/// Cheap when nothing was recorded (no subscription ever watched a mailbox).
pub fn flush(shared: &Arc<Shared>) {
    let deliveries = {
        let mut inner = shared.lock();
        let inner = &mut *inner;
        let now = Utc::now();
        inner.subs.by_id.retain(|_, s| s.live(now));
        let mut out = Vec::new();
        for (idx, mb) in inner.tenant.mailboxes.iter_mut().enumerate() {
            if mb.events.is_empty() {
                continue;
            }
            let events = mb.take_events();
            let subs: Vec<&Subscription> = inner
                .subs
                .by_id
                .values()
                .filter(|s| s.mailbox == idx)
                .collect();
            // Nobody watches any more: stop recording.
            mb.record_events = !subs.is_empty();
            for s in subs {
                let value: Vec<Value> = events
                    .iter()
                    .filter(|e| watches(mb, s, e))
                    .map(|e| notification(&inner.tenant.tenant_id, mb, s, e))
                    .collect();
                if !value.is_empty() {
                    out.push((s.notification_url.clone(), json!({"value": value})));
                }
            }
        }
        out
    };
    if deliveries.is_empty() {
        return;
    }
    let Ok(client) = http_client() else { return };
    for (url, body) in deliveries {
        let client = client.clone();
        let shared = shared.clone();
        tokio::spawn(async move { deliver(&shared, &client, &url, &body).await });
    }
}

/// Whether a subscription covers this change: its change types, and its folder (or the
/// whole mailbox below the root, as `me/messages` does).
fn watches(mb: &Mailbox, s: &Subscription, e: &ChangeEvent) -> bool {
    s.change_types.contains(&e.kind)
        && match s.folder {
            Some(f) => f == e.folder,
            None => mb.is_ancestor(mb.root(), e.folder),
        }
}

fn notification(tenant: &str, mb: &Mailbox, s: &Subscription, e: &ChangeEvent) -> Value {
    let id = if s.immutable {
        &e.immutable_id
    } else {
        &e.rest_id
    };
    let path = format!("Users/{}/Messages/{id}", mb.user_id);
    let mut data = json!({
        "@odata.type": "#Microsoft.Graph.Message",
        "@odata.id": path,
        "id": id,
    });
    if let Some(etag) = &e.etag {
        data["@odata.etag"] = json!(etag);
    }
    json!({
        "subscriptionId": s.id,
        "subscriptionExpirationDateTime": s.expires.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
        "clientState": s.client_state,
        "changeType": e.kind.as_str(),
        "resource": path,
        "resourceData": data,
        "tenantId": tenant,
    })
}

/// POSTs one notification batch, retrying while the receiver fails.
async fn deliver(shared: &Shared, client: &reqwest::Client, url: &str, body: &Value) {
    for attempt in 0..=RETRY_PAUSES_MS.len() {
        if attempt > 0 {
            let pause = RETRY_PAUSES_MS.get(attempt - 1).copied().unwrap_or(0);
            tokio::time::sleep(StdDuration::from_millis(pause)).await;
        }
        let ok = client
            .post(url)
            .json(body)
            .timeout(ANSWER_TIMEOUT)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let counter = if ok {
            &shared.notify_stats.delivered
        } else {
            &shared.notify_stats.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if ok {
            return;
        }
    }
}
