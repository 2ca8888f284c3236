//! The outbox worker: sends queued messages through Graph exactly once.
//!
//! Why drafts: Graph's `sendMail` gives nothing back to recognise the message by, so after a
//! crash between Graph's 202 and the local commit the bridge could not tell whether it went
//! out. Instead each message becomes a draft (created from the MIME, so headers and body
//! survive) carrying a named extended property whose value is a random per-item tag; then
//! the draft is sent. Exchange keeps the property on the Sent Items copy. Before any retry
//! the worker looks for the tag in Sent Items (already sent: just commit), then in Drafts
//! (created but not sent: send that draft), and only then makes a new draft. The phase is
//! written to the store before each Graph call, so a fresh item skips the search.
//!
//! Messages too large for one Graph request (4 MB of base64) become a draft without their
//! files, which then go up through upload sessions.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::clock::rfc3339;
use super::message;
use super::policy::{self, Pace};
use crate::bridge::Bridge;
use crate::graph::mail::TaggedMessage;
use crate::graph::{GraphClient, GraphError};
use crate::mailstore::activities::{self as stored_activities, ActivitySource, NewActivity};
use crate::mailstore::{
    accounts, now_unix, outbox as stored, MailboxRecord, OutboxItem, SendPhase,
};

/// How long the worker sleeps when nothing is due.
const IDLE_INTERVAL: Duration = Duration::from_secs(30);
/// Drafts and sent copies are searched among items received since the item was queued,
/// minus this margin for clocks that disagree.
const SEARCH_MARGIN_SECS: i64 = 600;

/// Items being worked on in this process: (bridge, outbox id). The SMTP session's first
/// attempt and the worker never handle one item at once.
static CLAIMS: LazyLock<Mutex<HashSet<(usize, i64)>>> = LazyLock::new(Default::default);

struct Claim((usize, i64));

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

fn claim(bridge: &Bridge, id: i64) -> Option<Claim> {
    claim_key((bridge as *const Bridge as usize, id))
}

fn claim_key(key: (usize, i64)) -> Option<Claim> {
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    // Lazily: a Claim made for an item already claimed would be dropped here, locking CLAIMS
    // again (a deadlock of the whole worker thread) and releasing the other holder's claim.
    claims.insert(key).then(|| Claim(key))
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Graph accepted it. `rewritten_from`: Exchange sent it from this address instead of the
    /// alias in From (the tenant does not allow sending from aliases).
    Sent { rewritten_from: Option<String> },
    /// Waiting for the sending pace.
    Deferred,
    /// A transient failure; it will be tried again.
    Retry(String),
    /// Graph refused it for good (or retries ran out).
    Refused { reason: String, alias_denied: bool },
}

