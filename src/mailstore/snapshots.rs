//! A folder's messages as the store holds them at one moment, shared by every IMAP session
//! that has the folder selected: a session keeps this one list instead of a copy of its own
//! (for a 10,000-message folder, about 2 MiB per session), and a change read by one session is
//! read from SQLite once, not once per session.
//!
//! A snapshot is valid while the connection has made no change since it was read
//! (`total_changes`): exact, whoever wrote. Snapshots live as long as a session holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rusqlite::Connection;

use super::{folders, messages, FolderRecord, MessageRecord, StoreResult};

/// The folder's record and its messages in UID order, read together.
#[derive(Debug, Clone)]
pub struct FolderSnapshot {
    pub folder: FolderRecord,
    pub messages: Arc<Vec<MessageRecord>>,
}

#[derive(Default)]
pub(super) struct Snapshots {
    by_folder: Mutex<HashMap<i64, Kept>>,
}

struct Kept {
    changes: u64,
    folder: FolderRecord,
    messages: Weak<Vec<MessageRecord>>,
}

impl Snapshots {
    /// The folder as the store has it now: the kept snapshot when nothing was written since,
    /// else a fresh read.
    pub(super) fn read(&self, conn: &Connection, folder_id: i64) -> StoreResult<FolderSnapshot> {
        let changes = conn.total_changes();
        if let Some(kept) = self.kept(folder_id, changes) {
            return Ok(kept);
        }
        let snapshot = FolderSnapshot {
            folder: folders::folder_by_id(conn, folder_id)?,
            messages: Arc::new(messages::list_messages(conn, folder_id)?),
        };
        let mut by_folder = self.lock();
        // Snapshots no session holds any more are dropped on the way.
        by_folder.retain(|_, kept| kept.messages.strong_count() > 0);
        by_folder.insert(
            folder_id,
            Kept {
                changes,
                folder: snapshot.folder.clone(),
                messages: Arc::downgrade(&snapshot.messages),
            },
        );
        Ok(snapshot)
    }

    fn kept(&self, folder_id: i64, changes: u64) -> Option<FolderSnapshot> {
        let by_folder = self.lock();
        let kept = by_folder.get(&folder_id).filter(|k| k.changes == changes)?;
        Some(FolderSnapshot {
            folder: kept.folder.clone(),
            messages: kept.messages.upgrade()?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Kept>> {
        self.by_folder.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailstore::{messages::apply_changes, Flags, MessageUpsert, Store, StoreResult};

    fn message(id: &str) -> MessageUpsert {
        MessageUpsert {
            graph_id: id.into(),
            flags: Flags::default(),
            keywords: String::new(),
            internal_date: 0,
            size_estimate: None,
        }
    }

    #[tokio::test]
    async fn readers_share_a_snapshot_until_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let folder = store
            .call(|c| -> StoreResult<FolderRecord> {
                let folder = folders::test_inbox(c)?;
                apply_changes(c, folder.id, &[message("m1"), message("m2")], &[])?;
                Ok(folder)
            })
            .await
            .expect("folder");
        let first = store.folder_snapshot(folder.id).await.expect("read");
        let second = store.folder_snapshot(folder.id).await.expect("read");
        assert!(Arc::ptr_eq(&first.messages, &second.messages), "shared");
        assert_eq!(first.messages.len(), 2);

        let id = folder.id;
        store
            .call(move |c| apply_changes(c, id, &[message("m3")], &[]).map(|_| ()))
            .await
            .expect("write");
        let third = store.folder_snapshot(folder.id).await.expect("read");
        assert!(
            !Arc::ptr_eq(&first.messages, &third.messages),
            "a write ends it"
        );
        assert_eq!(third.messages.len(), 3);
        assert!(third.folder.uidnext > first.folder.uidnext);

        // Once no one holds a snapshot, the next read is a fresh one.
        drop((first, second, third));
        let fourth = store.folder_snapshot(folder.id).await.expect("read");
        assert_eq!(fourth.messages.len(), 3);
    }
}
