//! Per-folder message delta, and the mapping between IMAP flags and Graph's fields.

use std::collections::HashSet;

use serde_json::json;

use super::{MailboxSync, SyncError};
use crate::graph::types::{DeltaMessage, Page, ICON_INDEX, LAST_VERB, MESSAGE_SIZE};
use crate::mailstore::{folders as stored_folders, messages as stored, ApplyOutcome};
use crate::mailstore::{Flags, FolderRecord, MessageUpsert};

/// Fresh listings of a folder tried before a pass gives up (the next pass tries again).
const FRESH_ATTEMPTS: u32 = 3;

impl MailboxSync {
    /// Applies the folder's message delta since its stored deltaLink. A dead deltaLink (410,
    /// `syncStateNotFound`) starts a fresh delta and reconciles by Graph id: known messages
    /// keep their UIDs, only truly new ones get new UIDs, and UIDVALIDITY stays.
    pub(super) async fn sync_folder_messages(
        &self,
        folder: &FolderRecord,
    ) -> Result<ApplyOutcome, SyncError> {
        // A link from another Graph endpoint (the configuration changed) would only fail:
        // reconcile with a fresh listing instead.
        let link = folder
            .delta_link
            .clone()
            .filter(|link| self.graph.is_own_url(link));
        if let Some(link) = link {
            match self.run_delta(folder, link, None, None).await {
                Err(SyncError::Graph(e)) if e.is_sync_state_lost() => {
                    tracing::info!(folder = %folder.path, "delta token expired, reconciling");
                }
                other => return other,
            }
        }
        // A fresh listing can itself lose its state (skip tokens expire too): start over.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let start = self.graph.delta_start_url(&folder.graph_id);
            match self
                .run_delta(folder, start, Some(HashSet::new()), None)
                .await
            {
                Err(SyncError::Graph(e)) if e.is_sync_state_lost() && attempt < FRESH_ATTEMPTS => {
                    tracing::info!(folder = %folder.path, "listing lost its state, starting over");
                }
                other => return other,
            }
        }
    }

    /// Carries on a fresh listing of the folder begun elsewhere (by well-known name, while
    /// the folder's role was found) from the page it had reached. Should that listing lose
    /// its state, the folder is listed afresh.
    pub(super) async fn continue_listing(
        &self,
        folder: &FolderRecord,
        page: Page<DeltaMessage>,
    ) -> Result<ApplyOutcome, SyncError> {
        match self
            .run_delta(folder, String::new(), Some(HashSet::new()), Some(page))
            .await
        {
            Err(SyncError::Graph(e)) if e.is_sync_state_lost() => {
                let fresh = FolderRecord {
                    delta_link: None,
                    ..folder.clone()
                };
                self.sync_folder_messages(&fresh).await
            }
            other => other,
        }
    }

    /// Follows nextLinks to the deltaLink, applying each page in one transaction; `first`,
    /// when given, is the page at hand (then `url` is not asked for). With `seen`, this is a
    /// full listing: messages not listed are removed at the end.
    async fn run_delta(
        &self,
        folder: &FolderRecord,
        mut url: String,
        mut seen: Option<HashSet<String>>,
        mut first: Option<Page<DeltaMessage>>,
    ) -> Result<ApplyOutcome, SyncError> {
        let mut total = ApplyOutcome::default();
        loop {
            let page = match first.take() {
                Some(page) => page,
                None => self.graph.delta_page(&url).await?,
            };
            let (upserts, removed) = split_page(page.value);
            if let Some(seen) = seen.as_mut() {
                seen.extend(upserts.iter().map(|m| m.graph_id.clone()));
            }
            let folder_id = folder.id;
            let outcome = self
                .store
                .call(move |c| stored::apply_changes(c, folder_id, &upserts, &removed))
                .await?;
            add(&mut total, &outcome);
            if let Some(next) = page.next_link {
                url = next;
                continue;
            }
            if let Some(seen) = seen {
                let outcome = self.remove_unseen(folder_id, seen).await?;
                add(&mut total, &outcome);
            }
            let link = page.delta_link;
            self.store
                .call(move |c| stored_folders::set_delta_link(c, folder_id, link.as_deref()))
                .await?;
            return Ok(total);
        }
    }

    async fn remove_unseen(
        &self,
        folder_id: i64,
        seen: HashSet<String>,
    ) -> Result<ApplyOutcome, SyncError> {
        Ok(self
            .store
            .call(move |c| {
                let gone: Vec<String> = stored::list_messages(c, folder_id)?
                    .into_iter()
                    .map(|m| m.graph_id)
                    .filter(|id| !seen.contains(id))
                    .collect();
                stored::apply_changes(c, folder_id, &[], &gone)
            })
            .await?)
    }
}

