//! Recognising the client's own copy of a message the bridge just sent.
//!
//! Graph saves what the bridge sends in Sent Items; most clients then APPEND their copy to
//! Sent as well. The IMAP APPEND handler asks [`recent_send_matching`] first and, on a match,
//! answers with the existing message instead of storing a second copy.

use crate::mailstore::{outbox as stored, MailboxRecord, Store, StoreError};

/// How long after a send a client's APPEND is taken for its copy.
pub const MATCH_WINDOW_SECS: i64 = 30 * 60;

/// The Graph id of the Sent Items copy of a message this mailbox's account sent in the last
/// 30 minutes with the same Message-ID and the same content (after link substitution), if
/// any. Mailboxes with `sent_copy = client` never match: their client's copy is the only one.
pub async fn recent_send_matching(
    store: &Store,
    mailbox: &MailboxRecord,
    raw_message: &[u8],
) -> Result<Option<String>, StoreError> {
    let Some(message_id) =
        super::message::parse(raw_message).and_then(|m| m.message_id().map(str::to_string))
    else {
        return Ok(None);
    };
    let fingerprint = super::message::fingerprint(raw_message);
    let account = mailbox.account_id();
    let since = crate::mailstore::now_unix() - MATCH_WINDOW_SECS;
    let candidates = store
        .call(move |c| stored::sent_with_message_id(c, account, &message_id, since))
        .await?;
    Ok(candidates
        .into_iter()
        .find(|(_, stored)| stored.is_some() && *stored == fingerprint)
        .map(|(graph_id, _)| graph_id))
}
