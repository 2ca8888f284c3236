//! The Graph JSON the bridge reads, reduced to the fields it uses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub total_item_count: u32,
    #[serde(default)]
    pub is_hidden: bool,
}

/// A `mailFolders/delta` item: a folder, or (in a replayed round) a folder that is gone.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderDeltaItem {
    pub id: String,
    #[serde(rename = "@removed", default)]
    pub removed: Option<serde_json::Value>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub total_item_count: u32,
    #[serde(default)]
    pub is_hidden: bool,
}

impl FolderDeltaItem {
    /// The folder, or None for a removal.
    pub fn into_folder(self) -> Option<MailFolder> {
        if self.removed.is_some() {
            return None;
        }
        Some(MailFolder {
            id: self.id,
            display_name: self.display_name.unwrap_or_default(),
            parent_folder_id: self.parent_folder_id,
            child_folder_count: self.child_folder_count,
            total_item_count: self.total_item_count,
            is_hidden: self.is_hidden,
        })
    }
}

/// One page of a collection: `value` plus at most one of the two links.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    pub flag_status: String,
}

/// A message as delta reports it: either changed (with the selected fields) or removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaMessage {
    pub id: String,
    #[serde(rename = "@removed", default)]
    pub removed: Option<serde_json::Value>,
    #[serde(default)]
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub is_draft: Option<bool>,
    #[serde(default)]
    pub flag: Option<FollowupFlag>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
    /// Only when asked for (a listing that starts from a well-known name).
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ExtendedProperty {
    pub id: String,
    pub value: String,
}

/// The fields every message delta asks for.
pub const DELTA_SELECT: &str = "receivedDateTime,isRead,isDraft,flag,categories";

/// PidTagLastVerbExecuted: 102 reply, 103 reply all, 104 forward (graph-facts, flag table).
pub const LAST_VERB: &str = "Integer 0x1081";
/// PidTagIconIndex: what Outlook shows for a replied (261) or forwarded (262) message.
pub const ICON_INDEX: &str = "Integer 0x1080";
/// PR_MESSAGE_SIZE: Exchange's estimate of a message's size. Never served as RFC822.SIZE (that
/// is always the stored bytes' length); used only to decide how to fetch a body.
pub const MESSAGE_SIZE: &str = "Integer 0x0E08";
/// Delta asks for the last verb (flags) and the size estimate (body fetch planning).
pub const DELTA_EXPAND: &str =
    "singleValueExtendedProperties($filter=id eq 'Integer 0x1081' or id eq 'Integer 0x0E08')";

/// True when a property id as Graph echoes it names `wanted`: Graph canonicalises ids
/// (`Integer 0x0E08` comes back as `Integer 0xe08`), so the tag is compared as a number.
pub fn property_is(id: &str, wanted: &str) -> bool {
    fn split(id: &str) -> Option<(String, u32)> {
        let (kind, tag) = id.trim().split_once(' ')?;
        let tag = tag.trim();
        let hex = tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X"))?;
        Some((
            kind.to_ascii_lowercase(),
            u32::from_str_radix(hex, 16).ok()?,
        ))
    }
    match (split(id), split(wanted)) {
        (Some(a), Some(b)) => a == b,
        _ => id.eq_ignore_ascii_case(wanted),
    }
}

impl DeltaMessage {
    /// A single-value extended property's value, if delta carried it.
    pub fn property(&self, wanted: &str) -> Option<&str> {
        self.single_value_extended_properties
            .as_ref()?
            .iter()
            .find(|p| property_is(&p.id, wanted))
            .map(|p| p.value.as_str())
    }
}

/// Graph's error envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The identity platform's token answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// The identity platform's error answer (`authorization_pending`, `invalid_grant`, …).
#[derive(Debug, Clone, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default = "default_expiry")]
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
    #[serde(default)]
    pub message: Option<String>,
}

fn default_expiry() -> u64 {
    900
}

fn default_interval() -> u64 {
    5
}