/// The worker loop, with the link sweeper, the Sent Items watcher and the activity webhook.
pub async fn run(bridge: Arc<Bridge>, mut shutdown: watch::Receiver<bool>) {
    let helpers = tokio::spawn(super::activities::run(bridge.clone(), shutdown.clone()));
    loop {
        if let Err(e) = send_queued(&bridge).await {
            tracing::warn!(error = %e, "outbox pass failed");
        }
        let wait = next_wake(&bridge).await;
        tokio::select! {
            _ = bridge.outbox_ready.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    let _ = helpers.await;
}

async fn next_wake(bridge: &Bridge) -> Duration {
    let next = bridge
        .store
        .call(|c| stored::next_due_at(c))
        .await
        .ok()
        .flatten();
    match next {
        Some(at) => {
            let secs = (at - now_unix()).clamp(0, IDLE_INTERVAL.as_secs() as i64);
            Duration::from_secs(secs as u64).max(Duration::from_millis(200))
        }
        None => IDLE_INTERVAL,
    }
}

/// One pass over the items that are due.
pub async fn send_queued(bridge: &Bridge) -> Result<(), crate::mailstore::StoreError> {
    let now = now_unix();
    let due = bridge.store.call(move |c| stored::due(c, now)).await?;
    for item in due {
        let Some(_claim) = claim(bridge, item.id) else {
            continue;
        };
        // Re-read under the claim: a session may have finished it meanwhile.
        let id = item.id;
        let Some(item) = bridge.store.call(move |c| stored::get(c, id)).await? else {
            continue;
        };
        if item.state != crate::mailstore::OutboxState::Queued {
            continue;
        }
        let outcome = attempt(bridge, &item, now_unix()).await;
        finish(bridge, &item, &outcome, false).await;
    }
    Ok(())
}

/// How the end of DATA is answered after the first attempt.
pub enum Immediate {
    Sent,
    /// Still queued (paced, transient failure, or Graph was slow).
    Queued,
    /// Refused for good: the client gets this 5xx and no DSN follows.
    Refused(String),
}

/// Tries a just-queued item at once and waits up to `wait` for the result, so that a
/// permanent refusal can still be answered inside the SMTP transaction. When the wait runs
/// out the attempt carries on; its outcome is then handled like the worker's.
pub async fn send_now(bridge: &Arc<Bridge>, id: i64, wait: Duration) -> Immediate {
    let Some(claim) = claim(bridge, id) else {
        return Immediate::Queued;
    };
    let (tx, rx) = oneshot::channel::<Outcome>();
    let task_bridge = bridge.clone();
    tokio::spawn(async move {
        let _claim = claim;
        let item = match task_bridge.store.call(move |c| stored::get(c, id)).await {
            Ok(Some(item)) => item,
            _ => return,
        };
        let outcome = attempt(&task_bridge, &item, now_unix()).await;
        let attended = !tx.is_closed();
        finish(&task_bridge, &item, &outcome, attended).await;
        let _ = tx.send(outcome);
    });
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(Outcome::Sent {
            rewritten_from: None,
        })) => Immediate::Sent,
        Ok(Ok(Outcome::Sent {
            rewritten_from: Some(primary),
        })) => Immediate::Refused(alias_reply(bridge, id, &primary, true).await),
        Ok(Ok(Outcome::Refused {
            reason,
            alias_denied: true,
        })) => Immediate::Refused(alias_reply(bridge, id, &reason, false).await),
        Ok(Ok(Outcome::Refused { reason, .. })) => Immediate::Refused(format!(
            "554 5.7.0 Microsoft 365 refused the message: {reason}"
        )),
        _ => Immediate::Queued,
    }
}

async fn alias_reply(bridge: &Bridge, id: i64, detail: &str, went_out: bool) -> String {
    let alias = bridge
        .store
        .call(move |c| {
            let item = stored::get(c, id)?;
            let Some(item) = item else {
                return Ok(String::new());
            };
            Ok(accounts::mailbox_by_id(c, item.mailbox_id)?.address)
        })
        .await
        .unwrap_or_default();
    let detail = if went_out {
        format!("Exchange sent this message from {detail} instead")
    } else {
        detail.to_string()
    };
    super::SubmitError::alias_refused(&alias, &detail).smtp_reply()
}

/// Records a permanent refusal; a DSN goes to the sender unless the SMTP client is still
/// waiting for the answer (`attended`).
async fn finish(bridge: &Bridge, item: &OutboxItem, outcome: &Outcome, attended: bool) {
    let Outcome::Refused { reason, .. } = outcome else {
        return;
    };
    let (id, text) = (item.id, reason.clone());
    if let Err(e) = bridge
        .store
        .call(move |c| stored::mark_failed(c, id, &text))
        .await
    {
        tracing::error!(outbox = item.id, error = %e, "cannot record a refused message");
    }
    tracing::warn!(outbox = item.id, reason, "message refused");
    if !attended {
        if let Err(e) = super::dsn::deliver(bridge, item, reason).await {
            tracing::error!(outbox = item.id, error = %e, "cannot deliver the failure notice");
        }
    }
}

