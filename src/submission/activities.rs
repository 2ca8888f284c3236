//! Activities: every message sent from a mailbox is booked once as `Email – Outbox` /
//! `External email dispatch`, with the mailbox's main user as supervisor. Bridge sends are
//! booked when the outbox commits them; mail that reaches Sent Items another way (Outlook,
//! a phone) is found here, by watching each account's Sent Items folder past a watermark.
//! This module also runs the activity webhook and the download-link sweeper.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::mailstore::activities::{self as stored, Activity, ActivitySource, NewActivity};
use crate::mailstore::{
    accounts, folders, messages, now_unix, outbox, SpecialUse, Store, StoreError,
};
use crate::sync::{MailboxSync, SyncError};

pub const KIND: &str = "Email – Outbox";
pub const ACTION: &str = "External email dispatch";
const SWEEP_INTERVAL_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("--since wants an RFC 3339 time, a date (YYYY-MM-DD) or Unix seconds, not {0:?}")]
    BadSince(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The activities, oldest first (what `GET /api/activities` serves).
pub async fn list(
    store: &Store,
    mailbox: Option<String>,
    since: Option<i64>,
) -> Result<Vec<Activity>, StoreError> {
    store
        .call(move |c| stored::list(c, mailbox.as_deref(), since))
        .await
}

/// `--since`: RFC 3339, a date, or Unix seconds.
pub fn parse_since(text: &str) -> Result<i64, ActivityError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| ActivityError::BadSince(text.to_string()))
}

