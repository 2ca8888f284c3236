//! STORE and UID STORE: flag changes are written to Graph first and answered OK only once
//! Graph accepted them (ARCHITECTURE invariant 4).

use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::SequenceSet;

use super::Outcome;
use crate::imap::selected::flag_list;
use crate::imap::session::Session;
use crate::mailstore::Flags;
use crate::sync::SyncError;

/// The flags that reach Graph so far: \Seen (isRead) and \Flagged (flag.flagStatus).
fn supported_bit(flag: &Flag<'_>) -> Option<u32> {
    match flag {
        Flag::Seen => Some(Flags::SEEN),
        Flag::Flagged => Some(Flags::FLAGGED),
        _ => None,
    }
}

pub async fn store(
    session: &mut Session,
    set: SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: Vec<Flag<'static>>,
    uid: bool,
) -> Outcome {
    let Some(selected) = session.selected.as_mut() else {
        return Outcome::bad("No mailbox selected");
    };
    if selected.read_only {
        return Outcome::no("The mailbox is open read-only (EXAMINE)").with_atom_code("READ-ONLY");
    }
    let mut bits = 0;
    for flag in &flags {
        match supported_bit(flag) {
            Some(bit) => bits |= bit,
            None => {
                return Outcome::no(format!(
                    "Only \\Seen and \\Flagged can be stored in Microsoft 365 by this bridge yet, not {flag}"
                ))
            }
        }
    }
    let targets = selected.resolve(&set, uid);
    let mut answers = Vec::new();
    for (seq, index) in targets {
        let message = selected.messages[index].clone();
        let new = apply(message.flags, kind, bits);
        if new != message.flags {
            let result = selected
                .sync
                .store_flags(&selected.folder, message.uid, &message.graph_id, message.flags, new, &message.keywords)
                .await;
            match result {
                Ok(modseq) => {
                    let known = &mut selected.messages[index];
                    known.flags = new;
                    known.modseq = modseq;
                }
                // Deleted in Outlook meanwhile: nothing to change; the next NOOP expunges it.
                Err(SyncError::Gone) => continue,
                Err(e) => {
                    session.pending.extend(answers.into_iter().map(Into::into));
                    return Outcome::no(format!("Microsoft 365 refused the change: {e}"));
                }
            }
        }
        if response == StoreResponse::Answer {
            answers.push(fetch_flags(seq, uid, &selected.messages[index]));
        }
    }
    session.pending.extend(answers.into_iter().map(Into::into));
    match selected.refresh(false).await {
        Ok(updates) => session.pending.extend(updates.into_iter().map(Into::into)),
        Err(e) => tracing::warn!(error = %e, "refresh after STORE failed"),
    }
    Outcome::ok("STORE completed")
}

/// The flags a message has after `kind` applies `bits` (only the supported flags change).
fn apply(old: Flags, kind: StoreType, bits: u32) -> Flags {
    let supported = Flags::SEEN | Flags::FLAGGED;
    match kind {
        StoreType::Add => Flags(old.0 | bits),
        StoreType::Remove => Flags(old.0 & !bits),
        StoreType::Replace => Flags((old.0 & !supported) | bits),
    }
}

fn fetch_flags(seq: NonZeroU32, uid: bool, message: &crate::mailstore::MessageRecord) -> Data<'static> {
    let mut items = vec![MessageDataItem::Flags(flag_list(message))];
    if uid {
        if let Some(u) = NonZeroU32::new(message.uid) {
            items.push(MessageDataItem::Uid(u));
        }
    }
    Data::Fetch {
        seq,
        items: Vec1::unvalidated(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_change_only_supported_flags() {
        let deleted_seen = Flags(Flags::DELETED | Flags::SEEN);
        assert_eq!(
            apply(deleted_seen, StoreType::Replace, Flags::FLAGGED),
            Flags(Flags::DELETED | Flags::FLAGGED)
        );
        assert_eq!(
            apply(deleted_seen, StoreType::Remove, Flags::SEEN),
            Flags(Flags::DELETED)
        );
        assert_eq!(
            apply(Flags::default(), StoreType::Add, Flags::SEEN | Flags::FLAGGED),
            Flags(Flags::SEEN | Flags::FLAGGED)
        );
    }
}