/// One attempt: pace, find what an earlier attempt left in Graph, send, commit.
pub async fn attempt(bridge: &Bridge, item: &OutboxItem, now: i64) -> Outcome {
    let mailbox = match load_mailbox(bridge, item.mailbox_id).await {
        Ok(m) => m,
        Err(e) => return retry_or_give_up(bridge, item, now, e).await,
    };
    if let Some(at) = pace(bridge, &mailbox, item, now).await {
        let id = item.id;
        let _ = bridge.store.call(move |c| stored::defer(c, id, at)).await;
        return Outcome::Deferred;
    }
    let sync = match bridge.sync_or_attach(&mailbox).await {
        Ok(sync) => sync,
        Err(e) => return retry_or_give_up(bridge, item, now, e.to_string()).await,
    };
    let graph = sync.graph_client();
    match deliver(bridge, &graph, item).await {
        Ok(copy) => {
            let outcome = commit(bridge, &graph, item, &mailbox, copy, now).await;
            tokio::spawn(async move { sync.refresh_now().await });
            outcome
        }
        Err(e) if is_permanent(&e) => Outcome::Refused {
            reason: e.to_string(),
            alias_denied: mailbox.alias_of.is_some() && is_send_as_denied(&e),
        },
        Err(e) => retry_or_give_up(bridge, item, now, e.to_string()).await,
    }
}

async fn load_mailbox(bridge: &Bridge, id: i64) -> Result<MailboxRecord, String> {
    bridge
        .store
        .call(move |c| accounts::mailbox_by_id(c, id))
        .await
        .map_err(|e| e.to_string())
}

/// None when the account may send now; otherwise when it may.
async fn pace(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    item: &OutboxItem,
    now: i64,
) -> Option<i64> {
    let policy = super::policy::for_mailbox(bridge, mailbox);
    let account = mailbox.account_id();
    let history = bridge
        .store
        .call(move |c| stored::sends_since(c, account, now - 86_400))
        .await
        .ok()?;
    let pace = Pace {
        messages_per_minute: policy.messages_per_minute,
        recipients_per_day: policy.recipients_per_day,
    };
    policy::next_slot(now, &history, item.recipient_count, pace)
}

async fn retry_or_give_up(bridge: &Bridge, item: &OutboxItem, now: i64, error: String) -> Outcome {
    let limit = bridge.config.submission.retry_hours as i64 * 3600;
    if now - item.created_at >= limit {
        return Outcome::Refused {
            reason: format!(
                "still failing after {} hours: {error}",
                bridge.config.submission.retry_hours
            ),
            alias_denied: false,
        };
    }
    let next = now + policy::retry_delay(item.attempts + 1);
    let (id, text) = (item.id, error.clone());
    let _ = bridge
        .store
        .call(move |c| stored::reschedule(c, id, next, &text))
        .await;
    tracing::warn!(outbox = item.id, error, "send failed, will retry");
    Outcome::Retry(error)
}

/// Gets the item sent (or finds that it was) and returns its Sent Items copy, if visible.
async fn deliver(
    bridge: &Bridge,
    graph: &GraphClient,
    item: &OutboxItem,
) -> Result<Option<TaggedMessage>, SendError> {
    let since = rfc3339(item.created_at - SEARCH_MARGIN_SECS);
    let mut draft = None;
    if item.phase != SendPhase::New {
        if let Some(sent) = graph.find_tagged("sentitems", &item.tag, &since).await? {
            if !sent.is_draft {
                tracing::info!(outbox = item.id, "found in Sent Items: it was sent before");
                return Ok(Some(sent));
            }
        }
        draft = graph
            .find_tagged("drafts", &item.tag, &since)
            .await?
            .map(|d| d.id);
        draft = finish_or_discard(graph, item, draft, &since).await?;
    }
    let draft = match draft {
        Some(id) => id,
        None => make_draft(bridge, graph, item).await?,
    };
    set_phase(bridge, item.id, SendPhase::Sending, Some(&draft)).await?;
    crash_point("before_send");
    if let Err(e) = graph.send_draft(&draft).await {
        if is_permanent(&SendError::Graph(e.duplicate())) {
            let _ = graph.delete_message(&draft, false).await;
        }
        return Err(e.into());
    }
    crash_point("after_send");
    Ok(graph.find_tagged("sentitems", &item.tag, &since).await?)
}

