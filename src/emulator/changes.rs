//! Changes to messages, and the indexes they keep current.
//!
//! Every change bumps the mailbox's sequence and stamps the item with it; items leaving a folder
//! leave a tombstone. Three indexes make requests cost what they return rather than the size of
//! the mailbox: per folder, messages by `receivedDateTime` and an unread count; per mailbox,
//! messages by received time (for `/me/messages`) and by the sequence of their last change (for
//! delta replays). Handlers may set a message's fields directly and then call [`Mailbox::touch`]
//! (or move it): `reindex` compares the item with what the indexes hold and fixes them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::errors::{GraphError, GraphResult};
use super::ids;
use super::state::{FolderKey, Indexed, Mailbox, Message, MsgKey, NewMessage, Tombstone};

/// How long tombstones are kept, so how old a delta token can be and still answer
/// *(unverified: Graph does not document how long an Outlook delta token stays valid)*.
pub const RETENTION_DAYS: i64 = 7;
/// Tombstones kept per mailbox at most, whatever their age, to bound memory.
const MAX_TOMBSTONES: usize = 200_000;

/// What happened to a message, for change notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ChangeEvent {
    pub kind: EventKind,
    pub folder: FolderKey,
    pub rest_id: String,
    pub immutable_id: String,
    /// `@odata.etag` after the change (none for a deletion).
    pub etag: Option<String>,
}

impl Mailbox {
    /// Takes the recorded message changes.
    pub fn take_events(&mut self) -> Vec<ChangeEvent> {
        std::mem::take(&mut self.events)
    }

    fn record(&mut self, kind: EventKind, key: MsgKey) {
        if !self.record_events {
            return;
        }
        if let Some(m) = self.messages.get(&key) {
            let ev = ChangeEvent {
                kind,
                folder: m.folder,
                rest_id: m.rest_id.clone(),
                immutable_id: m.immutable_id.clone(),
                etag: Some(format!("W/\"{}\"", m.change_key())),
            };
            self.events.push(ev);
        }
    }

    fn record_removal(&mut self, t: &Tombstone) {
        if self.record_events {
            self.events.push(ChangeEvent {
                kind: EventKind::Deleted,
                folder: t.folder,
                rest_id: t.rest_id.clone(),
                immutable_id: t.immutable_id.clone(),
                etag: None,
            });
        }
    }

    /// Inserts a message with fresh random ids (anything created at run time).
    pub fn insert_message(&mut self, folder: FolderKey, m: NewMessage) -> MsgKey {
        self.insert_message_with_ids(folder, m, None)
    }

    /// Inserts a message with given (rest, immutable) ids, as fixtures and dumps do. Ids already
    /// taken are replaced by random ones rather than letting two items share one.
    pub fn insert_message_with_ids(
        &mut self,
        folder: FolderKey,
        m: NewMessage,
        ids: Option<(String, String)>,
    ) -> MsgKey {
        let (rest_id, immutable_id) = ids
            .filter(|(r, i)| {
                r != i && !self.msg_by_id.contains_key(r) && !self.msg_by_id.contains_key(i)
            })
            .unwrap_or_else(|| (ids::rest_item_id(), ids::immutable_item_id()));
        let key = self.next();
        let seq = self.bump();
        let now = Utc::now();
        let msg = Message {
            key,
            folder,
            rest_id,
            immutable_id,
            mime: m.mime,
            parsed: Arc::new(m.parsed),
            created: now,
            modified: now,
            received: m.received,
            is_read: m.is_read,
            is_draft: m.is_draft,
            flag_status: m.flag_status,
            categories: m.categories,
            ext: BTreeMap::new(),
            change_no: 1,
            seq,
            entered_seq: seq,
            indexed: Indexed::default(),
        };
        self.msg_by_id.insert(msg.rest_id.clone(), key);
        self.msg_by_id.insert(msg.immutable_id.clone(), key);
        self.messages.insert(key, msg);
        self.index_in(key, folder);
        if let Some(f) = self.folders.get_mut(&folder) {
            f.seq = seq;
        }
        self.record(EventKind::Created, key);
        key
    }

