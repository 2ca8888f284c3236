//! The selected folder as one session sees it: the sequence-number ↔ UID map and the flags
//! the client was last told, so changes from other sessions, Outlook or the sync engine can be
//! reported as EXISTS, EXPUNGE (or VANISHED, once QRESYNC is enabled) and FETCH FLAGS at the
//! moments RFC 3501 allows.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

use tokio::sync::watch;

use imap_next::imap_types::core::{Atom, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, FlagFetch};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::names::VisibleMailbox;
use crate::mailstore::{Flags, FolderRecord, MessageRecord, StoreResult};
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
    /// CONDSTORE is enabled (RFC 7162): FETCH responses carry UID and MODSEQ.
    pub condstore: bool,
    /// QRESYNC is enabled: expunges are reported as VANISHED with UIDs.
    pub qresync: bool,
    /// In sequence order: index + 1 is the sequence number. Usually the store's shared
    /// snapshot of the folder; a session's own copy only while it knows something the
    /// snapshot does not say yet (its own flag change, an expunge not reported yet).
    pub messages: Arc<Vec<MessageRecord>>,
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
        let snapshot = self.sync.store().folder_snapshot(self.folder.id).await?;
        // HIGHESTMODSEQ and UIDNEXT are only taken over once everything before them was
        // reported, expunges included.
        if allow_expunge {
            self.folder.highest_modseq = snapshot.folder.highest_modseq;
            self.folder.uidnext = snapshot.folder.uidnext;
        }
        Ok(self.apply(snapshot.messages, allow_expunge))
    }

    /// Reports the difference between the view and `current`, then takes `current` over
    /// (shared) when the view has become exactly it.
    fn apply(
        &mut self,
        current: Arc<Vec<MessageRecord>>,
        allow_expunge: bool,
    ) -> Vec<Data<'static>> {
        if Arc::ptr_eq(&self.messages, &current) {
            return Vec::new();
        }
        let now: HashMap<u32, &MessageRecord> = current.iter().map(|m| (m.uid, m)).collect();
        let gone: Vec<usize> = (0..self.messages.len())
            .filter(|&i| !now.contains_key(&self.messages[i].uid))
            .collect();
        let mut out = Vec::new();
        let reported_gone = allow_expunge || gone.is_empty();
        if allow_expunge {
            out.extend(self.expunge_responses(&gone));
        }
        // What the view holds after this: the known messages (without the expunged ones once
        // they are reported), each as the store has it now, then the new ones.
        let mut next: Vec<MessageRecord> = Vec::with_capacity(current.len());
        for known in self.messages.iter() {
            match now.get(&known.uid) {
                Some(fresh) => {
                    if self.reportable_change(known, fresh) {
                        if let Some(seq) = NonZeroU32::new(next.len() as u32 + 1) {
                            out.push(self.flags_data(seq, fresh, false));
                        }
                    }
                    next.push((*fresh).clone());
                }
                None if !allow_expunge => next.push(known.clone()),
                None => {}
            }
        }
        let highest_known = self.messages.last().map(|m| m.uid).unwrap_or(0);
        let before = next.len();
        next.extend(current.iter().filter(|m| m.uid > highest_known).cloned());
        if next.len() != before {
            out.push(Data::Exists(next.len() as u32));
        }
        self.messages = if reported_gone && next.len() == current.len() {
            current
        } else {
            Arc::new(next)
        };
        out
    }

    /// Whether a client must hear of how `fresh` differs from what it was told (`known`).
    fn reportable_change(&self, known: &MessageRecord, fresh: &MessageRecord) -> bool {
        fresh.flags != known.flags
            || fresh.keywords != known.keywords
            || (self.condstore && fresh.modseq != known.modseq)
    }

    /// What tells the client that the messages at `indexes` are gone: one EXPUNGE per
    /// message, highest sequence number first so each number is still right when read, or
    /// with QRESYNC a single VANISHED naming their UIDs.
    fn expunge_responses(&self, indexes: &[usize]) -> Vec<Data<'static>> {
        let mut sorted: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|&i| i < self.messages.len())
            .collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        if self.qresync {
            let mut uids: Vec<u32> = sorted.iter().map(|&i| self.messages[i].uid).collect();
            uids.sort_unstable();
            return sequence_set(&uids)
                .map(|known_uids| Data::Vanished {
                    earlier: false,
                    known_uids,
                })
                .into_iter()
                .collect();
        }
        sorted
            .iter()
            .filter_map(|&i| NonZeroU32::new(i as u32 + 1))
            .map(Data::Expunge)
            .collect()
    }

    /// Removes messages (by index) from the view and returns what tells the client.
    pub fn remove(&mut self, indexes: &[usize]) -> Vec<Data<'static>> {
        let out = self.expunge_responses(indexes);
        let gone: std::collections::HashSet<usize> = indexes.iter().copied().collect();
        let kept: Vec<MessageRecord> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        self.messages = Arc::new(kept);
        out
    }

    /// `* n FETCH (FLAGS (...))` for a message; with CONDSTORE also its UID and MODSEQ
    /// (RFC 7162 3.1.4), and the UID whenever `uid` asks for it (UID STORE, UID FETCH).
    pub fn flags_data(&self, seq: NonZeroU32, message: &MessageRecord, uid: bool) -> Data<'static> {
        let mut items = Vec::with_capacity(3);
        if uid || self.condstore {
            if let Some(u) = NonZeroU32::new(message.uid) {
                items.push(MessageDataItem::Uid(u));
            }
        }
        items.push(MessageDataItem::Flags(flag_list(message)));
        if self.condstore {
            items.push(modseq_item(message));
        }
        Data::Fetch {
            seq,
            items: Vec1::unvalidated(items),
        }
    }

    /// The sequence number and index of the message with this UID.
    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }
}

/// `MODSEQ (n)` of a message (a MODSEQ is never 0 in the store).
pub(super) fn modseq_item(message: &MessageRecord) -> MessageDataItem<'static> {
    MessageDataItem::ModSeq(NonZeroU64::new(message.modseq).unwrap_or(NonZeroU64::MIN))
}

/// Numbers in ascending order as a sequence set with runs folded into ranges; None when empty.
pub(super) fn sequence_set(sorted: &[u32]) -> Option<SequenceSet> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in sorted {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(n) => *end = n,
            Some((_, end)) if *end == n => {}
            _ => runs.push((n, n)),
        }
    }
    ranges_set(&runs)
}

/// Inclusive ranges as a sequence set; None when there are none.
pub(super) fn ranges_set(ranges: &[(u32, u32)]) -> Option<SequenceSet> {
    let value = |n: u32| NonZeroU32::new(n).map(SeqOrUid::Value);
    let items: Vec<Sequence> = ranges
        .iter()
        .filter_map(|&(a, b)| {
            Some(if a == b {
                Sequence::Single(value(a)?)
            } else {
                Sequence::Range(value(a)?, value(b)?)
            })
        })
        .collect();
    Vec1::try_from(items).ok().map(SequenceSet)
}

/// A sequence set as inclusive ranges, `*` being `largest`.
pub(super) fn set_ranges(set: &SequenceSet, largest: u32) -> Vec<(u32, u32)> {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0
        .as_ref()
        .iter()
        .map(|s| match s {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(a, b) => {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            }
        })
        .collect()
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
        if let Ok(atom) = Atom::try_from(super::keywords::keyword_of_category(category)) {
            flags.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    flags
}
