//! Loading a tenant from a fixtures folder (format: `fixtures/README.md`, types: `format`).
//!
//! Reading and parsing the `.eml` files is spread over the machine's cores: with 100,000
//! messages that is most of the load time.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Deserialize;

use super::format::{
    split_path, FolderEntry, MailboxEntry, MailboxFile, MessageEntry, RefreshEntry, TenantFile,
    TokensFile,
};
use super::mime::{self, Parsed};
use super::state::{FolderKey, Mailbox, NewMessage, Tenant};
use super::{extprops, ids, EmulatorError};

/// A loaded fixtures folder.
pub struct Loaded {
    pub tenant: Tenant,
    /// Refresh tokens from a dump's `tokens.json`.
    pub refresh: Vec<RefreshEntry>,
}

fn fixture_err(path: &Path, reason: impl Into<String>) -> EmulatorError {
    EmulatorError::Fixtures {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmulatorError> {
    let text = std::fs::read_to_string(path).map_err(|e| fixture_err(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fixture_err(path, e.to_string()))
}

/// Loads `tenant.json`, every mailbox it names, and `tokens.json` when present.
pub fn load(dir: &Path) -> Result<Loaded, EmulatorError> {
    let file: TenantFile = read_json(&dir.join("tenant.json"))?;
    // Without a tenant id, one derived from the addresses keeps the ids stable across loads.
    let tenant_id = file.tenant_id.clone().unwrap_or_else(|| {
        let mut upns: Vec<String> = file
            .mailboxes
            .iter()
            .map(|m| m.user_principal_name.to_ascii_lowercase())
            .collect();
        upns.sort();
        ids::seeded::guid(&format!("tenant\0{}", upns.join("\0")))
    });
    let mut mailboxes = Vec::new();
    for entry in file.mailboxes {
        mailboxes.push(load_mailbox(dir, &tenant_id, entry)?);
    }
    let tokens_path = dir.join("tokens.json");
    let refresh = if tokens_path.exists() {
        read_json::<TokensFile>(&tokens_path)?.refresh_tokens
    } else {
        Vec::new()
    };
    let tenant = Tenant {
        tenant_id,
        send_from_alias: file.send_from_alias_enabled,
        mailboxes,
    };
    Ok(Loaded { tenant, refresh })
}

fn load_mailbox(
    dir: &Path,
    tenant_id: &str,
    entry: MailboxEntry,
) -> Result<Mailbox, EmulatorError> {
    let mut mb = Mailbox::with_seed(
        &entry.user_principal_name,
        &entry.display_name,
        entry.aliases,
        Some(tenant_id),
    );
    if let Some(id) = entry.user_id {
        mb.user_id = id.to_ascii_lowercase();
    }
    mb.full_access = lower_all(entry.full_access);
    mb.send_as = lower_all(entry.send_as);
    let Some(sub) = entry.dir else { return Ok(mb) };
    let mdir: PathBuf = dir.join(sub);
    let mfile_path = mdir.join("mailbox.json");
    let mfile: MailboxFile = read_json(&mfile_path)?;
    for f in &mfile.folders {
        apply_folder(&mut mb, f).map_err(|r| fixture_err(&mfile_path, r))?;
    }
    let contents = read_messages(&mdir, &mfile.messages)?;
    for (m, (raw, parsed)) in mfile.messages.into_iter().zip(contents) {
        add_message(&mut mb, m, raw, parsed).map_err(|r| fixture_err(&mfile_path, r))?;
    }
    Ok(mb)
}

/// A `folders` entry: creates the path (or finds it) and gives it the id it names.
fn apply_folder(mb: &mut Mailbox, entry: &FolderEntry) -> Result<(), String> {
    let (key, id) = match entry {
        FolderEntry::Path(p) => (ensure_path(mb, p, false), None),
        FolderEntry::Full(o) => {
            let key = match (&o.well_known_name, &o.path) {
                (Some(wk), _) => *mb
                    .well_known
                    .get(wk.to_ascii_lowercase().as_str())
                    .ok_or_else(|| format!("no default folder is called '{wk}'"))?,
                (None, Some(p)) => ensure_path(mb, p, o.is_hidden),
                (None, None) => return Err("a folder needs a path or a wellKnownName".into()),
            };
            (key, o.id.clone())
        }
    };
    match id {
        Some(id) if !ids::is_well_formed(&id) => Err(format!("'{id}' is not a folder id")),
        Some(id) => mb.set_folder_id(key, id),
        None => Ok(()),
    }
}

/// Message files read and parsed: bytes and Graph's properties, in `mailbox.json` order.
type Contents = Vec<(Vec<u8>, Parsed)>;

/// Reads and parses every message file, in order, on all cores.
fn read_messages(mdir: &Path, entries: &[MessageEntry]) -> Result<Contents, EmulatorError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = entries.len().div_ceil(workers).max(1);
    let results: Vec<Result<Contents, EmulatorError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|m| read_one(mdir, m)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fixture_err(mdir, "a message could not be loaded")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(entries.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

fn read_one(mdir: &Path, m: &MessageEntry) -> Result<(Vec<u8>, Parsed), EmulatorError> {
    let eml = mdir.join(&m.file);
    let raw = std::fs::read(&eml).map_err(|e| fixture_err(&eml, e.to_string()))?;
    let parsed = mime::parse(&raw).map_err(|_| fixture_err(&eml, "not an RFC 822 message"))?;
    Ok((raw, parsed))
}

fn add_message(
    mb: &mut Mailbox,
    m: MessageEntry,
    raw: Vec<u8>,
    parsed: Parsed,
) -> Result<(), String> {
    let folder = folder_for(mb, &m.folder);
    let received = m
        .received_date_time
        .or(parsed.sent)
        .unwrap_or_else(Utc::now);
    let is_draft = m
        .is_draft
        .unwrap_or(mb.well_known.get("drafts") == Some(&folder));
    let mut ext = Vec::new();
    for p in &m.single_value_extended_properties {
        let id = extprops::canonical(&p.id).map_err(|e| e.message)?;
        ext.push((id, p.value.clone()));
    }
    let ids = message_ids(mb, &m);
    let key = mb.insert_message_with_ids(
        folder,
        NewMessage {
            mime: raw.into(),
            parsed,
            is_read: m.is_read.unwrap_or(true),
            is_draft,
            flag_status: m.flag.unwrap_or_else(|| "notFlagged".into()),
            categories: m.categories,
            received,
        },
        ids,
    );
    if let Some(msg) = mb.messages.get_mut(&key) {
        msg.ext.extend(ext);
        if let Some(t) = m.created_date_time {
            msg.created = t;
        }
        if let Some(t) = m.last_modified_date_time {
            msg.modified = t;
        }
    }
    Ok(())
}

/// Ids for a fixture message: the ones it names, else derived ones (the immutable id from its
/// file, the REST id from its file and folder: a REST id names an item in one folder, as in
/// Exchange).
fn message_ids(mb: &Mailbox, m: &MessageEntry) -> Option<(String, String)> {
    let file = m.file.replace('\\', "/");
    let rest = m.id.clone().or_else(|| {
        mb.seed_for(&format!("msg:{file}\0{}", m.folder.to_lowercase()))
            .map(|s| ids::seeded::rest_item_id(&s))
    })?;
    let imm = m.immutable_id.clone().or_else(|| {
        mb.seed_for(&format!("msg:{file}"))
            .map(|s| ids::seeded::immutable_item_id(&s))
    })?;
    Some((rest, imm))
}

fn lower_all(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// A well-known name, or a path of display names below the root (created when missing).
fn folder_for(mb: &mut Mailbox, name: &str) -> FolderKey {
    let lower = name.to_ascii_lowercase();
    if let Some(k) = mb.well_known.get(lower.as_str()) {
        return *k;
    }
    ensure_path(mb, name, false)
}

/// Finds or creates a path of display names below the root. New folders get ids derived from
/// the path (case-insensitive), so they are stable across loads.
fn ensure_path(mb: &mut Mailbox, path: &str, hidden: bool) -> FolderKey {
    let mut parent = mb.root();
    let mut done: Vec<String> = Vec::new();
    for part in split_path(path) {
        let existing = mb
            .children(parent)
            .iter()
            .find(|f| f.display_name.eq_ignore_ascii_case(&part))
            .map(|f| f.key);
        done.push(part.to_lowercase());
        parent = match existing {
            Some(k) => k,
            None => {
                let id = mb.seeded_folder_id(&format!("path:{}", done.join("/")));
                mb.add_folder_with_id(Some(parent), &part, None, hidden, id)
            }
        };
    }
    parent
}
