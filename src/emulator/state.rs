//! The emulated tenant: mailboxes, folders, messages, and the change log that delta reads.
//!
//! Every change to a message bumps its mailbox's sequence number and stamps the item with it;
//! items leaving a folder leave a tombstone. A delta token is just "changes after sequence N in
//! folder F", so replaying it is a scan, and tokens cost nothing to keep.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::errors::{GraphError, GraphResult};
use super::ids;
use super::mime::Parsed;

pub type FolderKey = u64;
pub type MsgKey = u64;

/// Well-known folder names Graph accepts in place of an id (case-insensitive).
pub const WELL_KNOWN: &[&str] = &[
    "archive",
    "clutter",
    "conflicts",
    "conversationhistory",
    "deleteditems",
    "drafts",
    "inbox",
    "junkemail",
    "localfailures",
    "msgfolderroot",
    "outbox",
    "recoverableitemsdeletions",
    "scheduled",
    "searchfolders",
    "sentitems",
    "serverfailures",
    "syncissues",
];

#[derive(Clone, Debug)]
pub struct Folder {
    pub key: FolderKey,
    pub id: String,
    pub display_name: String,
    pub parent: Option<FolderKey>,
    pub hidden: bool,
    pub well_known: Option<&'static str>,
    pub messages: BTreeSet<MsgKey>,
    /// The same messages ordered by `receivedDateTime`, for listing pages without sorting.
    pub by_received: BTreeSet<(DateTime<Utc>, MsgKey)>,
    /// Unread messages, kept up to date so folder JSON does not walk the folder.
    pub unread: usize,
    /// Sequence of the last change to the folder itself (name, parent, counts).
    pub seq: u64,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub key: MsgKey,
    pub folder: FolderKey,
    /// Exchange's default id: replaced when the item moves to another folder.
    pub rest_id: String,
    /// Survives moves; handed out under `Prefer: IdType="ImmutableId"`.
    pub immutable_id: String,
    /// The RFC 822 bytes, shared (a copy or a `$value` response does not copy them).
    pub mime: Bytes,
    pub parsed: Arc<Parsed>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub is_read: bool,
    pub is_draft: bool,
    pub flag_status: String,
    pub categories: Vec<String>,
    /// Single-value extended properties by canonical id (`Integer 0xe08`).
    pub ext: BTreeMap<String, String>,
    pub change_no: u64,
    /// Mailbox sequence of the last change.
    pub seq: u64,
    /// Mailbox sequence at which the item entered its current folder.
    pub entered_seq: u64,
    /// What the folder and mailbox indexes currently hold for this item; see `changes.rs`.
    pub indexed: Indexed,
}

/// The indexed values of a message, compared with its fields to fix the indexes after a change.
#[derive(Clone, Copy, Debug, Default)]
pub struct Indexed {
    pub received: DateTime<Utc>,
    pub unread: bool,
    pub seq: u64,
}

impl Message {
    pub fn id(&self, immutable: bool) -> &str {
        if immutable {
            &self.immutable_id
        } else {
            &self.rest_id
        }
    }