/// After a crash while drafting: a tagged draft of a large message may lack files whose
/// upload had not finished, so it is discarded and made again; a draft created but never
/// tagged (the crash fell between the two) is found by its Message-ID and discarded, so that
/// no stray copy stays in Drafts. Returns the draft to send, if any.
async fn finish_or_discard(
    graph: &GraphClient,
    item: &OutboxItem,
    draft: Option<String>,
    since: &str,
) -> Result<Option<String>, SendError> {
    if item.phase != SendPhase::Drafting {
        return Ok(draft);
    }
    let large = item.message.len() > super::GRAPH_MIME_LIMIT;
    let mut discard = Vec::new();
    let keep = match draft {
        Some(id) if large => {
            discard.push(id);
            None
        }
        other => other,
    };
    if let Some(message_id) = &item.message_id {
        discard.extend(graph.untagged_drafts(message_id, since).await?);
    }
    for id in discard {
        tracing::info!(outbox = item.id, draft = %id, "discarding an unfinished draft");
        graph.delete_message(&id, true).await?;
    }
    Ok(keep)
}

/// A tagged draft of the item; large messages get their files through upload sessions.
async fn make_draft(
    bridge: &Bridge,
    graph: &GraphClient,
    item: &OutboxItem,
) -> Result<String, SendError> {
    set_phase(bridge, item.id, SendPhase::Drafting, None).await?;
    crash_point("before_draft");
    let large = item.message.len() > super::GRAPH_MIME_LIMIT;
    let skeleton = if large {
        message::without_attachments(&item.message)
            .ok_or(SendError::Unsendable("the message cannot be parsed".into()))?
    } else {
        item.message.clone()
    };
    if skeleton.len() > super::GRAPH_MIME_LIMIT {
        return Err(SendError::Unsendable(
            "the text of the message alone exceeds Graph's request size".into(),
        ));
    }
    let id = graph.create_mime_draft(&skeleton).await?;
    crash_point("before_tag");
    graph.tag_message(&id, &item.tag).await?;
    set_phase(bridge, item.id, SendPhase::Drafting, Some(&id)).await?;
    crash_point("after_draft");
    if large {
        for file in message::attachments(&item.message) {
            graph
                .upload_attachment(&id, &file.name, &file.content_type, &file.bytes)
                .await?;
        }
    }
    Ok(id)
}

async fn set_phase(
    bridge: &Bridge,
    id: i64,
    phase: SendPhase,
    draft: Option<&str>,
) -> Result<(), SendError> {
    let draft = draft.map(str::to_string);
    bridge
        .store
        .call(move |c| stored::set_phase(c, id, phase, draft.as_deref()))
        .await
        .map_err(|e| SendError::Unavailable(e.to_string()))
}

/// Marks the item sent and books its activity in one transaction; then checks what Exchange
/// did with an alias From and drops the Sent Items copy when the client keeps its own.
async fn commit(
    bridge: &Bridge,
    graph: &GraphClient,
    item: &OutboxItem,
    mailbox: &MailboxRecord,
    copy: Option<TaggedMessage>,
    now: i64,
) -> Outcome {
    let activity = bridge_activity(bridge, item, mailbox, now);
    let (id, sent_id) = (item.id, copy.as_ref().map(|c| c.id.clone()));
    let mailbox_id = mailbox.id;
    let committed = bridge
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            stored::mark_sent(&tx, id, sent_id.as_deref(), now)?;
            let mut activity = activity;
            activity.supervisor = stored_activities::main_user(&tx, mailbox_id)?;
            stored_activities::book(&tx, &activity)?;
            tx.commit()?;
            Ok(())
        })
        .await;
    if let Err(e) = committed {
        // Graph has it; the next attempt finds the tagged copy and commits then.
        tracing::error!(outbox = item.id, error = %e, "sent, but cannot record it");
        return Outcome::Retry(e.to_string());
    }
    crash_point("after_commit");
    tracing::info!(outbox = item.id, "message sent");
    let rewritten_from = alias_check(bridge, mailbox, copy.as_ref(), now).await;
    if !item.save_copy {
        if let Some(copy) = &copy {
            if let Err(e) = graph.delete_message(&copy.id, true).await {
                tracing::warn!(outbox = item.id, error = %e, "cannot remove the Sent Items copy");
            }
        }
    }
    Outcome::Sent { rewritten_from }
}

