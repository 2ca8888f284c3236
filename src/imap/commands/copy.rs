//! COPY, MOVE and their UID forms (RFC 3501, RFC 6851), answered with COPYUID (RFC 4315).
//! Inside one Microsoft 365 mailbox Graph copies and moves; between two mailboxes see
//! [`super::cross_copy`].

use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Status};
use imap_next::imap_types::sequence::SequenceSet;

use super::cross_copy::{self, Destination};
use super::{locate, sync_failure, Outcome};
use crate::imap::session::Session;
use crate::mailstore::FolderRecord;
use crate::sync::{MailboxSync, SyncError};

pub async fn copy_or_move(
    session: &mut Session,
    set: SequenceSet,
    mailbox: Mailbox<'static>,
    uid: bool,
    is_move: bool,
) -> Outcome {
    let located = match locate(session, &mailbox).await {
        Ok(located) => located,
        Err(outcome) => return outcome,
    };
    let Some(target) = located.folder else {
        return Outcome::no(format!("No such mailbox: {}", located.path))
            .with_atom_code("TRYCREATE");
    };
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    if is_move && selected.read_only {
        return Outcome::no("The mailbox is open read-only (EXAMINE)").with_atom_code("READ-ONLY");
    }
    let targets = selected.resolve(&set, uid);
    if targets.is_empty() && !uid {
        return Outcome::bad("No messages in that sequence set");
    }
    if located.mailbox.record.account_id() != selected.mailbox.record.account_id() {
        let indexes = targets.iter().map(|(_, index)| *index).collect();
        let to = Destination {
            sync: located.sync,
            folder: target,
        };
        return cross_copy::copy_or_move(session, indexes, to, is_move).await;
    }
    let mut pairs = Vec::new();
    let mut moved_indexes = Vec::new();
    for (_, index) in &targets {
        let message = selected.messages[*index].clone();
        let result = if is_move {
            selected
                .sync
                .move_message(&selected.folder, &message, &target)
                .await
        } else {
            selected.sync.copy_message(&message, &target).await
        };
        match result {
            Ok(new_uid) => {
                pairs.push((message.uid, new_uid));
                moved_indexes.push(*index);
            }
            // Deleted in Outlook meanwhile: nothing to copy; the next NOOP expunges it.
            Err(SyncError::Gone) => {}
            Err(e) => {
                if !is_move {
                    undo_copies(&selected.sync, &target, &pairs).await;
                }
                let verb = if is_move { "MOVE" } else { "COPY" };
                return sync_failure(&format!("{verb} failed"), e);
            }
        }
    }
    let code = copy_uid(target.uidvalidity, &pairs);
    if is_move {
        // RFC 6851: COPYUID goes in an untagged OK before the EXPUNGEs.
        if let Some(code) = code {
            if let Ok(status) = Status::ok(None, Some(code), "Moved") {
                session.pending.push(status.into());
            }
        }
        expunge_from_view(session, &moved_indexes);
        return Outcome::ok("MOVE completed");
    }
    if let Some(selected) = session.selected.as_mut() {
        if let Ok(updates) = selected.refresh(false).await {
            session.pending.extend(updates.into_iter().map(Into::into));
        }
    }
    match code {
        Some(code) => Outcome::ok("COPY completed").with_code(code),
        None => Outcome::ok("COPY completed"),
    }
}

/// RFC 3501: a failed COPY leaves the destination as it was. `sync` is the engine of the
/// mailbox `target` belongs to.
pub(super) async fn undo_copies(sync: &MailboxSync, target: &FolderRecord, pairs: &[(u32, u32)]) {
    for (_, new_uid) in pairs {
        let (folder_id, uid) = (target.id, *new_uid);
        let copy = sync
            .store()
            .call(move |c| crate::mailstore::messages::message_by_uid(c, folder_id, uid))
            .await;
        if let Ok(Some(copy)) = copy {
            if let Err(e) = sync.delete_message(target, &copy, true).await {
                tracing::warn!(error = %e, "cannot undo a partial COPY");
            }
        }
    }
}

/// Removes moved messages from the view and reports them (EXPUNGE, or VANISHED with QRESYNC).
pub(super) fn expunge_from_view(session: &mut Session, indexes: &[usize]) {
    let Some(selected) = session.selected.as_mut() else {
        return;
    };
    let told = selected.remove(indexes);
    session.pending.extend(told.into_iter().map(Into::into));
}

pub(super) fn copy_uid(uidvalidity: u32, pairs: &[(u32, u32)]) -> Option<Code<'static>> {
    let validity = NonZeroU32::new(uidvalidity)?;
    let source = uid_set(pairs.iter().map(|p| p.0))?;
    let destination = uid_set(pairs.iter().map(|p| p.1))?;
    Some(Code::CopyUid {
        uid_validity: validity,
        source,
        destination,
    })
}

/// A UID set in the given order (COPYUID pairs source and destination by position, so the
/// order must not change); consecutive runs become ranges.
pub fn uid_set(uids: impl Iterator<Item = u32>) -> Option<UidSet> {
    let mut elements: Vec<UidElement> = Vec::new();
    for uid in uids.filter_map(NonZeroU32::new) {
        match elements.last_mut() {
            Some(UidElement::Single(start)) if start.get().checked_add(1) == Some(uid.get()) => {
                *elements.last_mut()? = UidElement::Range(*start, uid);
            }
            Some(UidElement::Range(_, end)) if end.get().checked_add(1) == Some(uid.get()) => {
                *end = uid;
            }
            _ => elements.push(UidElement::Single(uid)),
        }
    }
    Vec1::try_from(elements).ok().map(UidSet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_keep_order_and_fold_runs() {
        let set = uid_set([3, 4, 5, 9, 2].into_iter()).expect("set");
        let parts: Vec<String> = set
            .0
            .as_ref()
            .iter()
            .map(|e| match e {
                UidElement::Single(u) => u.to_string(),
                UidElement::Range(a, b) => format!("{a}:{b}"),
            })
            .collect();
        assert_eq!(parts, vec!["3:5", "9", "2"]);
        assert!(uid_set(std::iter::empty()).is_none());
    }
}