/// `graphbridge activities [--mailbox A] [--since T] [--json]`.
pub fn cli(
    store: &Store,
    mailbox: Option<&str>,
    since: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), ActivityError> {
    let since = since.map(parse_since).transpose()?;
    let list = store.call_blocking(|c| stored::list(c, mailbox, since))?;
    if json {
        let text = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
        writeln!(out, "{text}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<26} {:<9} {:<24} {:<12} SUBJECT → RECIPIENTS",
        "TIME", "MAILBOX", "SOURCE", "TYPE / ACTION", "SUPERVISOR"
    )?;
    for a in &list {
        let time = chrono::DateTime::from_timestamp(a.sent_at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let source = match a.source {
            ActivitySource::Bridge => "bridge",
            ActivitySource::External => "external",
        };
        writeln!(
            out,
            "{time:<20} {:<26} {source:<9} {:<24} {:<12} {} → {}",
            a.mailbox,
            format!("{} / {}", a.kind, a.action),
            a.supervisor.as_deref().unwrap_or("-"),
            a.subject,
            a.recipients.join(", ")
        )?;
        for link in &a.links {
            writeln!(out, "{:<20} link {link}", ' ')?;
        }
    }
    Ok(())
}

/// The Sent Items watcher, the webhook and the link sweeper, until shutdown.
pub async fn run(bridge: Arc<Bridge>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_secs(bridge.config.sync.poll_interval_secs.max(1));
    let mut last_sweep = 0;
    loop {
        if let Err(e) = watch_sent_items(&bridge).await {
            tracing::warn!(error = %e, "Sent Items watch failed");
        }
        if let Some(url) = bridge.config.submission.activity_webhook.clone() {
            deliver_webhooks(&bridge, &url).await;
        }
        let now = now_unix();
        if now - last_sweep >= SWEEP_INTERVAL_SECS {
            last_sweep = now;
            if let Err(e) = super::links::sweep(&bridge.store, &bridge.config.data_dir, now).await {
                tracing::warn!(error = %e, "download link sweep failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Books what arrived in each account's Sent Items since the last look.
pub async fn watch_sent_items(bridge: &Bridge) -> Result<usize, ActivityError> {
    let mut booked = 0;
    for sync in bridge.all_syncs() {
        booked += watch_account(bridge, &sync).await?;
    }
    Ok(booked)
}

async fn watch_account(bridge: &Bridge, sync: &Arc<MailboxSync>) -> Result<usize, ActivityError> {
    let account = sync.account_id;
    let Some(folder) = bridge
        .store
        .call(move |c| folders::folder_by_special_use(c, account, SpecialUse::Sent))
        .await?
    else {
        return Ok(0);
    };
    let folder_id = folder.id;
    let (mark, list) = bridge
        .store
        .call(move |c| {
            Ok((
                stored::watermark(c, folder_id)?,
                messages::list_messages(c, folder_id)?,
            ))
        })
        .await?;
    let newest = list.iter().map(|m| m.uid).max().unwrap_or(0);
    let last = match mark {
        Some((validity, last)) if validity == folder.uidvalidity => last,
        // First look (or a replaced folder): what is there now is history, not new sends.
        _ => {
            let validity = folder.uidvalidity;
            bridge
                .store
                .call(move |c| stored::set_watermark(c, folder_id, validity, newest))
                .await?;
            return Ok(0);
        }
    };
    let mut booked = 0;
    for m in list.into_iter().filter(|m| m.uid > last) {
        if book_if_external(bridge, sync, &m.graph_id, m.internal_date).await? {
            booked += 1;
        }
        let (validity, uid) = (folder.uidvalidity, m.uid);
        bridge
            .store
            .call(move |c| stored::set_watermark(c, folder_id, validity, uid))
            .await?;
    }
    Ok(booked)
}

/// Books one Sent Items message unless the bridge sent it or the mailbox does not want it.
async fn book_if_external(
    bridge: &Bridge,
    sync: &Arc<MailboxSync>,
    graph_id: &str,
    sent_at: i64,
) -> Result<bool, ActivityError> {
    let id = graph_id.to_string();
    if bridge
        .store
        .call(move |c| outbox::has_sent_graph_id(c, &id))
        .await?
    {
        return Ok(false);
    }
    let raw = match sync.body(graph_id).await {
        Ok(raw) => raw,
        Err(SyncError::Gone) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let Some(analysis) = super::message::analyse(&raw) else {
        return Ok(false);
    };
    if let Some(mid) = analysis.message_id.clone() {
        if bridge
            .store
            .call(move |c| outbox::has_message_id(c, &mid))
            .await?
        {
            return Ok(false);
        }
    }
    let mailbox = sending_mailbox(bridge, sync.account_id, analysis.from.as_deref()).await?;
    let policy = super::policy::for_mailbox(bridge, &mailbox);
    if !policy.book_external_sends {
        return Ok(false);
    }
    let activity = NewActivity {
        dedup_key: format!("sent:{}:{graph_id}", sync.account_id),
        mailbox_id: mailbox.id,
        source: ActivitySource::External,
        kind: KIND.into(),
        action: ACTION.into(),
        supervisor: None,
        sender: analysis
            .from
            .clone()
            .unwrap_or_else(|| mailbox.address.clone()),
        recipients: analysis.header_recipients.clone(),
        subject: analysis.subject.clone(),
        message_id: analysis.message_id.clone(),
        sent_at,
        links: Vec::new(),
        webhook: bridge.config.submission.activity_webhook.is_some(),
    };
    let mailbox_id = mailbox.id;
    Ok(bridge
        .store
        .call(move |c| {
            let mut activity = activity;
            activity.supervisor = stored::main_user(c, mailbox_id)?;
            stored::book(c, &activity)
        })
        .await?)
}

/// The alias mailbox named in From when it is one of the account's; else the account.
async fn sending_mailbox(
    bridge: &Bridge,
    account: i64,
    from: Option<&str>,
) -> Result<crate::mailstore::MailboxRecord, StoreError> {
    let from = from.map(str::to_string);
    bridge
        .store
        .call(move |c| {
            if let Some(from) = from {
                if let Some(m) = accounts::mailbox_by_address(c, &from)? {
                    if m.account_id() == account {
                        return Ok(m);
                    }
                }
            }
            accounts::mailbox_by_id(c, account)
        })
        .await
}

/// POSTs due activities to the webhook; a 2xx answer acknowledges one, anything else retries
/// it later with a growing delay.
async fn deliver_webhooks(bridge: &Bridge, url: &str) {
    let now = now_unix();
    let due = match bridge
        .store
        .call(move |c| stored::webhook_due(c, now, 50))
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read pending activities");
            return;
        }
    };
    if due.is_empty() {
        return;
    }
    let Ok(http) = crate::graph::http_client() else {
        return;
    };
    for (activity, attempts) in due {
        let ok = http
            .post(url)
            .json(&activity)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let id = activity.id;
        let result = if ok {
            bridge
                .store
                .call(move |c| stored::webhook_done(c, id))
                .await
        } else {
            let delay = super::policy::retry_delay(attempts + 1) / 6;
            let next = now + delay.max(5);
            bridge
                .store
                .call(move |c| stored::webhook_retry(c, id, next))
                .await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record the webhook delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_three_forms() {
        assert_eq!(parse_since("1700000000").ok(), Some(1_700_000_000));
        assert_eq!(parse_since("1970-01-02").ok(), Some(86_400));
        assert_eq!(parse_since("1970-01-01T00:01:00Z").ok(), Some(60));
        assert!(parse_since("yesterday").is_err());
    }
}