fn add(total: &mut ApplyOutcome, page: &ApplyOutcome) {
    total.added += page.added;
    total.changed += page.changed;
    total.removed += page.removed;
}

fn split_page(items: Vec<DeltaMessage>) -> (Vec<MessageUpsert>, Vec<String>) {
    let mut upserts = Vec::new();
    let mut removed = Vec::new();
    for item in items {
        if item.removed.is_some() {
            removed.push(item.id);
        } else {
            upserts.push(MessageUpsert {
                flags: flags_from_graph(&item),
                size_estimate: item
                    .property(MESSAGE_SIZE)
                    .and_then(|v| v.trim().parse().ok()),
                keywords: item
                    .categories
                    .clone()
                    .unwrap_or_default()
                    .join(CATEGORY_SEPARATOR),
                internal_date: item
                    .received_date_time
                    .as_deref()
                    .and_then(parse_graph_time)
                    .unwrap_or(0),
                graph_id: item.id,
            });
        }
    }
    (upserts, removed)
}

/// Graph categories are stored joined by this (a category may contain spaces, not newlines).
pub const CATEGORY_SEPARATOR: &str = "\n";

/// Last-verb values (PidTagLastVerbExecuted) and the icon Outlook shows for them.
const VERB_REPLY: u32 = 102;
const VERB_REPLY_ALL: u32 = 103;
const VERB_FORWARD: u32 = 104;
const ICON_REPLIED: u32 = 261;
const ICON_FORWARDED: u32 = 262;

/// IMAP system flags from a Graph message (see the flag table in graph-facts).
pub fn flags_from_graph(message: &DeltaMessage) -> Flags {
    let flagged = message
        .flag
        .as_ref()
        .is_some_and(|f| f.flag_status == "flagged");
    let verb = last_verb(message);
    Flags::default()
        .with(Flags::SEEN, message.is_read.unwrap_or(false))
        .with(Flags::FLAGGED, flagged)
        .with(Flags::DRAFT, message.is_draft.unwrap_or(false))
        .with(
            Flags::ANSWERED,
            matches!(verb, Some(VERB_REPLY | VERB_REPLY_ALL)),
        )
        .with(Flags::FORWARDED, verb == Some(VERB_FORWARD))
}

fn last_verb(message: &DeltaMessage) -> Option<u32> {
    message
        .property(LAST_VERB)
        .and_then(|v| v.trim().parse().ok())
}

/// The PATCH body that carries a flag or keyword change to Graph, or None when Graph holds
/// none of it. \Answered and $Forwarded share one single-valued property in Graph: when both
/// are set, Graph records the forward.
pub(super) fn flag_patch(
    old: Flags,
    new: Flags,
    old_keywords: &str,
    new_keywords: &str,
) -> Option<serde_json::Value> {
    let mut patch = serde_json::Map::new();
    if old_keywords != new_keywords {
        let categories: Vec<&str> = new_keywords
            .split(CATEGORY_SEPARATOR)
            .filter(|c| !c.is_empty())
            .collect();
        patch.insert("categories".into(), json!(categories));
    }
    let verb_of = |f: Flags| {
        if f.has(Flags::FORWARDED) {
            Some((VERB_FORWARD, ICON_FORWARDED))
        } else if f.has(Flags::ANSWERED) {
            Some((VERB_REPLY, ICON_REPLIED))
        } else {
            None
        }
    };
    if verb_of(old) != verb_of(new) {
        // Graph cannot remove a single-value property by PATCH; 0 means "no verb" to Outlook.
        let (verb, icon) = verb_of(new).unwrap_or((0, 0));
        patch.insert(
            "singleValueExtendedProperties".into(),
            json!([
                {"id": LAST_VERB, "value": verb.to_string()},
                {"id": ICON_INDEX, "value": icon.to_string()},
            ]),
        );
    }
    if old.has(Flags::SEEN) != new.has(Flags::SEEN) {
        patch.insert("isRead".into(), json!(new.has(Flags::SEEN)));
    }
    if old.has(Flags::FLAGGED) != new.has(Flags::FLAGGED) {
        let status = if new.has(Flags::FLAGGED) {
            "flagged"
        } else {
            "notFlagged"
        };
        patch.insert("flag".into(), json!({ "flagStatus": status }));
    }
    (!patch.is_empty()).then_some(serde_json::Value::Object(patch))
}