    /// Adds a message (already in `messages`, `folder` set) to the indexes.
    fn index_in(&mut self, key: MsgKey, folder: FolderKey) {
        let Some(m) = self.messages.get_mut(&key) else {
            return;
        };
        m.indexed = Indexed {
            received: m.received,
            unread: !m.is_read,
            seq: m.seq,
        };
        let ix = m.indexed;
        self.changed.insert(ix.seq, key);
        self.by_received.insert((ix.received, key));
        if let Some(f) = self.folders.get_mut(&folder) {
            f.messages.insert(key);
            f.by_received.insert((ix.received, key));
            f.unread += usize::from(ix.unread);
        }
    }

    /// Takes a message out of the indexes, as they hold it.
    fn unindex(&mut self, key: MsgKey) {
        let Some(m) = self.messages.get(&key) else {
            return;
        };
        let (ix, folder) = (m.indexed, m.folder);
        self.changed.remove(&ix.seq);
        self.by_received.remove(&(ix.received, key));
        if let Some(f) = self.folders.get_mut(&folder) {
            f.messages.remove(&key);
            f.by_received.remove(&(ix.received, key));
            f.unread -= usize::from(ix.unread).min(f.unread);
        }
    }

    /// Brings the indexes in line with the message's current fields.
    fn reindex(&mut self, key: MsgKey) {
        let Some(m) = self.messages.get(&key) else {
            return;
        };
        let ix = m.indexed;
        if ix.received != m.received || ix.unread == m.is_read || ix.seq != m.seq {
            let folder = m.folder;
            self.unindex(key);
            self.index_in(key, folder);
        }
    }

    /// Records an update of a message's properties (it shows in the next delta).
    pub fn touch(&mut self, key: MsgKey) {
        let seq = self.bump();
        let folder = match self.messages.get_mut(&key) {
            Some(m) => {
                m.seq = seq;
                m.change_no += 1;
                m.modified = Utc::now();
                m.folder
            }
            None => return,
        };
        self.reindex(key);
        self.record(EventKind::Updated, key);
        // Read state changes the folder's unread count, which folder delta reports.
        if let Some(f) = self.folders.get_mut(&folder) {
            f.seq = seq;
        }
    }

    /// Moves a message. Without immutable ids Exchange gives the moved item a new id.
    pub fn move_message(&mut self, key: MsgKey, dest: FolderKey) -> GraphResult<()> {
        if !self.messages.contains_key(&key) {
            return Err(GraphError::item_not_found());
        }
        self.unindex(key);
        let seq = self.bump();
        let new_rest = ids::rest_item_id();
        let msg = self
            .messages
            .get_mut(&key)
            .ok_or_else(GraphError::item_not_found)?;
        let from = msg.folder;
        let old_rest = std::mem::replace(&mut msg.rest_id, new_rest.clone());
        let immutable_id = msg.immutable_id.clone();
        msg.folder = dest;
        msg.seq = seq;
        msg.entered_seq = seq;
        msg.change_no += 1;
        msg.modified = Utc::now();
        self.msg_by_id.remove(&old_rest);
        self.msg_by_id.insert(new_rest, key);
        let t = Tombstone {
            seq,
            at: Utc::now(),
            folder: from,
            rest_id: old_rest,
            immutable_id,
        };
        // A move is a deletion from one folder and a creation in another *(unverified: how
        // Graph reports moves to a folder subscription)*.
        self.record_removal(&t);
        self.tombstones.push_back(t);
        self.index_in(key, dest);
        self.record(EventKind::Created, key);
        for f in [from, dest] {
            if let Some(f) = self.folders.get_mut(&f) {
                f.seq = seq;
            }
        }
        self.prune_tombstones(Utc::now());
        Ok(())
    }

