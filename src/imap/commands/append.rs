//! APPEND (with APPENDUID, RFC 4315): the client's bytes become a message in Graph and are
//! kept verbatim as what the bridge serves for the new UID.

use std::num::NonZeroU32;

use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::flag::Flag;
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::Code;

use super::store::flags_and_keywords;
use super::{locate, sync_failure, Located, Outcome};
use crate::imap::session::Session;
use crate::mailstore::{messages, now_unix, FolderRecord, SpecialUse};

pub async fn append(
    session: &mut Session,
    mailbox: Mailbox<'static>,
    flags: Vec<Flag<'static>>,
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let Some(folder) = located.folder.clone() else {
        return Outcome::no(format!("No such mailbox: {}", located.path))
            .with_atom_code("TRYCREATE");
    };
    let raw: &[u8] = match &message {
        LiteralOrLiteral8::Literal(literal) => literal.data(),
        LiteralOrLiteral8::Literal8(literal) => literal.data.as_ref(),
    };
    if raw.is_empty() {
        return Outcome::bad("An empty message cannot be appended");
    }
    let (bits, keywords) = match flags_and_keywords(&flags, "") {
        Ok(parsed) => parsed,
        Err(outcome) => return outcome,
    };
    if folder.special_use == Some(SpecialUse::Sent) {
        if let Some(uid) = already_sent(&located, &folder, raw).await {
            return appended(
                &folder,
                uid,
                "APPEND completed: the bridge already saved this sent message",
            );
        }
    }
    let internal_date = date
        .map(|d| d.as_ref().timestamp())
        .unwrap_or_else(now_unix);
    let uid = match located
        .sync
        .append(&folder, raw, bits, &keywords, internal_date)
        .await
    {
        Ok(uid) => uid,
        Err(e) => return sync_failure("APPEND failed", e),
    };
    // The selected folder may be the target: tell the client about the new message.
    if let Some(selected) = session.selected.as_mut() {
        if let Ok(updates) = selected.refresh(true).await {
            session.pending.extend(updates.into_iter().map(Into::into));
        }
    }
    appended(&folder, uid, "APPEND completed")
}

fn appended(folder: &FolderRecord, uid: u32, text: &str) -> Outcome {
    match (NonZeroU32::new(folder.uidvalidity), NonZeroU32::new(uid)) {
        (Some(uid_validity), Some(uid)) => {
            Outcome::ok(text).with_code(Code::AppendUid { uid_validity, uid })
        }
        _ => Outcome::ok(text),
    }
}

/// A client saving its copy of a message the bridge just sent: Graph already put one in Sent
/// Items, so the client gets that message's UID instead of a duplicate.
async fn already_sent(located: &Located, sent: &FolderRecord, raw: &[u8]) -> Option<u32> {
    let store = located.sync.store().clone();
    let graph_id = crate::submission::recent_send_matching(&store, &located.mailbox.record, raw)
        .await
        .ok()??;
    let lookup = |store: crate::mailstore::Store, id: String, folder_id: i64| async move {
        store
            .call(move |c| messages::uid_by_graph_id(c, folder_id, &id))
            .await
            .ok()
            .flatten()
    };
    if let Some(uid) = lookup(store.clone(), graph_id.clone(), sent.id).await {
        return Some(uid);
    }
    // Sent, but the copy has not reached the store yet: sync now and look again.
    located.sync.refresh_now().await;
    lookup(store, graph_id, sent.id).await
}
