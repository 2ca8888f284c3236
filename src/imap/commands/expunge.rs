//! EXPUNGE, UID EXPUNGE (RFC 4315) and the silent expunge of CLOSE: messages marked
//! \Deleted are deleted in Graph, to Deleted Items, or for good when they already are there.

use imap_next::imap_types::sequence::SequenceSet;

use super::{sync_failure, Outcome};
use crate::imap::session::Session;
use crate::mailstore::accounts::{self, DeleteBehaviour};
use crate::mailstore::{Flags, SpecialUse};
use crate::sync::SyncError;

/// Expunges the \Deleted messages (only those in `only`, for UID EXPUNGE). With `report`,
/// each removal is sent as an untagged EXPUNGE (VANISHED with QRESYNC).
pub async fn expunge(session: &mut Session, only: Option<SequenceSet>, report: bool) -> Outcome {
    let bridge = session.bridge.clone();
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    if selected.read_only {
        return Outcome::no("The mailbox is open read-only (EXAMINE)").with_atom_code("READ-ONLY");
    }
    let allowed: Option<Vec<usize>> = only.as_ref().map(|set| {
        selected
            .resolve(set, true)
            .into_iter()
            .map(|(_, i)| i)
            .collect()
    });
    // Deleted Items is where deleted mail goes; deleting there is for good, and so is every
    // delete of a mailbox whose administrator chose `delete_behaviour = permanent`.
    let mailbox_id = selected.mailbox.record.id;
    let always_permanent = bridge
        .store
        .call(move |c| accounts::mailbox_settings(c, mailbox_id))
        .await
        .map(|s| s.delete_behaviour == DeleteBehaviour::Permanent)
        .unwrap_or(false);
    let permanent = always_permanent || selected.folder.special_use == Some(SpecialUse::Trash);
    let mut removed = Vec::new();
    for index in 0..selected.messages.len() {
        let message = selected.messages[index].clone();
        if !message.flags.has(Flags::DELETED)
            || allowed.as_ref().is_some_and(|a| !a.contains(&index))
        {
            continue;
        }
        match selected
            .sync
            .delete_message(&selected.folder, &message, permanent)
            .await
        {
            Ok(()) | Err(SyncError::Gone) => removed.push(index),
            Err(e) => {
                remove_from_view(session, &removed, report);
                return sync_failure("EXPUNGE stopped", e);
            }
        }
    }
    remove_from_view(session, &removed, report);
    Outcome::ok("EXPUNGE completed")
}

fn remove_from_view(session: &mut Session, removed: &[usize], report: bool) {
    let Some(selected) = session.selected.as_mut() else {
        return;
    };
    let told = selected.remove(removed);
    if report {
        session.pending.extend(told.into_iter().map(Into::into));
    }
}

/// CLOSE: expunge silently (when writable), then leave the folder.
pub async fn close(session: &mut Session) -> Outcome {
    let writable = session.selected.as_ref().is_some_and(|s| !s.read_only);
    if writable {
        let outcome = expunge(session, None, false).await;
        if !outcome.is_ok() {
            return outcome;
        }
    }
    session.selected = None;
    Outcome::ok("CLOSE completed")
}
