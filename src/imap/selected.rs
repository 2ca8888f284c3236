//! The selected folder as one session sees it: the sequence-number ↔ UID map and the flags
//! the client was last told, so changes from other sessions, Outlook or the sync engine can be
//! reported as EXISTS, EXPUNGE and FETCH FLAGS at the moments RFC 3501 allows.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use tokio::sync::watch;

use imap_next::imap_types::core::{Atom, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, FlagFetch};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::names::VisibleMailbox;
use crate::mailstore::{messages as stored, Flags, FolderRecord, MessageRecord, StoreResult};
use crate::sync::{HotFolder, MailboxSync};

/// The part of `set` that can name something when `largest` is the highest number in use
/// (`*`): numbers above it are dropped, and a range reaching past it ends at it. Iterating
/// `1:4294967295` would otherwise walk four billion numbers for a folder of ten messages.
/// None when nothing is left.
pub fn clamp_set(set: &SequenceSet, largest: NonZeroU32) -> Option<SequenceSet> {
    let kept: Vec<Sequence> = set
        .0
        .as_ref()
        .iter()
        .filter_map(|sequence| match sequence {
            Sequence::Single(a) => (a.expand(largest) <= largest).then(|| sequence.clone()),
            Sequence::Range(a, b) => {
                let (a, b) = (a.expand(largest), b.expand(largest));
                let (low, high) = (a.min(b), a.max(b));
                (low <= largest).then(|| {
                    Sequence::Range(SeqOrUid::Value(low), SeqOrUid::Value(high.min(largest)))
                })
            }
        })
        .collect();
    Vec1::try_from(kept).ok().map(SequenceSet)
}

pub(super) struct Selected {
    pub mailbox: VisibleMailbox,
    pub sync: Arc<MailboxSync>,
    pub folder: FolderRecord,
    pub read_only: bool,
    /// In sequence order: index + 1 is the sequence number.
    pub messages: Vec<MessageRecord>,
    /// Wakes when the account's store changed (sync, another session).
    pub changes: watch::Receiver<u64>,
    /// Keeps this folder on the sync engine's fast poll schedule while selected.
    pub _hot: HotFolder,
}

impl Selected {
    pub fn exists(&self) -> u32 {
        self.messages.len() as u32
    }

    /// Messages named by a sequence set (`uid` = UID set), as (sequence number, index).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(NonZeroU32, usize)> {
        let Some(last) = self.messages.last() else {
            return Vec::new();
        };
        if uid {
            let Some(largest) = NonZeroU32::new(last.uid) else {
                return Vec::new();
            };
            let by_uid: HashMap<u32, usize> = self
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| (m.uid, i))
                .collect();
            let Some(set) = clamp_set(set, largest) else {
                return Vec::new();
            };
            set.iter(largest)
                .filter_map(|u| by_uid.get(&u.get()).copied())
                .filter_map(|i| Some((NonZeroU32::new(i as u32 + 1)?, i)))
                .collect()
        } else {
            let Some(largest) = NonZeroU32::new(self.exists()) else {
                return Vec::new();
            };
            let Some(set) = clamp_set(set, largest) else {
                return Vec::new();
            };
            set.iter(largest)
                .filter(|s| s.get() <= self.exists())
                .map(|s| (s, s.get() as usize - 1))
                .collect()
        }
    }

    /// Resolves when the store may hold news for this folder.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // The sync engine is gone (shutdown): never wake again.
            std::future::pending::<()>().await;
        }
    }

    /// Re-reads the folder and reports what changed since the client was last told.
    /// `allow_expunge` is false during FETCH, STORE and SEARCH (RFC 3501 7.4.1): expunged
    /// messages then stay in the view until a later command may report them.
    pub async fn refresh(&mut self, allow_expunge: bool) -> StoreResult<Vec<Data<'static>>> {
        let folder_id = self.folder.id;
        let store = self.sync_store();
        let current = store
            .call(move |c| stored::list_messages(c, folder_id))
            .await?;
        Ok(self.apply(current, allow_expunge))
    }

    fn sync_store(&self) -> crate::mailstore::Store {
        self.sync.store().clone()
    }

    fn apply(&mut self, current: Vec<MessageRecord>, allow_expunge: bool) -> Vec<Data<'static>> {
        let mut out = Vec::new();
        let now: HashMap<u32, &MessageRecord> = current.iter().map(|m| (m.uid, m)).collect();
        if allow_expunge {
            // Highest first, so each EXPUNGE's sequence number is still valid when sent.
            for index in (0..self.messages.len()).rev() {
                if !now.contains_key(&self.messages[index].uid) {
                    self.messages.remove(index);
                    if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
                        out.push(Data::Expunge(seq));
                    }
                }
            }
        }
        for (index, known) in self.messages.iter_mut().enumerate() {
            if let Some(fresh) = now.get(&known.uid) {
                if fresh.flags != known.flags || fresh.keywords != known.keywords {
                    known.flags = fresh.flags;
                    known.keywords = fresh.keywords.clone();
                    known.modseq = fresh.modseq;
                    if let Some(seq) = NonZeroU32::new(index as u32 + 1) {
                        out.push(flags_data(seq, known));
                    }
                }
                if known.size.is_none() {
                    known.size = fresh.size;
                }
            }
        }
        let highest_known = self.messages.last().map(|m| m.uid).unwrap_or(0);
        let before = self.messages.len();
        self.messages
            .extend(current.into_iter().filter(|m| m.uid > highest_known));
        if self.messages.len() != before {
            out.push(Data::Exists(self.exists()));
        }
        out
    }
}

/// `* n FETCH (FLAGS (...))` for one message.
pub(super) fn flags_data(seq: NonZeroU32, message: &MessageRecord) -> Data<'static> {
    Data::Fetch {
        seq,
        items: Vec1::from(MessageDataItem::Flags(flag_list(message))),
    }
}

/// The IMAP flags of a message: system flags, then keywords that are valid atoms.
pub(super) fn flag_list(message: &MessageRecord) -> Vec<FlagFetch<'static>> {
    let mut flags = Vec::new();
    let system = [
        (Flags::SEEN, Flag::Seen),
        (Flags::ANSWERED, Flag::Answered),
        (Flags::FLAGGED, Flag::Flagged),
        (Flags::DELETED, Flag::Deleted),
        (Flags::DRAFT, Flag::Draft),
    ];
    for (bit, flag) in system {
        if message.flags.has(bit) {
            flags.push(FlagFetch::Flag(flag));
        }
    }
    if message.flags.has(Flags::FORWARDED) {
        if let Ok(atom) = Atom::try_from("$Forwarded") {
            flags.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    for category in message
        .keywords
        .split(crate::sync::CATEGORY_SEPARATOR)
        .filter(|k| !k.is_empty())
    {
        if let Ok(atom) = Atom::try_from(keyword_of_category(category)) {
            flags.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    flags
}

/// A Graph category as an IMAP keyword: an atom, so spaces and atom-specials become `_`.
pub(super) fn keyword_of_category(category: &str) -> String {
    category
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"(){%*\"\\]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