/// Some(primary address) when Exchange replaced the alias in From.
async fn alias_check(
    bridge: &Bridge,
    mailbox: &MailboxRecord,
    copy: Option<&TaggedMessage>,
    now: i64,
) -> Option<String> {
    mailbox.alias_of?;
    let from = copy?.from.clone()?;
    let id = mailbox.id;
    if from.eq_ignore_ascii_case(&mailbox.address) {
        let _ = bridge
            .store
            .call(move |c| stored::clear_alias_refusal(c, id))
            .await;
        return None;
    }
    let detail = format!("From was rewritten to {from}");
    let _ = bridge
        .store
        .call(move |c| stored::record_alias_refusal(c, id, &detail, now))
        .await;
    tracing::warn!(alias = %mailbox.address, %from, "Exchange rewrote the alias From: SendFromAliasEnabled is off");
    Some(from)
}

fn bridge_activity(
    bridge: &Bridge,
    item: &OutboxItem,
    mailbox: &MailboxRecord,
    now: i64,
) -> NewActivity {
    let analysis = message::analyse(&item.message);
    NewActivity {
        dedup_key: format!("outbox:{}", item.id),
        mailbox_id: mailbox.id,
        source: ActivitySource::Bridge,
        kind: super::activities::KIND.into(),
        action: super::activities::ACTION.into(),
        supervisor: None,
        sender: analysis
            .as_ref()
            .and_then(|a| a.from.clone())
            .unwrap_or_else(|| item.mail_from.clone()),
        recipients: item.recipients.clone(),
        subject: analysis
            .as_ref()
            .map(|a| a.subject.clone())
            .unwrap_or_default(),
        message_id: item.message_id.clone(),
        sent_at: now,
        links: item.links.clone(),
        webhook: bridge.config.submission.activity_webhook.is_some(),
    }
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("mailbox unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Unsendable(String),
}

/// 4xx answers other than throttling and timeouts mean Graph will refuse the same again.
fn is_permanent(error: &SendError) -> bool {
    match error {
        SendError::Graph(GraphError::Status { status, .. }) => {
            (400..500).contains(status) && *status != 429 && *status != 408 && *status != 401
        }
        SendError::Graph(_) | SendError::Unavailable(_) => false,
        SendError::Unsendable(_) => true,
    }
}

fn is_send_as_denied(error: &SendError) -> bool {
    matches!(error, SendError::Graph(GraphError::Status { code, .. })
        if code.eq_ignore_ascii_case("ErrorSendAsDenied"))
}

/// Crash-test hook: with `GRAPHBRIDGE_PAUSE_AT=<point>` the process announces the point on
/// stderr and stops there, so a test can `kill -9` it at exactly that step.
pub fn crash_point(point: &str) {
    let Ok(wanted) = std::env::var("GRAPHBRIDGE_PAUSE_AT") else {
        return;
    };
    if wanted == point {
        eprintln!("GRAPHBRIDGE PAUSED AT {point}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod claim_tests {
    use super::claim_key;

    #[test]
    fn a_second_claim_of_one_item_is_refused_and_leaves_the_first_in_place() {
        let key = (usize::MAX, 42);
        let first = claim_key(key).expect("first claim");
        assert!(claim_key(key).is_none(), "already claimed");
        assert!(
            claim_key(key).is_none(),
            "the refused claim did not release the first"
        );
        drop(first);
        assert!(
            claim_key(key).is_some(),
            "free again once the first is dropped"
        );
    }
}
