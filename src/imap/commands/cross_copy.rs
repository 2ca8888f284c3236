//! COPY and MOVE from a folder of one Microsoft 365 mailbox to a folder of another (a user
//! assigned to several mailboxes sees the others under `Shared/<address>/`).
//!
//! Graph copies and moves only inside one mailbox, so each message is created anew in the
//! target mailbox the way APPEND creates one: from the exact bytes the bridge serves for the
//! source UID, with its flags, keywords and INTERNALDATE. The target store keeps those bytes,
//! so the copy's BODY[] equals the original's (ARCHITECTURE invariant 2).
//!
//! Failures never lose a message. A COPY is all or nothing (RFC 3501: a failed COPY leaves
//! the destination as it was). A MOVE deletes each source only once its copy exists; a message
//! that cannot be copied stays where it was, which RFC 6851 (3.3) allows for a MOVE answered NO.

use std::sync::Arc;

use imap_next::imap_types::response::Status;

use super::copy::{copy_uid, expunge_from_view, undo_copies};
use super::{sync_failure, Outcome};
use crate::imap::session::Session;
use crate::mailstore::{Flags, FolderRecord, MessageRecord};
use crate::sync::{MailboxSync, SyncError};

/// Where the messages go: a folder of another mailbox, and that mailbox's sync engine.
pub struct Destination {
    pub sync: Arc<MailboxSync>,
    pub folder: FolderRecord,
}

/// Why one message could not be copied or moved to the other mailbox.
#[derive(Debug, thiserror::Error)]
enum CrossError {
    #[error(
        "message UID {uid} has {size} bytes, more than Microsoft 365 takes, so it cannot be \
         copied to another mailbox (it was left where it is): {source}"
    )]
    TooBig {
        uid: u32,
        size: usize,
        #[source]
        source: SyncError,
    },
    #[error("message UID {uid} cannot be read")]
    Read {
        uid: u32,
        #[source]
        source: SyncError,
    },
    #[error("message UID {uid} cannot be created in the target mailbox")]
    Create {
        uid: u32,
        #[source]
        source: SyncError,
    },
    #[error("message UID {uid} was copied but cannot be removed from its folder")]
    Remove {
        uid: u32,
        #[source]
        source: SyncError,
    },
}

impl CrossError {
    /// The tagged NO for this failure, with the reason Graph gave, after `what` happened.
    fn into_outcome(self, what: &str) -> Outcome {
        let text = format!("{what}: {self}");
        match self {
            CrossError::TooBig { .. } => Outcome::no(text).with_atom_code("TOOBIG"),
            CrossError::Read { source, .. }
            | CrossError::Create { source, .. }
            | CrossError::Remove { source, .. } => sync_failure(&text, source),
        }
    }
}

/// The messages at `indexes` of the selected folder, copied (or moved) to `to`.
pub async fn copy_or_move(
    session: &mut Session,
    indexes: Vec<usize>,
    to: Destination,
    is_move: bool,
) -> Outcome {
    let Some(selected) = session.selected.as_ref() else {
        return Outcome::bad("No mailbox selected");
    };
    let from = Source {
        sync: selected.sync.clone(),
        folder: selected.folder.clone(),
    };
    let messages: Vec<(usize, MessageRecord)> = indexes
        .into_iter()
        .filter_map(|i| selected.messages.get(i).cloned().map(|m| (i, m)))
        .collect();
    if is_move {
        move_all(session, &from, messages, &to).await
    } else {
        copy_all(session, &from, messages, &to).await
    }
}

/// The selected folder the messages come from, and its mailbox's sync engine.
struct Source {
    sync: Arc<MailboxSync>,
    folder: FolderRecord,
}

async fn copy_all(
    session: &mut Session,
    from: &Source,
    messages: Vec<(usize, MessageRecord)>,
    to: &Destination,
) -> Outcome {
    let mut pairs = Vec::new();
    for (_, message) in &messages {
        match copy_one(&from.sync, message, to).await {
            Ok(Some(new_uid)) => pairs.push((message.uid, new_uid)),
            // Deleted in Outlook meanwhile: nothing to copy; the next NOOP expunges it.
            Ok(None) => {}
            Err(e) => {
                undo_copies(&to.sync, &to.folder, &pairs).await;
                return e.into_outcome("COPY failed, nothing was copied");
            }
        }
    }
    // Other sessions' changes to the selected folder, as after a same-mailbox COPY.
    if let Some(selected) = session.selected.as_mut() {
        if let Ok(updates) = selected.refresh(false).await {
            session.pending.extend(updates.into_iter().map(Into::into));
        }
    }
    match copy_uid(to.folder.uidvalidity, &pairs) {
        Some(code) => Outcome::ok("COPY completed").with_code(code),
        None => Outcome::ok("COPY completed"),
    }
}

