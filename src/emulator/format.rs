//! The fixtures format (`fixtures/README.md`) as serde types, read by `fixtures` and written
//! by `dump`. Unknown fields are an error so that a typo does not pass silently.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub send_from_alias_enabled: bool,
    pub mailboxes: Vec<MailboxEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxEntry {
    pub user_principal_name: String,
    pub display_name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Folder (relative to the tenant file) holding `mailbox.json` and the `.eml` files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub full_access: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<String>,
    /// The user's object id (`GET /me`); derived from the tenant and address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailboxFile {
    #[serde(default)]
    pub folders: Vec<FolderEntry>,
    #[serde(default)]
    pub messages: Vec<MessageEntry>,
}

/// A folder: a path of display names below the root (`Projects/2026`), or an object that can
/// also carry the folder's id, or name a default folder by its well-known name to give its id.
#[derive(Serialize, Deserialize, Clone)]
#[serde(untagged)]
pub enum FolderEntry {
    Path(String),
    Full(FolderObject),
}

#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FolderObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_known_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_hidden: bool,
}

#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageEntry {
    pub file: String,
    /// A well-known name (`inbox`, `sentitems`, …) or a path like `Projects/2026`.
    pub folder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_draft: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub single_value_extended_properties: Vec<ExtProp>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExtProp {
    pub id: String,
    pub value: String,
}

/// `tokens.json` (written by a dump): refresh tokens, so signed-in clients stay signed in
/// across a restart of the emulator, as they would with Microsoft 365.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshEntry {
    pub token: String,
    pub account: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
    pub expires: DateTime<Utc>,
}

/// Folder paths separate display names with `/`; a `/` or `%` inside a name is written
/// `%2F` / `%25`.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.replace("%2F", "/")
                .replace("%2f", "/")
                .replace("%25", "%")
        })
        .collect()
}

pub fn escape_name(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}