/// Parses Graph's `2026-01-05T09:30:00Z` (fractional seconds allowed) to Unix seconds.
pub fn parse_graph_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(json: serde_json::Value) -> DeltaMessage {
        serde_json::from_value(json).expect("delta item")
    }

    #[test]
    fn graph_fields_map_to_imap_flags() {
        let m =
            delta(json!({"id":"a","isRead":true,"flag":{"flagStatus":"flagged"},"isDraft":false}));
        let f = flags_from_graph(&m);
        assert!(f.has(Flags::SEEN) && f.has(Flags::FLAGGED) && !f.has(Flags::DRAFT));
        let m =
            delta(json!({"id":"b","isRead":false,"flag":{"flagStatus":"complete"},"isDraft":true}));
        let f = flags_from_graph(&m);
        assert!(!f.has(Flags::SEEN) && !f.has(Flags::FLAGGED) && f.has(Flags::DRAFT));
        let m = delta(
            json!({"id":"c","singleValueExtendedProperties":[{"id":"Integer 0x1081","value":"103"}]}),
        );
        assert!(flags_from_graph(&m).has(Flags::ANSWERED));
        let m = delta(
            json!({"id":"d","singleValueExtendedProperties":[{"id":"Integer 0x1081","value":"104"}]}),
        );
        let f = flags_from_graph(&m);
        assert!(f.has(Flags::FORWARDED) && !f.has(Flags::ANSWERED));
    }

    #[test]
    fn patch_carries_only_what_changed() {
        let seen = Flags::default().with(Flags::SEEN, true);
        assert_eq!(flag_patch(seen, seen, "", ""), None);
        assert_eq!(
            flag_patch(Flags::default(), seen, "", ""),
            Some(json!({"isRead": true}))
        );
        let flagged = seen.with(Flags::FLAGGED, true);
        assert_eq!(
            flag_patch(seen, flagged, "", ""),
            Some(json!({"flag": {"flagStatus": "flagged"}}))
        );
        // \Deleted is the bridge's own: nothing goes to Graph.
        assert_eq!(
            flag_patch(seen, seen.with(Flags::DELETED, true), "", ""),
            None
        );
        assert_eq!(
            flag_patch(seen, seen, "Red category", "Red category\nKunde"),
            Some(json!({"categories": ["Red category", "Kunde"]}))
        );
        let answered = flag_patch(seen, seen.with(Flags::ANSWERED, true), "", "").expect("patch");
        assert_eq!(answered["singleValueExtendedProperties"][0]["value"], "102");
        assert_eq!(answered["singleValueExtendedProperties"][1]["value"], "261");
    }

    #[test]
    fn removed_items_and_times_are_read() {
        let items = vec![
            delta(json!({"id":"gone","@removed":{"reason":"deleted"}})),
            delta(
                json!({"id":"new","receivedDateTime":"2026-01-05T09:30:00Z","isRead":false,"categories":["Red"]}),
            ),
        ];
        let (upserts, removed) = split_page(items);
        assert_eq!(removed, vec!["gone"]);
        assert_eq!(upserts[0].internal_date, 1_767_605_400);
        assert_eq!(upserts[0].keywords, "Red");
        let two = split_page(vec![delta(
            json!({"id":"x","categories":["Red category","Kunde"]}),
        )]);
        assert_eq!(two.0[0].keywords, "Red category\nKunde");
    }
}
