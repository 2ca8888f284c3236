//! Writing the emulator's state to a folder in the fixtures format, so that loading that folder
//! restores it: mailboxes, folders and messages with their ids and state, extended properties,
//! and refresh tokens (`tokens.json`). Delta tokens are not written: after a reload they answer
//! `410 syncStateNotFound`, and a client resyncs by immutable id.
//!
//! The state is copied under the lock (message bytes are shared, not copied) and written after
//! the lock is released, so a dump of a large mailbox does not stall the emulator.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{
    escape_name, ExtProp, FolderEntry, FolderObject, MailboxEntry, MailboxFile, MessageEntry,
    RefreshEntry, TenantFile, TokensFile,
};
use super::oauth::OAuthState;
use super::state::{Folder, FolderKey, Mailbox, Tenant};
use super::EmulatorError;

/// `.eml` files per sub-folder of a dump, so no directory grows huge.
const FILES_PER_DIR: usize = 1000;

/// What a dump wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpSummary {
    pub mailboxes: usize,
    pub folders: usize,
    pub messages: usize,
    pub bytes: u64,
}

/// The `.eml` files of one mailbox: path relative to its folder, and the shared bytes.
type Emls = Vec<(String, Bytes)>;

/// Everything to write, taken under the lock.
pub struct Snapshot {
    tenant: TenantFile,
    mailboxes: Vec<(String, MailboxFile, Emls)>,
    tokens: TokensFile,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Fixtures {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

pub fn snapshot(tenant: &Tenant, oauth: &OAuthState) -> Snapshot {
    let mut entries = Vec::new();
    let mut mailboxes = Vec::new();
    for (i, mb) in tenant.mailboxes.iter().enumerate() {
        let dir = format!("{:03}-{}", i + 1, safe_name(&mb.upn));
        let (file, emls) = mailbox_file(mb);
        entries.push(MailboxEntry {
            user_principal_name: mb.upn.clone(),
            display_name: mb.display_name.clone(),
            aliases: mb.aliases.clone(),
            dir: Some(dir.clone()),
            full_access: mb.full_access.clone(),
            send_as: mb.send_as.clone(),
            user_id: Some(mb.user_id.clone()),
        });
        mailboxes.push((dir, file, emls));
    }
    let mut refresh_tokens: Vec<RefreshEntry> = oauth
        .refresh
        .iter()
        .map(|(token, r)| RefreshEntry {
            token: token.clone(),
            account: r.account.clone(),
            client_id: r.client_id.clone(),
            scope: r.scope.clone(),
            revoked: r.revoked,
            expires: r.expires,
        })
        .collect();
    refresh_tokens.sort_by(|a, b| a.token.cmp(&b.token));
    Snapshot {
        tenant: TenantFile {
            tenant_id: Some(tenant.tenant_id.clone()),
            send_from_alias_enabled: tenant.send_from_alias,
            mailboxes: entries,
        },
        mailboxes,
        tokens: TokensFile { refresh_tokens },
    }
}

/// An address as a directory name.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The path of display names from below the root, or `None` outside the IPM subtree.
fn path_of(mb: &Mailbox, f: &Folder) -> Option<String> {
    let root = mb.root();
    let mut parts = vec![escape_name(&f.display_name)];
    let mut cur = f.parent?;
    while cur != root {
        let p = mb.folders.get(&cur)?;
        parts.push(escape_name(&p.display_name));
        cur = p.parent?;
    }
    parts.reverse();
    Some(parts.join("/"))
}

/// Folders below the root, parents before children.
fn tree_order(mb: &Mailbox) -> Vec<FolderKey> {
    let mut out = Vec::new();
    let mut stack = vec![mb.root()];
    while let Some(k) = stack.pop() {
        out.push(k);
        for c in mb.children(k).iter().rev() {
            stack.push(c.key);
        }
    }
    out
}

/// How a message names its folder: the well-known name, else the path.
fn folder_name(mb: &Mailbox, key: FolderKey) -> Option<String> {
    let f = mb.folders.get(&key)?;
    match f.well_known {
        Some(wk) => Some(wk.to_string()),
        None => path_of(mb, f),
    }
}

fn mailbox_file(mb: &Mailbox) -> (MailboxFile, Emls) {
    let mut folders: Vec<FolderEntry> = Vec::new();
    let mut wk: Vec<&Folder> = mb
        .folders
        .values()
        .filter(|f| f.well_known.is_some())
        .collect();
    wk.sort_by_key(|f| f.well_known);
    for f in wk {
        folders.push(FolderEntry::Full(FolderObject {
            well_known_name: f.well_known.map(str::to_string),
            id: Some(f.id.clone()),
            ..FolderObject::default()
        }));
    }
    let order = tree_order(mb);
    for k in &order {
        let Some(f) = mb.folders.get(k) else { continue };
        if f.well_known.is_some() {
            continue;
        }
        if let Some(path) = path_of(mb, f) {
            folders.push(FolderEntry::Full(FolderObject {
                path: Some(path),
                id: Some(f.id.clone()),
                is_hidden: f.hidden,
                ..FolderObject::default()
            }));
        }
    }
    let mut messages = Vec::new();
    let mut emls = Vec::new();
    // Every folder that holds mail, including those outside the IPM subtree (Deletions).
    let mut outside: Vec<FolderKey> = mb
        .well_known
        .values()
        .filter(|k| !order.contains(k))
        .copied()
        .collect();
    outside.sort_unstable();
    for fk in order.into_iter().chain(outside) {
        let (Some(f), Some(fname)) = (mb.folders.get(&fk), folder_name(mb, fk)) else {
            continue;
        };
        for mk in &f.messages {
            let Some(m) = mb.messages.get(mk) else {
                continue;
            };
            let n = messages.len();
            let file = format!("mail/{:04}/{:07}.eml", n / FILES_PER_DIR, n);
            messages.push(MessageEntry {
                file: file.clone(),
                folder: fname.clone(),
                id: Some(m.rest_id.clone()),
                immutable_id: Some(m.immutable_id.clone()),
                is_read: Some(m.is_read),
                is_draft: Some(m.is_draft),
                flag: Some(m.flag_status.clone()),
                categories: m.categories.clone(),
                received_date_time: Some(m.received),
                created_date_time: Some(m.created),
                last_modified_date_time: Some(m.modified),
                single_value_extended_properties: m
                    .ext
                    .iter()
                    .map(|(id, value)| ExtProp {
                        id: id.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            });
            emls.push((file, m.mime.clone()));
        }
    }
    (MailboxFile { folders, messages }, emls)
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), EmulatorError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| io_err(path, e))?;
    std::fs::write(path, text).map_err(|e| io_err(path, e))
}

/// Writes a snapshot into `dir` (created when missing; files of an earlier dump are replaced).
pub fn write(snap: &Snapshot, dir: &Path) -> Result<DumpSummary, EmulatorError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut summary = DumpSummary {
        mailboxes: snap.mailboxes.len(),
        ..DumpSummary::default()
    };
    for (sub, file, emls) in &snap.mailboxes {
        let mdir: PathBuf = dir.join(sub);
        if mdir.exists() {
            // A mailbox folder of an earlier dump: its stale files must not linger.
            std::fs::remove_dir_all(&mdir).map_err(|e| io_err(&mdir, e))?;
        }
        for (rel, bytes) in emls {
            let path = mdir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
            }
            std::fs::write(&path, bytes).map_err(|e| io_err(&path, e))?;
            summary.bytes += bytes.len() as u64;
        }
        std::fs::create_dir_all(&mdir).map_err(|e| io_err(&mdir, e))?;
        write_json(&mdir.join("mailbox.json"), file)?;
        summary.folders += file.folders.len();
        summary.messages += file.messages.len();
    }
    write_json(&dir.join("tokens.json"), &snap.tokens)?;
    // tenant.json last: a dump interrupted half-way does not look like a complete one.
    write_json(&dir.join("tenant.json"), &snap.tenant)?;
    Ok(summary)
}
