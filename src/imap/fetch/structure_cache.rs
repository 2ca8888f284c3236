//! ENVELOPE, BODY and BODYSTRUCTURE of recently fetched messages, kept in memory as the bytes
//! a FETCH response carries, so that a client listing a folder again (every reconnect of many
//! clients does) needs neither the stored bytes, nor a MIME parse, nor an encoding pass. Safe to keep without any invalidation: the bytes served for
//! a message never change once stored (ARCHITECTURE invariant 2), and entries are keyed by the
//! mailbox and Graph's immutable id, as the bodies are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use imap_next::imap_types::fetch::MessageDataItem;

use super::response::encode_item;
use super::MessageView;

/// Messages whose structure is kept. A typical entry takes one to two KiB, so the cache
/// stays within some tens of MiB; a folder larger than this is served from the store.
pub const CAPACITY: usize = 20_000;

/// What a FETCH of the structure items sends for one message: each item encoded, its name
/// included (`ENVELOPE (...)`).
pub struct Structure {
    pub envelope: Box<[u8]>,
    pub body: Box<[u8]>,
    pub body_structure: Box<[u8]>,
}

impl Structure {
    pub fn of(view: &MessageView<'_>) -> Structure {
        let encoded = |item| encode_item(item).into_boxed_slice();
        Structure {
            envelope: encoded(MessageDataItem::Envelope(view.envelope())),
            body: encoded(MessageDataItem::Body(view.body_structure(false))),
            body_structure: encoded(MessageDataItem::BodyStructure(view.body_structure(true))),
        }
    }
}

pub struct StructureCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// By mailbox, then by Graph id: looked up without building a key.
    by_mailbox: HashMap<i64, HashMap<String, Entry>>,
    len: usize,
    /// Bumped on every use; an entry's last use decides what is dropped first.
    clock: u64,
}

struct Entry {
    structure: Arc<Structure>,
    used: u64,
}

impl StructureCache {
    pub fn new(capacity: usize) -> StructureCache {
        StructureCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, mailbox_id: i64, graph_id: &str) -> Option<Arc<Structure>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        let entry = entries.by_mailbox.get_mut(&mailbox_id)?.get_mut(graph_id)?;
        entry.used = now;
        Some(entry.structure.clone())
    }

    pub fn insert(&self, mailbox_id: i64, graph_id: &str, structure: Arc<Structure>) {
        let mut entries = self.lock();
        if entries.len >= self.capacity {
            entries.drop_least_used(self.capacity / 4 + 1);
        }
        entries.clock += 1;
        let used = entries.clock;
        let added = entries
            .by_mailbox
            .entry(mailbox_id)
            .or_default()
            .insert(graph_id.to_string(), Entry { structure, used })
            .is_none();
        entries.len += usize::from(added);
    }

    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Entries {
    /// Drops the `n` entries used longest ago, in one pass: evicting a batch at a time keeps
    /// the cost per insert constant on average.
    fn drop_least_used(&mut self, n: usize) {
        let mut uses: Vec<u64> = self
            .by_mailbox
            .values()
            .flat_map(|m| m.values().map(|e| e.used))
            .collect();
        if n >= uses.len() {
            self.by_mailbox.clear();
            self.len = 0;
            return;
        }
        let (_, cutoff, _) = uses.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        for messages in self.by_mailbox.values_mut() {
            messages.retain(|_, e| e.used > cutoff);
        }
        self.by_mailbox.retain(|_, m| !m.is_empty());
        self.len = self.by_mailbox.values().map(HashMap::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structure(subject: &str) -> Arc<Structure> {
        let raw = format!("Subject: {subject}\r\n\r\nbody\r\n");
        Arc::new(Structure::of(&MessageView::parse(raw.as_bytes())))
    }

    #[test]
    fn keeps_what_was_used_last_when_full() {
        let cache = StructureCache::new(4);
        for id in ["a", "b", "c", "d"] {
            cache.insert(1, id, structure(id));
        }
        assert!(cache.get(1, "a").is_some());
        cache.insert(1, "e", structure("e"));
        assert!(cache.len() <= 4);
        assert!(cache.get(1, "a").is_some(), "recently used stays");
        assert!(cache.get(1, "e").is_some(), "the new one is in");
        assert!(cache.get(1, "b").is_none(), "the least used went");
    }

    #[test]
    fn mailboxes_do_not_share_entries() {
        let cache = StructureCache::new(10);
        cache.insert(1, "same-id", structure("one"));
        assert!(cache.get(2, "same-id").is_none());
        let found = cache.get(1, "same-id").map(|s| s.envelope.clone());
        assert_eq!(found, Some(structure("one").envelope.clone()));
    }

    #[test]
    fn items_are_kept_as_a_fetch_response_carries_them() {
        let kept = structure("Quarterly report");
        let envelope = String::from_utf8_lossy(&kept.envelope).into_owned();
        assert!(
            envelope.starts_with("ENVELOPE (NIL \"Quarterly report\""),
            "{envelope}"
        );
        assert!(kept.body.starts_with(b"BODY (\"TEXT\" \"plain\""));
        assert!(kept
            .body_structure
            .starts_with(b"BODYSTRUCTURE (\"TEXT\" \"plain\""));
    }
}