    /// `changeKey` and the `@odata.etag` built from it change on every update.
    pub fn change_key(&self) -> String {
        use base64::Engine;
        let mut raw = vec![0x09, 0, 0, 0, 0x16, 0, 0, 0];
        raw.extend_from_slice(&self.key.to_le_bytes());
        raw.extend_from_slice(&self.change_no.to_le_bytes());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// An item that left a folder (moved out or deleted), for delta's `@removed`.
#[derive(Clone, Debug)]
pub struct Tombstone {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub folder: FolderKey,
    pub rest_id: String,
    pub immutable_id: String,
}

/// Per-item state a fixture or a delivery sets.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub mime: Bytes,
    pub parsed: Parsed,
    pub is_read: bool,
    pub is_draft: bool,
    pub flag_status: String,
    pub categories: Vec<String>,
    pub received: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Mailbox {
    pub upn: String,
    pub display_name: String,
    pub user_id: String,
    pub aliases: Vec<String>,
    /// Accounts with full access to this mailbox (delegated `.Shared` scopes).
    pub full_access: Vec<String>,
    /// Accounts allowed to send as this mailbox.
    pub send_as: Vec<String>,
    pub folders: HashMap<FolderKey, Folder>,
    pub folder_by_id: HashMap<String, FolderKey>,
    pub well_known: HashMap<&'static str, FolderKey>,
    pub messages: HashMap<MsgKey, Message>,
    pub msg_by_id: HashMap<String, MsgKey>,
    /// In sequence order (appended as the sequence grows).
    pub tombstones: VecDeque<Tombstone>,
    /// Folders removed for good: (sequence, folder id), for folder delta's `@removed`.
    pub folder_tombstones: Vec<(u64, String)>,
    /// Every message by the sequence of its last change: delta replays read only what changed.
    pub changed: BTreeMap<u64, MsgKey>,
    /// Every message by `receivedDateTime`, for `/me/messages`.
    pub by_received: BTreeSet<(DateTime<Utc>, MsgKey)>,
    /// Changes at or before this sequence may have lost their tombstones (pruned): a delta
    /// token from before it answers `410 syncStateNotFound`.
    pub horizon: u64,
    pub seq: u64,
    pub(super) next_key: u64,
    /// Message changes not yet handed to change notifications; recorded only while a
    /// subscription watches this mailbox.
    pub events: Vec<super::changes::ChangeEvent>,
    pub record_events: bool,
    /// `tenant id \0 upn` for a mailbox loaded from fixtures: what its stable ids derive from.
    id_seed: Option<String>,
}

impl Mailbox {
    /// A mailbox with Exchange Online's default folder tree. With a tenant id, the user id and the default folders' ids derive from it and the
    /// address, so they are the same every time the same fixtures load.
    pub fn with_seed(
        upn: &str,
        display_name: &str,
        aliases: Vec<String>,
        tenant_id: Option<&str>,
    ) -> Mailbox {
        let upn = upn.to_ascii_lowercase();
        let id_seed = tenant_id.map(|t| format!("{}\0{upn}", t.to_ascii_lowercase()));
        let mut mb = Mailbox {
            user_id: id_seed
                .as_deref()
                .map(ids::seeded::guid)
                .unwrap_or_else(ids::guid),
            upn,
            display_name: display_name.to_string(),
            aliases: aliases.iter().map(|a| a.to_ascii_lowercase()).collect(),
            full_access: Vec::new(),
            send_as: Vec::new(),
            folders: HashMap::new(),
            folder_by_id: HashMap::new(),
            well_known: HashMap::new(),
            messages: HashMap::new(),
            msg_by_id: HashMap::new(),
            tombstones: VecDeque::new(),
            folder_tombstones: Vec::new(),
            changed: BTreeMap::new(),
            by_received: BTreeSet::new(),
            horizon: 0,
            events: Vec::new(),
            record_events: false,
            seq: 0,
            next_key: 1,
            id_seed,
        };
        mb.create_default_folders();
        mb
    }

    fn create_default_folders(&mut self) {
        // The IPM subtree; its children are what `GET /me/mailFolders` lists.
        let root = self.add_folder(
            None,
            "Top of Information Store",
            Some("msgfolderroot"),
            false,
        );
        for (name, wk) in [
            ("Archive", "archive"),
            ("Conversation History", "conversationhistory"),
            ("Deleted Items", "deleteditems"),
            ("Drafts", "drafts"),
            ("Inbox", "inbox"),
            ("Junk Email", "junkemail"),
            ("Outbox", "outbox"),
            ("Sent Items", "sentitems"),
        ] {
            self.add_folder(Some(root), name, Some(wk), false);
        }
        let sync = self.add_folder(Some(root), "Sync Issues", Some("syncissues"), false);
        self.add_folder(Some(sync), "Conflicts", Some("conflicts"), false);
        self.add_folder(Some(sync), "Local Failures", Some("localfailures"), false);
        self.add_folder(Some(sync), "Server Failures", Some("serverfailures"), false);
        // Hidden folders appear only with `includeHiddenFolders=true`.
        let id = self.seeded_folder_id("default:Conversation Action Settings");
        self.add_folder_with_id(Some(root), "Conversation Action Settings", None, true, id);
        self.add_folder(Some(root), "Scheduled", Some("scheduled"), true);
        // Outside the IPM subtree: reachable by well-known name, never listed.
        let id = self.seeded_folder_id("default:Recoverable Items");
        let recoverable = self.add_folder_with_id(None, "Recoverable Items", None, true, id);
        self.add_folder(
            Some(recoverable),
            "Deletions",
            Some("recoverableitemsdeletions"),
            true,
        );
        self.add_folder(None, "Finder", Some("searchfolders"), true);
    }

    pub(super) fn next(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    /// Bumps and returns the mailbox's change sequence.
    pub fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The stable id seed for something of this mailbox (`None` when ids are random).
    pub fn seed_for(&self, what: &str) -> Option<String> {
        self.id_seed.as_ref().map(|s| format!("{s}\0{what}"))
    }

    /// A stable folder id for a seeded mailbox.
    pub fn seeded_folder_id(&self, what: &str) -> Option<String> {
        self.seed_for(what).map(|s| ids::seeded::folder_id(&s))
    }

    /// Adds a folder. Default folders of a seeded mailbox get ids derived from their place.
    pub fn add_folder(
        &mut self,
        parent: Option<FolderKey>,
        name: &str,
        well_known: Option<&'static str>,
        hidden: bool,
    ) -> FolderKey {
        let id = match well_known {
            Some(wk) => self.seeded_folder_id(&format!("wk:{wk}")),
            None => None,
        };
        self.add_folder_with_id(parent, name, well_known, hidden, id)
    }

    /// Adds a folder with a given id (fixtures, dumps); `None` draws a random one.
    pub fn add_folder_with_id(
        &mut self,
        parent: Option<FolderKey>,
        name: &str,
        well_known: Option<&'static str>,
        hidden: bool,
        id: Option<String>,
    ) -> FolderKey {
        let key = self.next();
        let seq = self.bump();
        let id = id
            .filter(|i| !self.folder_by_id.contains_key(i))
            .unwrap_or_else(ids::folder_id);
        self.folder_by_id.insert(id.clone(), key);
        if let Some(wk) = well_known {
            self.well_known.insert(wk, key);
        }
        self.folders.insert(
            key,
            Folder {
                key,
                id,
                display_name: name.to_string(),
                parent,
                hidden,
                well_known,
                messages: BTreeSet::new(),
                by_received: BTreeSet::new(),
                unread: 0,
                seq,
            },
        );
        key
    }

    /// Gives a folder the id a fixture names for it (an id is never shared by two folders).
    pub fn set_folder_id(&mut self, key: FolderKey, id: String) -> Result<(), String> {
        match self.folder_by_id.get(&id) {
            Some(k) if *k == key => return Ok(()),
            Some(_) => return Err(format!("two folders have the id {id}")),
            None => {}
        }
        let f = self
            .folders
            .get_mut(&key)
            .ok_or_else(|| "no such folder".to_string())?;
        let old = std::mem::replace(&mut f.id, id.clone());
        self.folder_by_id.remove(&old);
        self.folder_by_id.insert(id, key);
        Ok(())
    }

    pub fn root(&self) -> FolderKey {
        self.well_known.get("msgfolderroot").copied().unwrap_or(0)
    }

    pub fn wk(&self, name: &str) -> GraphResult<FolderKey> {
        self.well_known
            .get(name)
            .copied()
            .ok_or_else(GraphError::item_not_found)
    }

    /// A folder by id or well-known name (case-insensitive), as Graph accepts either.
    pub fn resolve_folder(&self, id_or_name: &str) -> GraphResult<FolderKey> {
        let lower = id_or_name.to_ascii_lowercase();
        if WELL_KNOWN.contains(&lower.as_str()) {
            return self.wk(&lower);
        }
        if let Some(k) = self.folder_by_id.get(id_or_name) {
            return Ok(*k);
        }
        if ids::is_well_formed(id_or_name) {
            Err(GraphError::item_not_found())
        } else {
            Err(GraphError::id_malformed())
        }
    }

    /// A message by either of its ids (Graph accepts both forms whatever the Prefer header).
    pub fn resolve_message(&self, id: &str) -> GraphResult<MsgKey> {
        if let Some(k) = self.msg_by_id.get(id) {
            return Ok(*k);
        }
        if ids::is_well_formed(id) {
            Err(GraphError::item_not_found())
        } else {
            Err(GraphError::id_malformed())
        }
    }

    pub fn folder(&self, key: FolderKey) -> GraphResult<&Folder> {
        self.folders
            .get(&key)
            .ok_or_else(GraphError::item_not_found)
    }

    pub fn message(&self, key: MsgKey) -> GraphResult<&Message> {
        self.messages
            .get(&key)
            .ok_or_else(GraphError::item_not_found)
    }

    pub fn children(&self, parent: FolderKey) -> Vec<&Folder> {
        let mut v: Vec<&Folder> = self
            .folders
            .values()
            .filter(|f| f.parent == Some(parent))
            .collect();
        // Graph lists folders by display name.
        v.sort_by_key(|f| f.display_name.to_lowercase());
        v
    }

    pub fn unread_count(&self, folder: &Folder) -> usize {
        folder.unread
    }

    /// Whether an address (primary or alias) belongs to this mailbox.
    pub fn owns_address(&self, addr: &str) -> bool {
        let a = addr.to_ascii_lowercase();
        self.upn == a || self.aliases.contains(&a)
    }

    /// A child of `parent` with this display name (case-insensitive), if any.
    pub fn child_named(&self, parent: FolderKey, name: &str) -> Option<FolderKey> {
        self.folders
            .values()
            .find(|f| {
                f.parent == Some(parent) && f.display_name.to_lowercase() == name.to_lowercase()
            })
            .map(|f| f.key)
    }

    /// Renames or re-parents a folder; its id stays (folder ids are stable).
    pub fn update_folder(&mut self, key: FolderKey, name: Option<&str>, parent: Option<FolderKey>) {
        let seq = self.bump();
        let old_parent = self.folders.get(&key).and_then(|f| f.parent);
        if let Some(f) = self.folders.get_mut(&key) {
            if let Some(n) = name {
                f.display_name = n.to_string();
            }
            if parent.is_some() {
                f.parent = parent;
            }
            f.seq = seq;
        }
        // Parents' childFolderCount changed.
        for p in [old_parent, parent].into_iter().flatten() {
            if let Some(f) = self.folders.get_mut(&p) {
                f.seq = seq;
            }
        }
    }

    /// Removes a folder, its subfolders and their messages for good.
    pub fn remove_folder(&mut self, key: FolderKey) {
        let children: Vec<FolderKey> = self
            .folders
            .values()
            .filter(|f| f.parent == Some(key))
            .map(|f| f.key)
            .collect();
        for c in children {
            self.remove_folder(c);
        }
        let msgs: Vec<MsgKey> = self
            .folders
            .get(&key)
            .map(|f| f.messages.iter().copied().collect())
            .unwrap_or_default();
        for m in msgs {
            let _ = self.remove_message(m);
        }
        let seq = self.bump();
        if let Some(f) = self.folders.remove(&key) {
            self.folder_by_id.remove(&f.id);
            self.folder_tombstones.push((seq, f.id));
            if let Some(p) = f.parent.and_then(|p| self.folders.get_mut(&p)) {
                p.seq = seq;
            }
        }
    }

    /// Whether `ancestor` is `key` or one of its parents (to refuse moving a folder into itself).
    pub fn is_ancestor(&self, ancestor: FolderKey, mut key: FolderKey) -> bool {
        loop {
            if key == ancestor {
                return true;
            }
            match self.folders.get(&key).and_then(|f| f.parent) {
                Some(p) => key = p,
                None => return false,
            }
        }
    }
}

/// The tenant: its mailboxes and the organisation settings that matter to mail flow.
#[derive(Debug)]
pub struct Tenant {
    pub tenant_id: String,
    /// `Set-OrganizationConfig -SendFromAliasEnabled`.
    pub send_from_alias: bool,
    pub mailboxes: Vec<Mailbox>,
}

impl Tenant {
    /// The mailbox an address (primary, alias, or user id) belongs to.
    pub fn mailbox_index(&self, addr_or_id: &str) -> Option<usize> {
        let a = addr_or_id.to_ascii_lowercase();
        self.mailboxes
            .iter()
            .position(|m| m.owns_address(&a) || m.user_id == a)
    }

    pub fn mailbox(&self, idx: usize) -> GraphResult<&Mailbox> {
        self.mailboxes
            .get(idx)
            .ok_or_else(GraphError::item_not_found)
    }

    pub fn mailbox_mut(&mut self, idx: usize) -> GraphResult<&mut Mailbox> {
        self.mailboxes
            .get_mut(idx)
            .ok_or_else(GraphError::item_not_found)
    }
}