/// Moves message by message. A message too big for Graph is skipped and the others still
/// move; any other failure stops the MOVE there, leaving the rest untouched.
async fn move_all(
    session: &mut Session,
    from: &Source,
    messages: Vec<(usize, MessageRecord)>,
    to: &Destination,
) -> Outcome {
    let mut pairs = Vec::new();
    let mut moved = Vec::new();
    let mut failure = None;
    for (index, message) in &messages {
        match move_one(from, message, to).await {
            Ok(Some(new_uid)) => {
                pairs.push((message.uid, new_uid));
                moved.push(*index);
            }
            Ok(None) => {}
            Err(e @ CrossError::TooBig { .. }) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // RFC 6851: COPYUID goes in an untagged OK before the EXPUNGEs, also when only part of
    // the set moved and the command ends in NO.
    if let Some(code) = copy_uid(to.folder.uidvalidity, &pairs) {
        if let Ok(status) = Status::ok(None, Some(code), "Moved") {
            session.pending.push(status.into());
        }
    }
    expunge_from_view(session, &moved);
    match failure {
        None => Outcome::ok("MOVE completed"),
        Some(e) if pairs.is_empty() => e.into_outcome("MOVE failed, nothing was moved"),
        Some(e) => e.into_outcome(&format!(
            "MOVE incomplete: {} message(s) moved, not all",
            pairs.len()
        )),
    }
}

/// Copies one message, then removes the source. `None`: the source is no longer in Graph.
async fn move_one(
    from: &Source,
    message: &MessageRecord,
    to: &Destination,
) -> Result<Option<u32>, CrossError> {
    let Some(new_uid) = copy_one(&from.sync, message, to).await? else {
        return Ok(None);
    };
    // Deleted for good rather than to Deleted Items, whatever the mailbox's delete setting:
    // the message is not being thrown away, it lives on in the other mailbox, and a second
    // copy in the source's Deleted Items would be a duplicate the user never asked for (a
    // MOVE inside one mailbox leaves nothing there either). Exchange still keeps the item in
    // Recoverable Items for its retention period, and this runs only once the copy exists in
    // Graph and in the store.
    match from.sync.delete_message(&from.folder, message, true).await {
        Ok(()) => Ok(Some(new_uid)),
        Err(source) => {
            // Keep the message in exactly one place (RFC 6851 3.3): take the copy back.
            undo_copies(&to.sync, &to.folder, &[(message.uid, new_uid)]).await;
            Err(CrossError::Remove {
                uid: message.uid,
                source,
            })
        }
    }
}

/// Creates a copy of `message` in the destination from the bytes the bridge serves for it
/// (fetched and stored first if they are not here yet, as FETCH BODY[] does) and returns the
/// copy's UID. `None`: the source is no longer in Graph.
async fn copy_one(
    from: &MailboxSync,
    message: &MessageRecord,
    to: &Destination,
) -> Result<Option<u32>, CrossError> {
    let uid = message.uid;
    let raw = match from.body(&message.graph_id).await {
        Ok(raw) => raw,
        Err(SyncError::Gone) => return Ok(None),
        Err(source) => return Err(CrossError::Read { uid, source }),
    };
    // \Deleted marked the message in its old folder only, as with a same-mailbox COPY.
    let flags = message.flags.with(Flags::DELETED, false);
    to.sync
        .append(
            &to.folder,
            &raw,
            flags,
            &message.keywords,
            message.internal_date,
        )
        .await
        .map(Some)
        .map_err(|source| {
            if source.is_too_large() {
                CrossError::TooBig {
                    uid,
                    size: raw.len(),
                    source,
                }
            } else {
                CrossError::Create { uid, source }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphError;
    use crate::sync::AppendError;

    fn status(status: u16, code: &str) -> GraphError {
        GraphError::Status {
            status,
            code: code.into(),
            message: "refused".into(),
        }
    }

    #[test]
    fn size_refusals_are_recognised() {
        let too_large = |e: GraphError| SyncError::Graph(e).is_too_large();
        assert!(too_large(status(413, "")));
        assert!(too_large(status(400, "ErrorMessageSizeExceeded")));
        assert!(!too_large(status(400, "ErrorInvalidIdMalformed")));
        assert!(!too_large(GraphError::Closed));
        // A file Graph refused while being attached, and text no request can carry.
        let attaching = SyncError::Append(AppendError::Attachment {
            name: "big.bin".into(),
            size: 40_000_000,
            source: status(413, "ErrorMessageSizeExceeded"),
        });
        assert!(attaching.is_too_large());
        assert!(SyncError::Append(AppendError::TextTooLarge { size: 5_000_000 }).is_too_large());
        assert!(!SyncError::Append(AppendError::Unparsable).is_too_large());
    }

    #[test]
    fn a_too_big_message_answers_toobig_naming_it() {
        let outcome = CrossError::TooBig {
            uid: 7,
            size: 5_000_000,
            source: SyncError::Append(AppendError::TextTooLarge { size: 5_000_100 }),
        }
        .into_outcome("COPY failed");
        assert!(!outcome.is_ok());
        let text = format!("{outcome:?}");
        assert!(text.contains("UID 7 has 5000000 bytes"), "{text}");
        assert!(text.contains("TOOBIG"), "{text}");
    }
}