    /// Removes a message for good (permanent delete, or the end of a deleted folder).
    pub fn remove_message(&mut self, key: MsgKey) -> GraphResult<()> {
        if !self.messages.contains_key(&key) {
            return Err(GraphError::item_not_found());
        }
        self.unindex(key);
        let seq = self.bump();
        let msg = self
            .messages
            .remove(&key)
            .ok_or_else(GraphError::item_not_found)?;
        self.msg_by_id.remove(&msg.rest_id);
        self.msg_by_id.remove(&msg.immutable_id);
        if let Some(f) = self.folders.get_mut(&msg.folder) {
            f.seq = seq;
        }
        let t = Tombstone {
            seq,
            at: Utc::now(),
            folder: msg.folder,
            rest_id: msg.rest_id,
            immutable_id: msg.immutable_id,
        };
        self.record_removal(&t);
        self.tombstones.push_back(t);
        self.prune_tombstones(Utc::now());
        Ok(())
    }

    /// Copies a message: a new item with new ids, the same (shared) content and state.
    pub fn copy_message(&mut self, key: MsgKey, dest: FolderKey) -> GraphResult<MsgKey> {
        let src = self.message(key)?;
        let ext = src.ext.clone();
        let nm = NewMessage {
            mime: src.mime.clone(),
            parsed: src.parsed.as_ref().clone(),
            is_read: src.is_read,
            is_draft: src.is_draft,
            flag_status: src.flag_status.clone(),
            categories: src.categories.clone(),
            received: src.received,
        };
        let new = self.insert_message(dest, nm);
        if let Some(m) = self.messages.get_mut(&new) {
            m.ext = ext;
        }
        Ok(new)
    }

    /// Tombstones after `since` (oldest first).
    pub fn tombstones_after(&self, since: u64) -> impl Iterator<Item = &Tombstone> {
        let start = self.tombstones.partition_point(|t| t.seq <= since);
        self.tombstones.range(start..)
    }

    /// Messages changed after `since`, in the order of their last change.
    pub fn changed_after(&self, since: u64) -> impl Iterator<Item = &Message> {
        self.changed
            .range(since.saturating_add(1)..)
            .filter_map(|(_, k)| self.messages.get(k))
    }

    /// Whether a delta token issued at `since` can still be answered completely.
    pub fn can_replay(&self, since: u64) -> bool {
        since >= self.horizon
    }

    /// Drops tombstones past the retention (or beyond the cap); tokens that needed them die.
    pub fn prune_tombstones(&mut self, now: DateTime<Utc>) {
        let cutoff = now - Duration::days(RETENTION_DAYS);
        while let Some(t) = self.tombstones.front() {
            if t.at >= cutoff && self.tombstones.len() <= MAX_TOMBSTONES {
                break;
            }
            self.horizon = self.horizon.max(t.seq);
            self.tombstones.pop_front();
        }
        let keep_from = self
            .folder_tombstones
            .partition_point(|(seq, _)| *seq <= self.horizon);
        self.folder_tombstones.drain(..keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> NewMessage {
        NewMessage {
            mime: bytes::Bytes::from_static(b"Subject: x\r\n\r\nx\r\n"),
            parsed: super::super::mime::Parsed::default(),
            is_read: false,
            is_draft: false,
            flag_status: "notFlagged".into(),
            categories: Vec::new(),
            received: Utc::now(),
        }
    }

    #[test]
    fn indexes_follow_changes_and_old_tombstones_end_replays() {
        let mut mb = Mailbox::with_seed("a@b.test", "A", Vec::new(), None);
        let inbox = mb.wk("inbox").unwrap_or_default();
        let archive = mb.wk("archive").unwrap_or_default();
        let k = mb.insert_message(inbox, message());
        assert_eq!(mb.folders[&inbox].unread, 1);
        let since = mb.seq;
        if let Some(m) = mb.messages.get_mut(&k) {
            m.is_read = true;
        }
        mb.touch(k);
        assert_eq!(mb.folders[&inbox].unread, 0);
        assert_eq!(mb.changed_after(since).count(), 1);
        assert!(mb.move_message(k, archive).is_ok());
        assert_eq!(mb.folders[&archive].by_received.len(), 1);
        assert!(mb.folders[&inbox].by_received.is_empty());
        assert_eq!(mb.tombstones_after(since).count(), 1);
        assert!(mb.can_replay(since));
        mb.prune_tombstones(Utc::now() + Duration::days(RETENTION_DAYS + 1));
        assert!(!mb.can_replay(since), "the tombstone it needs is gone");
        assert!(mb.can_replay(mb.seq));
    }
}
