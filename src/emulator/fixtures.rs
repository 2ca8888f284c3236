//! Loading a tenant from a fixtures folder (format: `fixtures/README.md`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::mime;
use super::state::{FolderKey, Mailbox, NewMessage, Tenant};
use super::EmulatorError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TenantFile {
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    send_from_alias_enabled: bool,
    mailboxes: Vec<MailboxEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MailboxEntry {
    user_principal_name: String,
    display_name: String,
    #[serde(default)]
    aliases: Vec<String>,
    /// Folder (relative to the tenant file) holding `mailbox.json` and the `.eml` files.
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    full_access: Vec<String>,
    #[serde(default)]
    send_as: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MailboxFile {
    /// User folders as paths of display names under the root, e.g. `Projects/2026`.
    #[serde(default)]
    folders: Vec<String>,
    #[serde(default)]
    messages: Vec<MessageEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MessageEntry {
    file: String,
    /// A well-known name (`inbox`, `sentitems`, …) or a path like `Projects/2026`.
    folder: String,
    #[serde(default)]
    is_read: Option<bool>,
    #[serde(default)]
    flag: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    received_date_time: Option<DateTime<Utc>>,
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

/// Loads `tenant.json` and every mailbox it names.
pub fn load(dir: &Path) -> Result<Tenant, EmulatorError> {
    let tenant_path = dir.join("tenant.json");
    let file: TenantFile = read_json(&tenant_path)?;
    // Without a tenant id, one derived from the addresses keeps the ids stable across loads.
    let tenant_id = file.tenant_id.clone().unwrap_or_else(|| {
        let mut upns: Vec<String> = file
            .mailboxes
            .iter()
            .map(|m| m.user_principal_name.to_ascii_lowercase())
            .collect();
        upns.sort();
        super::ids::seeded::guid(&format!("tenant\0{}", upns.join("\0")))
    });
    let mut mailboxes = Vec::new();
    for entry in file.mailboxes {
        mailboxes.push(load_mailbox(dir, &tenant_id, entry)?);
    }
    Ok(Tenant {
        tenant_id,
        send_from_alias: file.send_from_alias_enabled,
        mailboxes,
    })
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
    mb.full_access = lower_all(entry.full_access);
    mb.send_as = lower_all(entry.send_as);
    let Some(sub) = entry.dir else { return Ok(mb) };
    let mdir: PathBuf = dir.join(sub);
    let mfile_path = mdir.join("mailbox.json");
    let mfile: MailboxFile = read_json(&mfile_path)?;
    for path in &mfile.folders {
        ensure_path(&mut mb, path);
    }
    for m in mfile.messages {
        let folder = folder_for(&mut mb, &m.folder);
        let eml = mdir.join(&m.file);
        let raw = std::fs::read(&eml).map_err(|e| fixture_err(&eml, e.to_string()))?;
        let parsed = mime::parse(&raw).map_err(|_| fixture_err(&eml, "not an RFC 822 message"))?;
        let received = m
            .received_date_time
            .or(parsed.sent)
            .unwrap_or_else(Utc::now);
        let is_draft = mb.well_known.get("drafts") == Some(&folder);
        let ids = message_ids(&mb, &m.file, &m.folder);
        mb.insert_message_with_ids(
            folder,
            NewMessage {
                mime: raw,
                parsed,
                is_read: m.is_read.unwrap_or(true),
                is_draft,
                flag_status: m.flag.unwrap_or_else(|| "notFlagged".into()),
                categories: m.categories,
                received,
            },
            ids,
        );
    }
    Ok(mb)
}

/// Stable ids for a fixture message: the immutable id from its file, the REST id from its file
/// and folder (a REST id names an item in one folder, as in Exchange).
fn message_ids(mb: &Mailbox, file: &str, folder: &str) -> Option<(String, String)> {
    let file = file.replace('\\', "/");
    let rest = mb.seed_for(&format!("msg:{file}\0{}", folder.to_lowercase()))?;
    let imm = mb.seed_for(&format!("msg:{file}"))?;
    Some((
        super::ids::seeded::rest_item_id(&rest),
        super::ids::seeded::immutable_item_id(&imm),
    ))
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
    ensure_path(mb, name)
}

fn ensure_path(mb: &mut Mailbox, path: &str) -> FolderKey {
    let mut parent = mb.root();
    let mut done: Vec<String> = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let existing = mb
            .children(parent)
            .iter()
            .find(|f| f.display_name.eq_ignore_ascii_case(part))
            .map(|f| f.key);
        done.push(part.to_lowercase());
        parent = match existing {
            Some(k) => k,
            None => {
                let id = mb.seeded_folder_id(&format!("path:{}", done.join("/")));
                mb.add_folder_with_id(Some(parent), part, None, false, id)
            }
        };
    }
    parent
}
